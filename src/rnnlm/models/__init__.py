"""Models: symbolic cells (:mod:`~rnnlm.models.cells`), the production
:class:`~rnnlm.models.lm.LanguageModel`,
the tutorial's graph :class:`~rnnlm.models.tutorial.RNN`, the NumPy references with hand-written BPTT
(:mod:`~rnnlm.models.reference`) and the count-based n-gram baselines (:mod:`~rnnlm.models.ngram`).
The graph modules import the engine; the NumPy ones do not."""
