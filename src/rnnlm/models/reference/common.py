"""What the NumPy reference models share: elementwise functions and their derivatives, id checks,
and the gradient-check arithmetic (float64 throughout; no graph engine)."""

from __future__ import annotations

import numpy as np

from rnnlm.errors import ConfigError

ACTIVATIONS = ("tanh", "relu")
GATES = ("sigmoid", "hard_sigmoid")
CELLS = ("rnn", "gru", "lstm")
TRUNCATIONS = ("tutorial", "scan")
# Order of the stacked gate blocks in U{l}, W{l}, b{l} (axis 0); the graph model uses the same order.
GATE_NAMES = {"rnn": ("s",), "gru": ("z", "r", "c"), "lstm": ("i", "f", "o", "g")}


# --------------------------------------------------------------------------------------------
# Elementwise functions and their derivatives
# --------------------------------------------------------------------------------------------


def softmax(a):
    """Softmax over the last axis, in the stable subtract-max form.  ``a``: (..., C)."""
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(a):
    """log(softmax(a)) over the last axis without forming softmax (no log(0) for tiny probabilities)."""
    z = a - a.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def sigmoid(a):
    """Logistic sigmoid, written through tanh so that large |a| cannot overflow ``exp``."""
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def hard_sigmoid(a):
    """Theano's ``hard_sigmoid`` used by the tutorial's GRU: ``clip(0.2 a + 0.5, 0, 1)``."""
    return np.clip(0.2 * a + 0.5, 0.0, 1.0)


def apply_activation(name, a):
    """The rnn cell's nonlinearity ``name`` (``tanh`` or ``relu``, :data:`ACTIVATIONS`) applied to ``a``."""
    return np.tanh(a) if name == "tanh" else np.maximum(a, 0.0)


def activation_grad(name, y):
    """f'(a) written in terms of the output y = f(a) (the tutorial's ``1 - s**2`` trick)."""
    # relu: y > 0 exactly when a > 0; the kink a == 0 gets derivative 0 (autodiff's choice too).
    return 1.0 - y * y if name == "tanh" else (y > 0.0).astype(np.float64)


def apply_gate(name, a):
    """The gate nonlinearity ``name`` (``sigmoid`` or ``hard_sigmoid``, :data:`GATES`) applied to ``a``."""
    return sigmoid(a) if name == "sigmoid" else hard_sigmoid(a)


def gate_grad(name, a, y):
    """Derivative of the gate nonlinearity at pre-activation ``a`` with output ``y``."""
    if name == "sigmoid":
        return y * (1.0 - y)
    # 0.2 inside (-2.5, 2.5), 0 outside.  At the two kinks we take the value autodiff gives for
    # clip (its gradient counts the bounds as inside), so graph and reference agree everywhere.
    u = 0.2 * a + 0.5
    return 0.2 * ((u >= 0.0) & (u <= 1.0))


# --------------------------------------------------------------------------------------------
# Input checks and gradient-check helpers
# --------------------------------------------------------------------------------------------


def word_ids(x, word_dim, name="x"):
    """Word ids as a 1-D intp array, checked against the vocabulary (negative ids would wrap)."""
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of word ids, got shape {a.shape}")
    if a.size == 0:
        return a.astype(np.intp)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer word ids, got dtype {a.dtype}")
    if a.min() < 0 or a.max() >= word_dim:
        raise ValueError(f"{name} holds word ids outside [0, {word_dim})")
    return a.astype(np.intp)


def sentence_pair(x, y, word_dim):
    """A training pair ``(x, y)`` as two :func:`word_ids` arrays of the same length."""
    x, y = word_ids(x, word_dim, "x"), word_ids(y, word_dim, "y")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    return x, y


def check_choice(value, choices, what):
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def numeric_grad(loss, p, h):
    """Central differences of ``loss()`` w.r.t. every entry of the array ``p`` (perturbed in place)."""
    g = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        orig = p[idx]
        try:
            p[idx] = orig + h
            plus = loss()
            p[idx] = orig - h
            minus = loss()
        finally:
            p[idx] = orig  # restore the exact value, not orig + h - h
        g[idx] = (plus - minus) / (2.0 * h)
    return g


def max_rel_error(analytic, numeric, floor):
    """max |a - n| / (|a| + |n|) as in the tutorial; the denominator never drops below ``floor``,
    so entries where both are ~0 (finite-difference noise against an exact zero) count as agreeing."""
    if analytic.size == 0:
        return 0.0
    den = np.maximum(np.abs(analytic) + np.abs(numeric), floor)
    return float(np.max(np.abs(analytic - numeric) / den))


# --------------------------------------------------------------------------------------------
# The tutorial's RNN (parts 2 and 3)
# --------------------------------------------------------------------------------------------
