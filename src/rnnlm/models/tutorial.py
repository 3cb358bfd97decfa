"""The tutorial's ``RNNTheano`` (part 2) on the engine layer: :class:`RNN`.

One sentence at a time; parameters U (H×C), V (C×H), W (H×H); ``s_t = f(U[:, x_t] + W s_{t-1})``,
``o_t = softmax(V s_t)``. ``fast=False`` keeps the faithful graph (the softmax inside the scan, as in the
blog post); ``fast=True`` (default) computes ``softmax(S Vᵀ)`` for all steps with one matrix product
outside the scan, since the output layer does not depend on the recurrence.

Gradients (``bptt``, ``sgd_step``) with ``bptt_truncate=k``: the tutorial's ``RNNTheano`` computes o_t
inside its scan, so ``truncate_gradient=k`` truncates every parameter's gradient to the last k steps of
the sentence, dV included.  ``dv="tutorial"`` (default) gives exactly that graph's gradients, and computes
only what they need: the states of the first T−k steps (no gradient), then the last k steps again with
their gradient, the output layer on those k rows only, and U updated in the k columns the window used.
``dv="exact"`` keeps the former fast graph, whose dV sums over all T steps (dU and dW are the same).
Under the JAX linker sentences are left-padded to a length bucket (a multiple of 8) with a mask: the
padding keeps the zero state and adds no loss, and the window stays the sentence's last k steps.
"""

from __future__ import annotations

import math

import numpy as np

from rnnlm import engine, engine_ops
from rnnlm.errors import ConfigError
from rnnlm.models.cells import activation as _activation
from rnnlm.models.lm import LanguageModel, ModelConfig
from rnnlm.models.reference import init_tutorial_params, tutorial_to_general

T = engine.T
FLOATX = engine.floatX


