"""rnnlm: recurrent-neural-network language models in the Theano style.

Every model is a symbolic ``scan`` graph compiled by the engine layer (PyTensor by default,
Aesara 2.9.4 supported); a NumPy reference with hand-written BPTT sits beside it.
Importing :mod:`rnnlm` does not import a graph engine; :mod:`rnnlm.engine` does.
"""

__version__ = "0.1.0"
