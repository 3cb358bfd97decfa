"""The general part-4 NumPy model, :class:`GatedRNNNumpy`: optional embedding ``E``, a stack of
rnn/gru/lstm layers with biases, an output bias; forward and backward both derived by hand. Its parameter
dict (:func:`init_params`, :func:`param_shapes`) is the layout the graph model uses, so the two can load the
same weights and be compared number for number."""

from __future__ import annotations

import numpy as np

from rnnlm.errors import ConfigError
from rnnlm.models.reference.common import (
    ACTIVATIONS,
    CELLS,
    GATE_NAMES,
    GATES,
    activation_grad,
    apply_activation,
    apply_gate,
    check_choice,
    gate_grad,
    log_softmax,
    max_rel_error,
    numeric_grad,
    sentence_pair,
    softmax,
    word_ids,
)


def _check_gated_config(cell, word_dim, hidden_dim, embedding_dim, layers):
    check_choice(cell, CELLS, "cell")
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
    are zero except the LSTM forget gate's, which starts at 1 so that c_t is carried over at first.
    Draws come from ``np.random.default_rng(seed)`` in :func:`param_shapes` order (E, then U{l}, W{l}
    per layer, then V); biases draw nothing.
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
        check_choice(gate, GATES, "gate")
        check_choice(activation, ACTIVATIONS, "activation")
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
            name: max_rel_error(analytic[name], numeric_grad(lambda: self.loss(x, y), p, h), floor)
            for name, p in self.params.items()
        }