class RNN:
    """The tutorial's RNNTheano on the engine layer.

    Parameters U (H, C), V (C, H), W (H, H) are float32 shared variables initialised exactly
    as :func:`rnnlm.models.reference.init_tutorial_params` (so both models can load the same weights).
    Compiled functions (x, y: int32 vectors of length T):
    ``forward_propagation(x) -> o (T, C)``, ``predict(x) -> (T,)``, ``ce_error(x, y) -> sum
    loss``, ``bptt(x, y) -> [dU, dV, dW]``, ``sgd_step(x, y, learning_rate)``.
    ``dv``: ``"tutorial"`` (default; the tutorial graph's truncated gradients, see the module) or
    ``"exact"`` (dV over every step; only with ``fast=True``).
    """

    BUCKET = 8  # JAX linker: sentence lengths are padded to a multiple of this

    def __init__(
        self,
        word_dim,
        hidden_dim=100,
        bptt_truncate=4,
        activation="tanh",
        seed=None,
        params=None,
        fast=True,
        linker="c",
        dv="tutorial",
    ):
        self.word_dim, self.hidden_dim = int(word_dim), int(hidden_dim)
        self.bptt_truncate, self.activation, self.fast = int(bptt_truncate), activation, fast
        if dv not in ("tutorial", "exact"):
            raise ConfigError(f"unknown dv {dv!r}; choose tutorial or exact")
        self.dv = dv
        self.linker = linker
        self.mode = engine.mode_for(linker)
        if params is None:
            params = init_tutorial_params(self.word_dim, self.hidden_dim, seed=seed)
        self._check_shapes(params)
        self.U = engine.shared(np.asarray(params["U"], FLOATX), name="U")
        self.V = engine.shared(np.asarray(params["V"], FLOATX), name="V")
        self.W = engine.shared(np.asarray(params["W"], FLOATX), name="W")
        with engine.quiet():
            self._build()

    def _check_shapes(self, params):
        H, C = self.hidden_dim, self.word_dim
        want = {"U": (H, C), "V": (C, H), "W": (H, H)}
        for k, shape in want.items():
            if k not in params:
                raise ConfigError(f"missing parameter {k}")
            if tuple(np.shape(params[k])) != shape:
                raise ConfigError(f"parameter {k} has shape {np.shape(params[k])}, expected {shape}")

    @property
    def params(self):
        return {"U": self.U, "V": self.V, "W": self.W}

    def get_params(self) -> dict:
        """Current parameters as float32 NumPy arrays."""
        return {k: v.get_value() for k, v in self.params.items()}

    def set_params(self, params: dict) -> None:
        self._check_shapes(params)
        for k, v in self.params.items():
            v.set_value(np.asarray(params[k], FLOATX))

    def _build(self):
        U, V, W = self.U, self.V, self.W
        f = _activation(self.activation)
        x = T.ivector("x")
        y = T.ivector("y")
        s0 = T.zeros((self.hidden_dim,), dtype=FLOATX)
        if self.fast:

            def step(x_t, s_prev, U, W):
                return f(U[:, x_t] + T.dot(W, s_prev))

            s = engine.scan(
                step,
                sequences=[x],
                outputs_info=[s0],
                non_sequences=[U, W],
                truncate_gradient=self.bptt_truncate,
                label="rnn_fast",
            )
            logp = engine.log_softmax(T.dot(s, V.T), axis=-1)  # (T, C): one GEMM for all steps
        else:

            def step(x_t, s_prev, U, V, W):
                s_t = f(U[:, x_t] + T.dot(W, s_prev))
                logp_t = engine.log_softmax(T.dot(V, s_t), axis=-1)
                return [logp_t, s_t]

            logp, s = engine.scan(
                step,
                sequences=[x],
                outputs_info=[None, s0],
                non_sequences=[U, V, W],
                truncate_gradient=self.bptt_truncate,
                label="rnn_faithful",
            )
        o = T.exp(logp)
        o_error = -T.sum(logp[T.arange(y.shape[0]), y])
        lr = T.scalar("learning_rate", dtype=FLOATX)
        # Compiled on first use: the C linker takes seconds per function.
        self._specs = {
            "forward_propagation": ([x], o, None),
            "predict": ([x], T.argmax(o, axis=1), None),
            "ce_error": ([x, y], o_error, None),
        }
        self._compiled = {}
        if self.windowed:
            inputs, (dU, dV, dW), updates = self._window_graph(None, lr)
            self._specs["bptt"] = (inputs, [dU, dV, dW], None)
            return
        dU, dV, dW = engine.grad(o_error, [U, V, W])
        self._specs["bptt"] = ([x, y], [dU, dV, dW], None)
        self._specs["sgd_step"] = ([x, y, lr], [], [(U, U - lr * dU), (V, V - lr * dV), (W, W - lr * dW)])

    @property
    def windowed(self) -> bool:
        """Whether ``bptt``/``sgd_step`` use the shipped window graph (``fast=True, dv="tutorial"``)."""
        return bool(self.fast) and self.dv == "tutorial"

    def _window_graph(self, length, lr, sgd=False):
        """The tutorial graph's truncated gradients, computing only what they need.

        ``length``: None (the C linker: any sentence length) or a static bucket length (JAX: the sentence
        is left-padded with a mask).  Returns ``(inputs, [dU, dV, dW], sgd_updates)``; dU is dense here
        (for ``bptt``), the update touches only the window's columns of U.  ``sgd``: the graph of
        ``sgd_step`` only (where :func:`engine_ops.fused_sgd` holds, V's step is made by the output
        layer's node, and dV is None).
        """
        U, W = self.U, self.W
        f = _activation(self.activation)
        cut = engine.disconnected_grad
        H, k = self.hidden_dim, self.bptt_truncate
        x = engine.tensor("x", "int32", (length,))
        y = engine.tensor("y", "int32", (length,))
        inputs = [x, y]
        s0 = T.zeros((H,), dtype=FLOATX)
        Wt = W.T
        if length is None:
            n_steps = x.shape[0]
            n = T.minimum(k, n_steps) if k > 0 else n_steps
            mask = None
        else:
            n_steps = length
            n = min(k, length) if k > 0 else length
            mask = engine.tensor("mask", FLOATX, (length,))
            inputs.append(mask)
        start = n_steps - n

        def step(p_t, *rest):
            if mask is None:
                s_prev, Wt_ = rest
                return f(p_t + T.dot(s_prev, Wt_))
            m_t, s_prev, Wt_ = rest
            return m_t * f(p_t + T.dot(s_prev, Wt_)) + (T.constant(1.0, dtype=FLOATX) - m_t) * s_prev

        def run(proj, m, s_init, Wt_):
            seqs = [proj] if m is None else [proj, m]
            return engine.scan(step, sequences=seqs, outputs_info=[s_init], non_sequences=[Wt_])

        # The states before the window: no gradient reaches them (truncate_gradient drops it).
        if length is None:  # symbolic T: run every step (a zero-step scan is not allowed) and index
            s_all = run(cut(self._columns(x)), None, s0, cut(Wt))
            s_init = cut(T.concatenate([s0.dimshuffle("x", 0), s_all], axis=0)[start])
            if 0 < k <= self.UNROLL:
                return self._unrolled_window(x, y, s_init, f, lr, sgd)
        elif start > 0:
            s_init = cut(run(cut(U[:, x[:start]].T), mask[:start], s0, cut(Wt))[-1])
        else:
            s_init = s0
        xw, yw = x[start:], y[start:]
        mw = None if mask is None else mask[start:]
        pw = U[:, xw].T  # (n, H): the window's input columns, the only part of U with a gradient
        s_w = run(pw, mw, s_init, Wt)
        weights = T.ones_like(yw, dtype=FLOATX) if mw is None else mw
        return inputs, *self._window_step(s_w, yw, weights, pw, xw, lr, sgd)

    def _columns(self, ids):
        """U's columns ``ids`` as rows, (n, H), gathered from U's flat buffer: ``U[:, ids]`` becomes a row
        gather from ``Uᵀ``, which the C linker makes contiguous first (a copy of all of U, ~0.3 ms)."""
        H, C = self.hidden_dim, self.word_dim
        flat = (T.arange(H, dtype="int64") * C).dimshuffle("x", 0) + ids.dimshuffle(0, "x")
        return self.U.flatten()[flat]

    def _window_loss(self, s_w, yw, weights):
        """Σ weights·nll of the window's targets ``yw`` (n,) under ``softmax(s_w·Vᵀ)``, ``s_w`` (n, H): the
        output layer on the window's n rows only; one fused node (logits, loss and its gradient:
        :mod:`rnnlm.engine_ops.output`) on PyTensor.  On Aesara, whose own C log-softmax is fast, plain
        nodes are faster for these few rows (0.91 vs 1.09 ms a step; on PyTensor 0.98 vs 0.70 ms)."""
        if engine_ops.available():
            zero_bias = T.zeros((self.word_dim,), dtype=FLOATX)
            return engine_ops.softmax_nll(s_w, self.V.T, zero_bias, yw, weights)[0]
        logp = engine.log_softmax(T.dot(s_w, self.V.T), axis=-1)
        return -T.sum(weights * logp[T.arange(yw.shape[0]), yw])

    def _window_step(self, s_w, yw, weights, pw, xw, lr, sgd):
        """([dU, dV, dW], sgd updates) of the window's states ``s_w`` (n, H) from its input columns ``pw``:
        the loss, its gradients, and V's step in the output layer's node (:func:`engine_ops.fused_sgd`)."""
        V, W = self.V, self.W
        if sgd and engine_ops.fused_sgd():
            loss, V_new = engine_ops.softmax_nll_sgd(s_w, V, yw, weights, lr)
            dpw, dW = engine.grad(loss, [pw, W])
            return self._window_updates(xw, dpw, None, dW, lr, V_new)
        dpw, dV, dW = engine.grad(self._window_loss(s_w, yw, weights), [pw, V, W])
        return self._window_updates(xw, dpw, dV, dW, lr)

    def _window_updates(self, xw, dpw, dV, dW, lr, V_new=None):
        """([dU, dV, dW], sgd updates) from the window's word ids and the gradient of its U columns; V's
        step is ``V_new`` when given (then dV is None)."""
        U, V, W = self.U, self.V, self.W
        # Scatter into U's columns (repeated words accumulate).  One zero row is appended: PyTensor's
        # AdvancedIncSubtensor1 wrongly refuses a one-row increment as "runtime broadcasting".
        cols = T.concatenate([xw, xw[:1]])
        rows = T.concatenate([dpw, T.zeros_like(dpw[:1])], axis=0)
        dU = T.inc_subtensor(T.zeros_like(U).T[cols], rows).T
        V_new = V - lr * dV if V_new is None else V_new
        updates = [(U, T.inc_subtensor(U.T[cols], -lr * rows).T), (V, V_new), (W, W - lr * dW)]
        return [dU, dV, dW], updates

    UNROLL = 16  # C linker: windows up to this many steps are unrolled (no scan, no column gather of U)

    def _unrolled_window(self, x, y, s_init, f, lr, sgd):
        """The C linker's window for 0 < k <= UNROLL: the last k positions unrolled in the graph; positions
        before the sentence's start (T < k) are masked (they keep the state and add no loss)."""
        W = self.W
        k, one = self.bptt_truncate, T.constant(1.0, dtype=FLOATX)
        n_steps = x.shape[0]
        pos = [T.maximum(n_steps - k + i, 0) for i in range(k)]
        valid = [T.cast(T.ge(n_steps - k + i, 0), FLOATX) for i in range(k)]
        xw = T.stack([x[p] for p in pos])
        yw = T.stack([y[p] for p in pos])
        pw = T.stack([self.U[:, x[p]] for p in pos])  # (k, H): k views of U's columns, one small copy
        Wt = W.T
        s, states = s_init, []
        for i in range(k):
            s = valid[i] * f(pw[i] + T.dot(s, Wt)) + (one - valid[i]) * s
            states.append(s)
        return [x, y], *self._window_step(T.stack(states), yw, T.stack(valid), pw, xw, lr, sgd)

    # -- bptt and sgd_step (the window graph: one compiled function, or one per length bucket) -----
    def _window_fn(self, kind, length):
        key = (kind, length)
        if key not in self._compiled:
            lr = T.scalar("learning_rate", dtype=FLOATX)
            with engine.quiet():
                inputs, grads, updates = self._window_graph(length, lr, sgd=kind == "sgd_step")
                if kind == "bptt":
                    fn = engine.function(inputs, grads, mode=self.mode)
                else:
                    # accept_inplace: SoftmaxNLLSGD steps V in place (V is the function's to change)
                    fn = engine.function(inputs + [lr], [], updates=updates, mode=self.mode,
                                         accept_inplace=True)
            self._compiled[key] = fn
        return self._compiled[key]

    def _window_args(self, x, y):
        x, y = np.asarray(x, "int32"), np.asarray(y, "int32")
        if not self.linker == "jax":
            return None, [x, y]
        n = len(x)
        L = max(self.BUCKET, int(math.ceil(n / self.BUCKET)) * self.BUCKET)
        pad = L - n
        xp = np.concatenate([np.zeros(pad, "int32"), x])
        yp = np.concatenate([np.zeros(pad, "int32"), y])
        mask = np.concatenate([np.zeros(pad, FLOATX), np.ones(n, FLOATX)])
        return L, [xp, yp, mask]

    def bptt(self, x, y):
        """[dU, dV, dW] of the summed loss of one sentence (the tutorial's ``bptt``)."""
        if not self.windowed:
            return self.__getattr__("bptt")(x, y)
        if len(x) == 0:
            return [np.zeros_like(v.get_value()) for v in (self.U, self.V, self.W)]
        length, args = self._window_args(x, y)
        return [np.asarray(g) for g in self._window_fn("bptt", length)(*args)]

    def sgd_step(self, x, y, learning_rate):
        """One SGD step on one sentence (the tutorial's ``sgd_step``)."""
        if not self.windowed:
            return self.__getattr__("sgd_step")(x, y, learning_rate)
        if len(x) == 0:
            return []
        length, args = self._window_args(x, y)
        return self._window_fn("sgd_step", length)(*args, np.asarray(learning_rate, FLOATX))

    def __getattr__(self, item):
        specs = self.__dict__.get("_specs", {})
        if item not in specs:
            raise AttributeError(item)
        if item not in self._compiled:
            inputs, outputs, updates = specs[item]
            self._compiled[item] = engine.function(inputs, outputs, updates=updates, mode=self.mode)
        return self._compiled[item]

    def graph(self, name: str = "forward_propagation"):
        """The symbolic outputs of the function ``name`` (``forward_propagation``, ``predict``,
        ``ce_error``, ``bptt``), uncompiled, for :func:`rnnlm.engine.pprint`."""
        if name not in self._specs or name == "sgd_step":
            raise ConfigError(
                f"unknown graph {name!r}; choose one of forward_propagation, predict, ce_error, bptt"
            )
        return self._specs[name][1]

    def calculate_total_loss(self, X, Y) -> float:
        return float(
            sum(
                self.ce_error(np.asarray(x, "int32"), np.asarray(y, "int32"))
                for x, y in zip(X, Y, strict=True)
            )
        )

    def calculate_loss(self, X, Y) -> float:
        """Mean cross-entropy per predicted word (the tutorial's ``calculate_loss``)."""
        n = sum(len(y) for y in Y)
        return self.calculate_total_loss(X, Y) / max(n, 1)

    def to_language_model(self, linker="c") -> LanguageModel:
        """The same weights as a :class:`LanguageModel` (zero biases), for generation and scoring."""
        cfg = ModelConfig(
            vocab_size=self.word_dim,
            hidden_dim=self.hidden_dim,
            cell="rnn",
            activation=self.activation,
            output_bias=False,
        )
        p = self.get_params()
        return LanguageModel(cfg, params=tutorial_to_general(p["U"], p["V"], p["W"]), linker=linker)
