"""rnnlm: recurrent-neural-network language models in the Theano style.

Every model is a symbolic ``scan`` graph compiled by the engine layer (PyTensor by default, Aesara 2.9.4
supported); a NumPy reference with hand-written BPTT sits beside it. The public API::

    corpus = rnnlm.prepare("reddit", vocab_size=8000)               # the tutorial's preprocessing
    result = rnnlm.train(corpus, "runs/gru", model={"cell": "gru"})  # what `rnnlm train` does
    model, vocab, meta = rnnlm.load("runs/gru")                     # best.npz of a run (or any checkpoint)
    rnnlm.generate(model, vocab, n=3)                               # sentences
    rnnlm.score(model, sentences)                                   # log-probability of each sentence
    rnnlm.perplexity(model, encoded_text)                           # the one perplexity
    rnnlm.RNN, rnnlm.RNNNumpy, rnnlm.LanguageModel                   # the models themselves

Importing :mod:`rnnlm` imports no graph engine; the names above load their modules on first use.
"""

__version__ = "0.1.0"

# public name -> (module, attribute): imported on first access, so `import rnnlm` stays light.
_API = {
    "prepare": ("rnnlm.data.pipeline", "prepare"),
    "Corpus": ("rnnlm.data.corpus", "Corpus"),
    "LanguageModel": ("rnnlm.models.lm", "LanguageModel"),
    "ModelConfig": ("rnnlm.models.lm", "ModelConfig"),
    "RNN": ("rnnlm.models.tutorial", "RNN"),
    "RNNNumpy": ("rnnlm.models.reference", "RNNNumpy"),
    "TrainConfig": ("rnnlm.training.config", "TrainConfig"),
    "train": ("rnnlm.training.api", "train"),
    "train_with_sgd": ("rnnlm.training.tutorial", "train_with_sgd"),
    "load": ("rnnlm.training.checkpoint", "load_model"),
    "generate": ("rnnlm.inference.sampling", "generate"),
    "beam_search": ("rnnlm.inference.beam", "beam_search"),
    "score": ("rnnlm.inference.scoring", "sentence_logprob"),
    "perplexity": ("rnnlm.inference.scoring", "perplexity"),
}

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'rnnlm' has no attribute {name!r}")
    import importlib

    module, attr = _API[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
