"""The tutorial's ``RNNTheano`` (part 2) on the engine layer: :class:`RNN`.

One sentence at a time; parameters U (H×C), V (C×H), W (H×H); ``s_t = f(U[:, x_t] + W s_{t-1})``,
``o_t = softmax(V s_t)``. ``fast=False`` keeps the faithful graph (the softmax inside the scan, as in the
blog post); ``fast=True`` (default) computes ``softmax(S Vᵀ)`` for all steps with one matrix product
outside the scan, since the output layer does not depend on the recurrence.
"""

from __future__ import annotations

import numpy as np

from rnnlm import engine
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
    """

    def __init__(self, word_dim, hidden_dim=100, bptt_truncate=4, activation="tanh", seed=None,
                 params=None, fast=True, linker="c"):
        self.word_dim, self.hidden_dim = int(word_dim), int(hidden_dim)
        self.bptt_truncate, self.activation, self.fast = int(bptt_truncate), activation, fast
        self.linker = linker
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

            s = engine.scan(step, sequences=[x], outputs_info=[s0], non_sequences=[U, W],
                            truncate_gradient=self.bptt_truncate, label="rnn_fast")
            logp = engine.log_softmax(T.dot(s, V.T), axis=-1)  # (T, C): one GEMM for all steps
        else:
            def step(x_t, s_prev, U, V, W):
                s_t = f(U[:, x_t] + T.dot(W, s_prev))
                logp_t = engine.log_softmax(T.dot(V, s_t), axis=-1)
                return [logp_t, s_t]

            logp, s = engine.scan(step, sequences=[x], outputs_info=[None, s0],
                                  non_sequences=[U, V, W], truncate_gradient=self.bptt_truncate,
                                  label="rnn_faithful")
        o = T.exp(logp)
        o_error = -T.sum(logp[T.arange(y.shape[0]), y])
        dU, dV, dW = engine.grad(o_error, [U, V, W])
        lr = T.scalar("learning_rate", dtype=FLOATX)
        # Compiled on first use: the C linker takes seconds per function.
        self._specs = {
            "forward_propagation": ([x], o, None),
            "predict": ([x], T.argmax(o, axis=1), None),
            "ce_error": ([x, y], o_error, None),
            "bptt": ([x, y], [dU, dV, dW], None),
            "sgd_step": ([x, y, lr], [], [(U, U - lr * dU), (V, V - lr * dV), (W, W - lr * dW)]),
        }
        self._compiled = {}

    def __getattr__(self, item):
        specs = self.__dict__.get("_specs", {})
        if item not in specs:
            raise AttributeError(item)
        if item not in self._compiled:
            inputs, outputs, updates = specs[item]
            self._compiled[item] = engine.function(inputs, outputs, updates=updates,
                                                   mode=engine.mode_for(self.linker))
        return self._compiled[item]

    def graph(self, name: str = "forward_propagation"):
        """The symbolic outputs of the function ``name`` (``forward_propagation``, ``predict``,
        ``ce_error``, ``bptt``), uncompiled, for :func:`rnnlm.engine.pprint`."""
        if name not in self._specs or name == "sgd_step":
            choices = "forward_propagation, predict, ce_error, bptt"
            raise ConfigError(f"unknown graph {name!r}; choose one of {choices}")
        return self._specs[name][1]

    def calculate_total_loss(self, X, Y) -> float:
        return float(sum(self.ce_error(np.asarray(x, "int32"), np.asarray(y, "int32"))
                         for x, y in zip(X, Y, strict=True)))

    def calculate_loss(self, X, Y) -> float:
        """Mean cross-entropy per predicted word (the tutorial's ``calculate_loss``)."""
        n = sum(len(y) for y in Y)
        return self.calculate_total_loss(X, Y) / max(n, 1)

    def to_language_model(self, linker="c") -> LanguageModel:
        """The same weights as a :class:`LanguageModel` (zero biases), for generation and scoring."""
        cfg = ModelConfig(vocab_size=self.word_dim, hidden_dim=self.hidden_dim, cell="rnn",
                          activation=self.activation, output_bias=False)
        p = self.get_params()
        return LanguageModel(cfg, params=tutorial_to_general(p["U"], p["V"], p["W"]), linker=linker)
