"""Training: the one loop (:mod:`~rnnlm.training.trainer`), its settings (:mod:`~rnnlm.training.config`),
optimizers (:mod:`~rnnlm.training.optim`), checkpoints (:mod:`~rnnlm.training.checkpoint`), the library
call behind ``rnnlm train`` (:mod:`~rnnlm.training.api`) and the tutorial's own loop
(:mod:`~rnnlm.training.tutorial`). Importing a submodule that builds graphs imports the engine."""
