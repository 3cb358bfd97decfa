"""Data: known files (:mod:`~rnnlm.data.datasets`), reading, tokenizing and encoding corpora
(:mod:`~rnnlm.data.corpus`), and minibatches (:mod:`~rnnlm.data.batching`). No graph engine here."""
