"""The tutorial's part-2/3 NumPy model, :class:`RNNNumpy`: ``s_t = f(U[:, x_t] + W s_{t-1})``,
``o_t = softmax(V s_t)``, with the blog post's truncated BPTT (``truncation="tutorial"``) and the definition
that Theano/PyTensor ``scan(truncate_gradient=k)`` implements (``truncation="scan"``); its initialisation and
the converter to the general parameter layout."""

from __future__ import annotations

import numpy as np

from rnnlm.errors import ConfigError
from rnnlm.models.reference.common import (
    ACTIVATIONS,
    TRUNCATIONS,
    activation_grad,
    apply_activation,
    check_choice,
    log_softmax,
    max_rel_error,
    numeric_grad,
    sentence_pair,
    softmax,
    word_ids,
)


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
        check_choice(activation, ACTIVATIONS, "activation")
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
        return float(
            sum(self._sentence_loss(*sentence_pair(x, y, self.word_dim)) for x, y in zip(X, Y, strict=True))
        )

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
        check_choice(truncation, TRUNCATIONS, "truncation")
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
        analytic = dict(zip(("U", "V", "W"), self.bptt(x, y, bptt_truncate=-1), strict=True))
        errors = {}
        for name, p in self.params.items():
            if verbose:
                print(f"Performing gradient check for parameter {name} with size {p.size}.")
            numeric = numeric_grad(lambda: self._sentence_loss(x, y), p, h)
            errors[name] = max_rel_error(analytic[name], numeric, floor)
            if verbose:
                verdict = "passed" if errors[name] <= error_threshold else "FAILED"
                print(
                    f"Gradient check for parameter {name} {verdict} (max relative error {errors[name]:.3g})."
                )
        return errors


# --------------------------------------------------------------------------------------------
# The general model (part 4): embedding, stacked rnn/gru/lstm layers, output bias
# --------------------------------------------------------------------------------------------
