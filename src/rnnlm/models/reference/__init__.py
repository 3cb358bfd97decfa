"""NumPy reference models with hand-written backpropagation through time (float64, no graph engine).

Two models live in this package, both over one sentence at a time (1-D integer arrays ``x`` and ``y`` of
word ids, ``y[t]`` the word that follows ``x[t]``):

``RNNNumpy``
    The tutorial's part-2/3 model, ``s_t = f(U[:, x_t] + W s_{t-1})``, ``o_t = softmax(V s_t)``,
    with the blog post's truncated BPTT (``truncation="tutorial"``) and the definition that
    Theano/PyTensor ``scan(truncate_gradient=k)`` implements (``truncation="scan"``).

``GatedRNNNumpy``
    The general part-4 model: optional embedding ``E``, a stack of rnn/gru/lstm layers with biases,
    and an output bias; forward and backward both derived by hand.  Its parameter dict
    (:func:`init_params`, :func:`param_shapes`) is the layout the graph model uses, so the two can
    load the same weights and be compared number for number.

Everything is float64 like the tutorial: these models are the ground truth for gradient checks
and parity tests of the compiled graph models, and a CPU baseline for benchmarks.  This module
must not import a graph engine (``pytensor``/``aesara``).
"""

from rnnlm.models.reference.common import (
    ACTIVATIONS,
    CELLS,
    GATE_NAMES,
    GATES,
    TRUNCATIONS,
    activation_grad,
    apply_activation,
    apply_gate,
    gate_grad,
    hard_sigmoid,
    log_softmax,
    sentence_pair,
    sigmoid,
    softmax,
    word_ids,
)
from rnnlm.models.reference.gated import GatedRNNNumpy, init_params, param_shapes
from rnnlm.models.reference.tutorial import RNNNumpy, init_tutorial_params, tutorial_to_general

__all__ = [
    "ACTIVATIONS",
    "CELLS",
    "GATES",
    "GATE_NAMES",
    "TRUNCATIONS",
    "GatedRNNNumpy",
    "RNNNumpy",
    "activation_grad",
    "apply_activation",
    "apply_gate",
    "gate_grad",
    "hard_sigmoid",
    "init_params",
    "init_tutorial_params",
    "log_softmax",
    "param_shapes",
    "sentence_pair",
    "sigmoid",
    "softmax",
    "tutorial_to_general",
    "word_ids",
]
