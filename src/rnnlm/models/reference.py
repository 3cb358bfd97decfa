"""NumPy reference models with hand-written backpropagation through time (float64, no graph engine).

Two models live here, both over one sentence at a time (1-D integer arrays ``x`` and ``y`` of
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

from __future__ import annotations

import numpy as np

from rnnlm.errors import ConfigError

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


def _check_choice(value, choices, what):
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def _numeric_grad(loss, p, h):
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


def _max_rel_error(analytic, numeric, floor):
    """max |a - n| / (|a| + |n|) as in the tutorial; the denominator never drops below ``floor``,
    so entries where both are ~0 (finite-difference noise against an exact zero) count as agreeing."""
    if analytic.size == 0:
        return 0.0
    den = np.maximum(np.abs(analytic) + np.abs(numeric), floor)
    return float(np.max(np.abs(analytic - numeric) / den))


# --------------------------------------------------------------------------------------------
# The tutorial's RNN (parts 2 and 3)
# --------------------------------------------------------------------------------------------


def init_tutorial_params(word_dim, hidden_dim, seed=None):
    """The tutorial's initial weights, uniform in ±1/sqrt(fan_in), float64.

    Returns ``{"U": (H, C), "V": (C, H), "W": (H, H)}`` with ``C = word_dim``, ``H = hidden_dim``.
    U's fan-in is C (it reads a one-hot word), V's and W's is H.  The draws come from
    ``np.random.default_rng(seed)`` in the order U, V, W; the graph model calls this same function,
    so a seed gives both models identical weights.
    """
    if word_dim < 1 or hidden_dim < 1:
        raise ConfigError(f"word_dim and hidden_dim must be positive, got {word_dim}, {hidden_dim}")
    rng = np.random.default_rng(seed)
    bu, bh = 1.0 / np.sqrt(word_dim), 1.0 / np.sqrt(hidden_dim)
    U = rng.uniform(-bu, bu, (hidden_dim, word_dim))
    V = rng.uniform(-bh, bh, (word_dim, hidden_dim))
    W = rng.uniform(-bh, bh, (hidden_dim, hidden_dim))
    return {"U": U, "V": V, "W": W}


def tutorial_to_general(U, V, W, dtype=np.float32, output_bias: bool = False) -> dict:
    """The tutorial's U (H, C), V (C, H), W (H, H) in the general layout of :func:`init_params`:
    ``U0`` (1, H, C), ``W0`` (1, H, H), zero ``b0`` (1, H), ``V`` (C, H) and, if asked, a zero ``c`` (C,).
    The one converter between the two layouts (graph models, checkpoints and the analysis use it)."""
    U, V, W = (np.asarray(a, dtype=dtype) for a in (U, V, W))
    if U.ndim != 2 or V.ndim != 2 or W.ndim != 2:
        raise ConfigError("U, V, W must be matrices")
    H, C = U.shape
    if V.shape != (C, H) or W.shape != (H, H):
        raise ConfigError(f"inconsistent shapes U {U.shape}, V {V.shape}, W {W.shape}")
    out = {"U0": U[None], "W0": W[None], "b0": np.zeros((1, H), dtype), "V": V}
    if output_bias:
        out["c"] = np.zeros(C, dtype)
    return out


class RNNNumpy:
    """The tutorial's RNN language model in NumPy.

    ``s_t = f(U[:, x_t] + W s_{t-1})`` with ``s_{-1} = 0`` and ``f`` = tanh (the tutorial) or relu;
    ``o_t = softmax(V s_t)``.  Shapes: U (H, C), V (C, H), W (H, H), C = ``word_dim``,
    H = ``hidden_dim``.  ``bptt_truncate`` < 0 means full BPTT.

    ``params``, if given, is a dict with U, V, W (copied to float64); otherwise the weights come
    from :func:`init_tutorial_params` with ``seed``.
    """

    def __init__(self, word_dim, hidden_dim=100, bptt_truncate=4, activation="tanh", seed=None, params=None):
        _check_choice(activation, ACTIVATIONS, "activation")
        self.word_dim = int(word_dim)
        self.hidden_dim = int(hidden_dim)
        self.bptt_truncate = int(bptt_truncate)
        self.activation = activation
        if params is None:
            params = init_tutorial_params(self.word_dim, self.hidden_dim, seed)
        C, H = self.word_dim, self.hidden_dim
        expected = {"U": (H, C), "V": (C, H), "W": (H, H)}
        for name, shape in expected.items():
            if name not in params:
                raise ConfigError(f"params lacks {name!r}")
            value = np.array(params[name], dtype=np.float64)  # a private copy: sgd_step updates in place
            if value.shape != shape:
                raise ConfigError(f"{name} has shape {value.shape}, expected {shape}")
            setattr(self, name, value)

    @property
    def params(self):
        """``{"U", "V", "W"}``: the live arrays (not copies)."""
        return {"U": self.U, "V": self.V, "W": self.W}

    # ---- forward ----------------------------------------------------------------------------

    def _forward(self, x):
        """Returns the logits ``V s_t`` (T, C) and the states s (T+1, H), s[-1] = 0."""
        T = len(x)
        # One extra row, left zero: s[t-1] at t = 0 reads it as the initial state (the tutorial's trick).
        s = np.zeros((T + 1, self.hidden_dim))
        for t in range(T):
            s[t] = apply_activation(self.activation, self.U[:, x[t]] + self.W @ s[t - 1])
        # The output layer does not feed the recurrence, so all T steps take one (T,H)x(H,C) product.
        return s[:-1] @ self.V.T, s

    def forward_propagation(self, x):
        """Returns ``o`` (T, C), the probabilities ``o_t``, and ``s`` (T+1, H), where s[-1] is the
        zero initial state, as in the tutorial."""
        logits, s = self._forward(word_ids(x, self.word_dim))
        return softmax(logits), s

    def predict(self, x):
        """The most likely next word at every step: (T,) ints."""
        logits, _ = self._forward(word_ids(x, self.word_dim))
        return np.argmax(logits, axis=1)

    def _sentence_loss(self, x, y):
        logits, _ = self._forward(x)
        return -float(np.sum(log_softmax(logits)[np.arange(len(y)), y]))

    def calculate_total_loss(self, X, Y):
        """Sum over all sentences and words of -log o_t[y_t].  X, Y: sequences of 1-D id arrays."""
        if len(X) != len(Y):
            raise ValueError(f"X and Y hold {len(X)} and {len(Y)} sentences")
        return float(sum(self._sentence_loss(*sentence_pair(x, y, self.word_dim)) for x, y in zip(X, Y)))

    def calculate_loss(self, X, Y):
        """Mean cross-entropy per word (total loss / number of words); ln C for a uniform model."""
        n_words = sum(len(y) for y in Y)
        if n_words == 0:
            raise ValueError("calculate_loss needs at least one word")
        return self.calculate_total_loss(X, Y) / n_words

    # ---- backward ---------------------------------------------------------------------------

    def bptt(self, x, y, truncation="tutorial", bptt_truncate=None):
        """Gradients ``(dLdU (H, C), dLdV (C, H), dLdW (H, H))`` of the *sum* loss of one sentence.

        ``bptt_truncate`` (default: the model's) is k; k < 0 means full BPTT for both truncations.

        ``truncation="tutorial"``: the blog post's loop.  For each t, the error of o_t is carried
        back through steps t, t-1, ..., max(0, t-k) only (k+1 steps; k >= T-1 is full BPTT).

        ``truncation="scan"``: what ``scan(truncate_gradient=k)`` computes when the output layer
        sits outside the scan.  dLdV is exact.  The state gradient
        ``delta_t = dL/ds_t (direct, from o_t) + W^T (delta_{t+1} * f'(a_{t+1}))`` is accumulated
        backwards, but the recursion only visits the last k steps (t = T-k .. T-1), so U and W get
        contributions from those steps alone (k >= T is full BPTT).
        """
        _check_choice(truncation, TRUNCATIONS, "truncation")
        x, y = sentence_pair(x, y, self.word_dim)
        k = self.bptt_truncate if bptt_truncate is None else int(bptt_truncate)
        T = len(y)
        logits, s = self._forward(x)
        # dL/d(V s_t) for softmax + negative log-likelihood: o_t - onehot(y_t).
        delta_o = softmax(logits)
        delta_o[np.arange(T), y] -= 1.0
        dLdV = delta_o.T @ s[:-1]  # sum_t outer(delta_o[t], s_t) as one product
        dLds = delta_o @ self.V  # (T, H): the direct gradient of loss_t w.r.t. s_t
        dfs = activation_grad(self.activation, s)  # (T+1, H): f'(a_t); row -1 belongs to s_{-1}=0
        dLdU = np.zeros_like(self.U)
        dLdW = np.zeros_like(self.W)

        if truncation == "tutorial" and k >= 0:
            # The blog post's loop, kept literally so it can be read beside the post.
            for t in reversed(range(T)):
                delta_t = dLds[t] * dfs[t]
                for bptt_step in range(t, max(0, t - k) - 1, -1):
                    dLdW += np.outer(delta_t, s[bptt_step - 1])
                    dLdU[:, x[bptt_step]] += delta_t
                    delta_t = (self.W.T @ delta_t) * dfs[bptt_step - 1]
            return dLdU, dLdV, dLdW

        # One backward recursion over the steps it may visit (all of them for full BPTT).
        first = 0 if k < 0 else max(0, T - k)
        dA = np.zeros((T, self.hidden_dim))  # dL/da_t, a_t the pre-activation of s_t
        carry = np.zeros(self.hidden_dim)  # W^T dL/da_{t+1}
        for t in range(T - 1, first - 1, -1):
            dA[t] = (dLds[t] + carry) * dfs[t]
            carry = self.W.T @ dA[t]
        dLdW = dA.T @ s[np.arange(T) - 1]  # s[-1] (zero) is the state before t = 0
        np.add.at(dLdU.T, x, dA)  # dLdU[:, x_t] += dL/da_t, repeated words accumulate
        return dLdU, dLdV, dLdW

    def sgd_step(self, x, y, learning_rate, truncation="tutorial"):
        """One SGD step on one sentence, in place: P -= learning_rate * dL/dP (truncated as bptt)."""
        dLdU, dLdV, dLdW = self.bptt(x, y, truncation=truncation)
        self.U -= learning_rate * dLdU
        self.V -= learning_rate * dLdV
        self.W -= learning_rate * dLdW

    def gradient_check(self, x, y, h=1e-3, error_threshold=1e-2, verbose=False, floor=1e-6):
        """Compares full-BPTT gradients with central finite differences of ``calculate_total_loss``.

        Returns ``{"U": err, "V": err, "W": err}``, each the largest relative error
        ``|a - n| / max(|a| + |n|, floor)`` over the parameter's entries.  With ``verbose`` it
        prints the tutorial's messages, judging each error against ``error_threshold``.
        """
        x, y = sentence_pair(x, y, self.word_dim)
        analytic = dict(zip(("U", "V", "W"), self.bptt(x, y, bptt_truncate=-1)))
        errors = {}
        for name, p in self.params.items():
            if verbose:
                print(f"Performing gradient check for parameter {name} with size {p.size}.")
            numeric = _numeric_grad(lambda: self._sentence_loss(x, y), p, h)
            errors[name] = _max_rel_error(analytic[name], numeric, floor)
            if verbose:
                verdict = "passed" if errors[name] <= error_threshold else "FAILED"
                print(f"Gradient check for parameter {name} {verdict} "
                      f"(max relative error {errors[name]:.3g}).")
        return errors


# --------------------------------------------------------------------------------------------
# The general model (part 4): embedding, stacked rnn/gru/lstm layers, output bias
# --------------------------------------------------------------------------------------------


def _check_gated_config(cell, word_dim, hidden_dim, embedding_dim, layers):
    _check_choice(cell, CELLS, "cell")
    if word_dim < 1 or hidden_dim < 1:
        raise ConfigError(f"word_dim and hidden_dim must be positive, got {word_dim}, {hidden_dim}")
    if embedding_dim < 0:
        raise ConfigError(f"embedding_dim must be >= 0 (0: one-hot input), got {embedding_dim}")
    if layers < 1:
        raise ConfigError(f"layers must be >= 1, got {layers}")


def param_shapes(cell, word_dim, hidden_dim, embedding_dim=0, layers=1):
    """Name -> shape of every parameter of the general model, in initialisation order.

    ``E`` (D, C) only when ``embedding_dim`` D > 0; for each layer l ``U{l}`` (G, H, D_in),
    ``W{l}`` (G, H, H), ``b{l}`` (G, H) with G = 1/3/4 for rnn/gru/lstm (gate order
    :data:`GATE_NAMES`) and D_in = D, or C (one-hot) without embedding, for layer 0 and H above;
    then ``V`` (C, H) and ``c`` (C,).
    """
    _check_gated_config(cell, word_dim, hidden_dim, embedding_dim, layers)
    C, H, D, G = word_dim, hidden_dim, embedding_dim, len(GATE_NAMES[cell])
    shapes = {}
    if D > 0:
        shapes["E"] = (D, C)
    for layer in range(layers):
        d_in = (D or C) if layer == 0 else H
        shapes[f"U{layer}"] = (G, H, d_in)
        shapes[f"W{layer}"] = (G, H, H)
        shapes[f"b{layer}"] = (G, H)
    shapes["V"] = (C, H)
    shapes["c"] = (C,)
    return shapes


def init_params(cell, word_dim, hidden_dim, embedding_dim=0, layers=1, seed=None):
    """Initial parameters of the general model (float64), layout as :func:`param_shapes`.

    Every U/W/V is uniform in ±1/sqrt(fan_in) (the tutorial's rule; fan-in: the last axis for U and W,
    H for V). E (D, C) is uniform in ±sqrt(3/D), so every word vector has norm ≈ 1: an embedding
    lookup reads one column, and the fan-in rule (±1/sqrt(C), 0.02 for C = 2000) made word vectors
    so small that a tied output layer learned twice as slowly (measured in docs/quality.md). Biases
    are zero except the LSTM forget gate's, which starts at 1 so that c_t is carried over at first.  Draws come from ``np.random.default_rng(seed)`` in :func:`param_shapes` order
    (E, then U{l}, W{l} per layer, then V); biases draw nothing.
    """
    shapes = param_shapes(cell, word_dim, hidden_dim, embedding_dim, layers)
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in shapes.items():
        if name[0] in "bc":
            params[name] = np.zeros(shape)
            if cell == "lstm" and name[0] == "b":
                params[name][GATE_NAMES["lstm"].index("f")] = 1.0
        else:
            bound = np.sqrt(3.0 / shape[0]) if name == "E" else 1.0 / np.sqrt(shape[-1])  # V (C, H): fan-in H
            params[name] = rng.uniform(-bound, bound, shape)
    return params


class GatedRNNNumpy:
    """The general language model with hand-derived forward and backward passes, float64.

    Layer 0 reads x_t = E[:, w_t] (D,) with an embedding, or the one-hot word, whose input
    projection is the column lookup U0[:, :, w_t]; layer l > 0 reads layer l-1's state.  Cells
    (G gate blocks stacked on axis 0 of U{l} (G, H, D_in), W{l} (G, H, H), b{l} (G, H)):

    - rnn:  s_t = f(U x_t + W s_{t-1} + b), f = tanh or relu (``activation``).
    - gru:  z = σ(U_z x + W_z s + b_z), r = σ(U_r x + W_r s + b_r),
      c = tanh(U_c x + W_c (s ⊙ r) + b_c), s' = (1 − z) ⊙ c + z ⊙ s  (the tutorial's part 4).
    - lstm: i, f, o = σ(...), g = tanh(...), c_t = f ⊙ c_{t-1} + i ⊙ g, h_t = o ⊙ tanh(c_t);
      h_t is the layer's state.

    σ is ``sigmoid`` or ``hard_sigmoid`` (``gate``).  Initial states (and LSTM cells) are zero.
    Output: o_t = softmax(V s_t^top + c).  ``params`` (a dict as :func:`param_shapes`, copied to
    float64) replaces :func:`init_params` with ``seed``.
    """

    def __init__(
        self,
        cell,
        word_dim,
        hidden_dim,
        embedding_dim=0,
        layers=1,
        gate="sigmoid",
        activation="tanh",
        params=None,
        seed=None,
    ):
        shapes = param_shapes(cell, word_dim, hidden_dim, embedding_dim, layers)
        _check_choice(gate, GATES, "gate")
        _check_choice(activation, ACTIVATIONS, "activation")
        if cell != "rnn" and activation != "tanh":
            # The gated cells' candidate/cell nonlinearity is tanh by definition.
            raise ConfigError(f"activation={activation!r} applies to the rnn cell only; {cell} uses tanh")
        self.cell, self.gate, self.activation = cell, gate, activation
        self.word_dim, self.hidden_dim = int(word_dim), int(hidden_dim)
        self.embedding_dim, self.layers = int(embedding_dim), int(layers)
        if params is None:
            params = init_params(cell, word_dim, hidden_dim, embedding_dim, layers, seed)
        extra = set(params) - set(shapes)
        if extra:
            raise ConfigError(f"unexpected parameters {sorted(extra)} for this configuration")
        self.params = {}
        for name, shape in shapes.items():
            if name not in params:
                raise ConfigError(f"params lacks {name!r}")
            value = np.array(params[name], dtype=np.float64)
            if value.shape != shape:
                raise ConfigError(f"{name} has shape {value.shape}, expected {shape}")
            self.params[name] = value

    # ---- forward ----------------------------------------------------------------------------

    def _layer_forward(self, XU, W, b):
        """One layer over T steps.  XU (T, G, H): the input projections U x_t.

        Returns a dict: ``s`` (T+1, H) states with s[-1] = 0; ``a`` (T, G, H) gate pre-activations;
        ``act`` (T, G, H) their outputs; ``rec`` (T, G, H) what each W block multiplied (s_{t-1},
        or s_{t-1} ⊙ r for the GRU candidate); for lstm also ``c`` (T+1, H) and ``tanh_c`` (T, H).
        """
        T, G, H = XU.shape
        s = np.zeros((T + 1, H))  # row -1 stays zero: the initial state
        a, act, rec = np.zeros((T, G, H)), np.zeros((T, G, H)), np.zeros((T, G, H))
        cache = {"s": s, "a": a, "act": act, "rec": rec}
        if self.cell == "lstm":
            c = np.zeros((T + 1, H))
            tanh_c = np.zeros((T, H))
            cache.update(c=c, tanh_c=tanh_c)
        for t in range(T):
            s_prev = s[t - 1]
            if self.cell == "rnn":
                a[t] = XU[t] + W @ s_prev + b
                act[t] = apply_activation(self.activation, a[t])
                rec[t] = s_prev
                s[t] = act[t, 0]
            elif self.cell == "gru":
                a[t, :2] = XU[t, :2] + W[:2] @ s_prev + b[:2]
                z, r = act[t, :2] = apply_gate(self.gate, a[t, :2])
                rec[t, :2] = s_prev
                rec[t, 2] = s_prev * r  # the reset gate acts on s before W_c (the tutorial's order)
                a[t, 2] = XU[t, 2] + W[2] @ rec[t, 2] + b[2]
                act[t, 2] = np.tanh(a[t, 2])
                s[t] = (1.0 - z) * act[t, 2] + z * s_prev
            else:  # lstm
                a[t] = XU[t] + W @ s_prev + b
                act[t, :3] = apply_gate(self.gate, a[t, :3])
                act[t, 3] = np.tanh(a[t, 3])
                i, f, o, g = act[t]
                rec[t] = s_prev
                c[t] = f * c[t - 1] + i * g
                tanh_c[t] = np.tanh(c[t])
                s[t] = o * tanh_c[t]
        return cache

    def forward(self, x):
        """Forward pass over one sentence ``x`` (T,) of word ids.

        Returns ``(o, cache)``: ``o`` (T, C) the probabilities o_t, and ``cache`` a dict with
        ``x`` (T,), ``logits`` (T, C), ``inputs`` (one per layer: its input sequence (T, D_in),
        None for a one-hot layer 0) and ``layers`` (one :meth:`_layer_forward` dict per layer,
        whose ``s`` (T+1, H) holds the states with s[-1] = 0).
        """
        x = word_ids(x, self.word_dim)
        p = self.params
        inp = p["E"][:, x].T if self.embedding_dim else None  # (T, D): embedding columns
        cache = {"x": x, "inputs": [], "layers": []}
        for layer in range(self.layers):
            U, W, b = p[f"U{layer}"], p[f"W{layer}"], p[f"b{layer}"]
            if inp is None:
                XU = U[:, :, x].transpose(2, 0, 1)  # U times a one-hot word is a column lookup
            else:
                XU = np.einsum("ghd,td->tgh", U, inp)  # input projections of all steps at once
            cache["inputs"].append(inp)
            lc = self._layer_forward(XU, W, b)
            cache["layers"].append(lc)
            inp = lc["s"][:-1]
        cache["logits"] = inp @ p["V"].T + p["c"]
        return softmax(cache["logits"]), cache

    def predict(self, x):
        """The most likely next word at every step: (T,) ints."""
        _, cache = self.forward(x)
        return np.argmax(cache["logits"], axis=1)

    def loss(self, x, y):
        """Sum over the sentence of -log o_t[y_t]."""
        x, y = sentence_pair(x, y, self.word_dim)
        _, cache = self.forward(x)
        return -float(np.sum(log_softmax(cache["logits"])[np.arange(len(y)), y]))

    # ---- backward ---------------------------------------------------------------------------

    def _layer_backward(self, lc, W, dS):
        """Backward through one layer.  ``dS`` (T, H): gradient of the loss w.r.t. the layer's
        states from above (output layer or next layer's input).  Returns dL/da (T, G, H)."""
        s, a, act = lc["s"], lc["a"], lc["act"]
        T, H = len(a), a.shape[-1]
        dA = np.zeros_like(a)
        ds_next = np.zeros(H)  # dL/ds_t arriving through the recurrence from step t+1
        dc_next = np.zeros(H)  # lstm: dL/dc_t arriving from step t+1
        for t in reversed(range(T)):
            ds = dS[t] + ds_next
            s_prev = s[t - 1]
            if self.cell == "rnn":
                dA[t] = ds * activation_grad(self.activation, act[t])
                ds_next = W[0].T @ dA[t, 0]
            elif self.cell == "gru":
                z, r, cand = act[t]
                # s_t = (1 - z) c + z s_{t-1}
                dz = ds * (s_prev - cand)
                dA[t, 2] = ds * (1.0 - z) * (1.0 - cand * cand)
                dsr = W[2].T @ dA[t, 2]  # gradient w.r.t. s_{t-1} ⊙ r
                dA[t, 0] = dz * gate_grad(self.gate, a[t, 0], z)
                dA[t, 1] = dsr * s_prev * gate_grad(self.gate, a[t, 1], r)
                ds_next = ds * z + dsr * r + W[0].T @ dA[t, 0] + W[1].T @ dA[t, 1]
            else:  # lstm
                i, f, o, g = act[t]
                tc = lc["tanh_c"][t]
                # h_t = o tanh(c_t); c_t = f c_{t-1} + i g
                dc = dc_next + ds * o * (1.0 - tc * tc)
                dA[t, 0] = dc * g * gate_grad(self.gate, a[t, 0], i)
                dA[t, 1] = dc * lc["c"][t - 1] * gate_grad(self.gate, a[t, 1], f)
                dA[t, 2] = ds * tc * gate_grad(self.gate, a[t, 2], o)
                dA[t, 3] = dc * i * (1.0 - g * g)
                dc_next = dc * f
                ds_next = np.einsum("ghk,gh->k", W, dA[t])
        return dA

    def bptt(self, x, y):
        """Full-BPTT gradients of the sentence's sum loss: a dict with the keys (and shapes) of
        ``params``."""
        x, y = sentence_pair(x, y, self.word_dim)
        p = self.params
        o, cache = self.forward(x)
        grads = {name: np.zeros_like(value) for name, value in p.items()}
        T = len(y)
        delta_o = o.copy()
        delta_o[np.arange(T), y] -= 1.0  # dL/dlogits for softmax + NLL
        top = cache["layers"][-1]["s"][:-1]
        grads["V"] = delta_o.T @ top
        grads["c"] = delta_o.sum(axis=0)
        dS = delta_o @ p["V"]  # (T, H): gradient w.r.t. the top layer's states
        for layer in reversed(range(self.layers)):
            lc, inp = cache["layers"][layer], cache["inputs"][layer]
            U, W = p[f"U{layer}"], p[f"W{layer}"]
            dA = self._layer_backward(lc, W, dS)
            grads[f"W{layer}"] = np.einsum("tgh,tgk->ghk", dA, lc["rec"])
            grads[f"b{layer}"] = dA.sum(axis=0)
            if inp is None:
                # One-hot input: step t touched only column x_t of every U block.
                np.add.at(grads[f"U{layer}"].transpose(2, 0, 1), x, dA)
            else:
                grads[f"U{layer}"] = np.einsum("tgh,td->ghd", dA, inp)
                dS = np.einsum("ghd,tgh->td", U, dA)  # gradient w.r.t. this layer's input
        if self.embedding_dim:
            np.add.at(grads["E"].T, x, dS)  # dS is now dL/dx_t for x_t = E[:, w_t]
        return grads

    def gradient_check(self, x, y, h=1e-5, floor=1e-6):
        """Compares :meth:`bptt` with central finite differences of :meth:`loss`.

        Returns ``{name: max relative error}`` for every parameter, the error of an entry being
        ``|a - n| / max(|a| + |n|, floor)``.
        """
        x, y = sentence_pair(x, y, self.word_dim)
        analytic = self.bptt(x, y)
        return {
            name: _max_rel_error(analytic[name], _numeric_grad(lambda: self.loss(x, y), p, h), floor)
            for name, p in self.params.items()
        }
