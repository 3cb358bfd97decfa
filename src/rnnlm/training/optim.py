"""Optimizers as symbolic updates compiled into the train step.

Each optimizer keeps its state in shared variables (so it stays on the device between steps
under the JAX linker) and exposes it by name for checkpoints.  The learning rate is a shared
scalar too: annealing changes it without recompiling.  Global-norm clipping (``clip``) rescales
all gradients together when their joint L2 norm exceeds ``clip`` (scan's ``grad_clip`` clips
elementwise, which is not the same thing).
"""

from __future__ import annotations

import numpy as np

from rnnlm import engine
from rnnlm.errors import ConfigError

T = engine.T
FLOATX = engine.floatX
OPTIMIZERS = ("sgd", "rmsprop", "adam")


def _c(v):
    return T.constant(v, dtype=FLOATX)


class Optimizer:
    """Base: ``updates(params, grads) -> (updates list, grad_norm)``; ``state`` name -> shared."""

    name = "base"

    def __init__(self, lr: float, clip: float = 0.0, weight_decay: float = 0.0):
        if not lr > 0:
            raise ConfigError(f"learning rate must be positive, got {lr}")
        if clip < 0:
            raise ConfigError(f"clip must be >= 0, got {clip}")
        if weight_decay < 0:
            raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")
        self.lr = engine.shared(np.asarray(lr, FLOATX), name="lr")
        self.clip = float(clip)
        self.weight_decay = float(weight_decay)
        self.state = {}

    @property
    def learning_rate(self) -> float:
        return float(self.lr.get_value())

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.lr.set_value(np.asarray(value, FLOATX))

    slots: tuple = ()

    def bind(self, params) -> None:
        """Create the state slots for ``params`` now (before a checkpoint's state is loaded)."""
        for p in params:
            for slot in self.slots:
                self._slot(p, slot)

    def _slot(self, param, slot):
        key = f"{param.name}.{slot}"
        if key not in self.state:  # idempotent: every compiled shape shares one state
            self.state[key] = engine.shared(np.zeros(param.get_value().shape, FLOATX), name=key)
        return self.state[key]

    def clipped(self, grads):
        """Global L2 norm of the gradients and the gradients rescaled to norm <= clip."""
        gnorm = T.sqrt(sum(T.sum(T.sqr(g)) for g in grads))
        if not self.clip:
            return grads, gnorm
        scale = T.minimum(_c(1.0), _c(self.clip) / (gnorm + _c(1e-6)))
        return [g * scale for g in grads], gnorm

    def updates(self, params, grads):
        """``(updates, grad_norm)``: the optimizer's step on clipped gradients, then decoupled weight decay
        (``θ ← θ − lr·wd·θ``, as AdamW) when ``weight_decay`` > 0."""
        grads, gnorm = self.clipped(grads)
        ups = self._updates(params, grads)
        if self.weight_decay:
            wd = _c(self.weight_decay)
            ups = [(v, new - self.lr * wd * v) if any(v is p for p in params) else (v, new) for v, new in ups]
        return ups, gnorm

    def get_state(self) -> dict:
        out = {k: np.asarray(v.get_value()) for k, v in self.state.items()}
        out["lr"] = np.asarray(self.lr.get_value())
        return out

    def set_state(self, state: dict) -> None:
        for k, v in self.state.items():
            if k in state:
                v.set_value(np.asarray(state[k], FLOATX))
        if "lr" in state:
            self.lr.set_value(np.asarray(state["lr"], FLOATX))


class SGD(Optimizer):
    """θ ← θ − lr·g (the tutorial's rule; the newbob schedule halves lr when validation stalls)."""

    name = "sgd"

    def _updates(self, params, grads):
        return [(p, p - self.lr * g) for p, g in zip(params, grads, strict=True)]


class RMSProp(Optimizer):
    """Part 4 of the tutorial: m ← decay·m + (1 − decay)·g²;  θ ← θ − lr·g / sqrt(m + eps)."""

    name = "rmsprop"
    slots = ("ms",)

    def __init__(self, lr=0.001, decay=0.9, eps=1e-6, clip=0.0, weight_decay=0.0):
        super().__init__(lr, clip, weight_decay)
        self.decay, self.eps = decay, eps

    def _updates(self, params, grads):
        ups = []
        for p, g in zip(params, grads, strict=True):
            m = self._slot(p, "ms")
            m_new = _c(self.decay) * m + _c(1 - self.decay) * T.sqr(g)
            ups += [(m, m_new), (p, p - self.lr * g / T.sqrt(m_new + _c(self.eps)))]
        return ups


class Adam(Optimizer):
    """Kingma & Ba: bias-corrected first and second moments."""

    name = "adam"
    slots = ("m", "v")

    def __init__(self, lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8, clip=0.0, weight_decay=0.0):
        super().__init__(lr, clip, weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def bind(self, params) -> None:
        super().bind(params)
        if "adam.t" not in self.state:
            self.state["adam.t"] = engine.shared(np.asarray(0.0, FLOATX), name="adam.t")

    def _updates(self, params, grads):
        self.bind(params)
        t = self.state["adam.t"]
        t_new = t + _c(1.0)
        b1, b2 = _c(self.beta1), _c(self.beta2)
        corr = T.sqrt(_c(1.0) - b2**t_new) / (_c(1.0) - b1**t_new)
        ups = [(t, t_new)]
        for p, g in zip(params, grads, strict=True):
            m, v = self._slot(p, "m"), self._slot(p, "v")
            m_new = b1 * m + (_c(1.0) - b1) * g
            v_new = b2 * v + (_c(1.0) - b2) * T.sqr(g)
            ups += [(m, m_new), (v, v_new), (p, p - self.lr * corr * m_new / (T.sqrt(v_new) + _c(self.eps)))]
        return ups


#: Default peak learning rates. SGD's is for the mean loss per token of a batch (the tutorial's 0.005
#: was for the summed loss of one sentence); Adam's is karpathy's and PyTorch's usual char-LSTM rate.
DEFAULT_LR = {"sgd": 1.0, "rmsprop": 0.001, "adam": 0.002}


def make_optimizer(
    name: str, lr: float | None = None, clip: float = 0.0, weight_decay: float = 0.0
) -> Optimizer:
    """``sgd``, ``rmsprop`` or ``adam`` with learning rate ``lr`` (default :data:`DEFAULT_LR`)."""
    name = name.lower()
    kinds = {"sgd": SGD, "rmsprop": RMSProp, "adam": Adam}
    if name not in kinds:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return kinds[name](DEFAULT_LR[name] if lr is None else lr, clip=clip, weight_decay=weight_decay)
