"""rnnlm's own bf16 GRU layer (native/gru_bf16.cc), which oneDNN's GRU op runs at bf16 on CPUs with AMX: its
outputs and every gradient are rnnlm's fused GRU layer at bf16 -- the NumPy emulation of it (every product's
operands rounded to bfloat16, float32 sums and states) -- to float32's precision, on the C and JAX linkers."""

import numpy as np
import pytest

from rnnlm import engine, engine_ops
from rnnlm.engine_ops import dnnl

_ON = engine_ops.dnnl_lstm("c") and dnnl.bf16_amx()
pytestmark = pytest.mark.skipif(not _ON, reason="the own bf16 GRU runs where oneDNN has AMX tiles")

T = engine.T
JAX = ["jax"] if engine_ops.dnnl_lstm("jax") else []
r = engine_ops.round_bf16


def _arrays(L, B, D, H, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s, scale=0.5: (rng.standard_normal(s) * scale).astype("float32")  # noqa: E731
    # weights at the usual initial scale: wider layers stay out of the chaotic regime
    return dict(x=f(L, B, D), U=f(3, H, D, scale=D ** -0.5), W=f(3, H, H, scale=H ** -0.5), b=f(3, H),
                h0=f(B, H), gS=f(L, B, H), gh=f(B, H))


def _emulation(a):
    """S, hT and the gradients of Σ(S·gS) + Σ(hT·gh) w.r.t. x, U, W, b, h0, from rnnlm's NumPy GRU at bf16."""
    x, U, W, b, h0 = (a[k] for k in ("x", "U", "W", "b", "h0"))
    L, B, D = x.shape
    G, H = 3 * W.shape[1], W.shape[1]
    op = engine_ops.RecurrentLayer("gru", masked=False, precision="bf16")
    P = (r(x.reshape(L * B, D)) @ r(U.reshape(G, D)).T + b.reshape(G)).reshape(L, B, G)
    Wt = W.reshape(G, H).T
    mask = np.ones((L, B), "float32")
    S, _, A = engine_ops.numpy_forward(op, P, mask, h0, None, Wt)
    gS = a["gS"].copy()
    gS[-1] += a["gh"]  # hT is the last state
    dA, dh0, _, dWt = engine_ops.numpy_backward(op, mask, h0, None, Wt, S, None, A, gS, None)
    dA2 = dA.reshape(L * B, G)
    dx = (r(dA2) @ r(U.reshape(G, D))).reshape(L, B, D)
    dU = (r(dA2).T @ r(x.reshape(L * B, D))).reshape(3, H, D)
    return [S, S[-1], dx, dU, dWt.T.reshape(3, H, H), dA2.sum(0).reshape(3, H), dh0]


def _kernel(linker, a, precision="bf16"):
    xs = {k: engine.tensor(k, "float32", a[k].shape) for k in ("x", "U", "W", "b", "h0")}
    x, U, W, b, h0 = xs.values()
    S, hT = dnnl.layer("gru", x, U, W, b, [h0], precision=precision)
    cost = T.sum(S * a["gS"]) + T.sum(hT * a["gh"])
    fn = engine.function(list(xs.values()), [S, hT, *engine.grad(cost, list(xs.values()))],
                         mode=engine.mode_for(linker))
    return fn(*(a[k] for k in xs))


# (L, B, D, H): odd widths, a row per thread and fewer; then the char preset's layer width, whose float32
# sums run in another order than NumPy's: an ulp there can move a later product's operand to the next
# bfloat16 value (2⁻⁸ away), and from there the two drift apart along the sequence. So at that width the
# mean error is held to 1/20 of what separates bf16 from fp32 there (2–5e-4, tested below), the worst
# element to bf16's.
@pytest.mark.core
@pytest.mark.parametrize("shape,mean,worst", [((7, 3, 5, 4), 1e-6, 1e-6), ((9, 5, 6, 17), 1e-6, 1e-6),
                                              ((4, 64, 64, 256), 1e-5, 3e-3)])
@pytest.mark.parametrize("linker", ["c", *JAX])
def test_the_layer_is_rnnlms_bf16_gru(linker, shape, mean, worst):
    a = _arrays(*shape)
    want = _emulation(a)
    got = _kernel(linker, a)
    names = ["S", "hT", "dx", "dU", "dW", "db", "dh0"]
    for name, g, w in zip(names, got, want, strict=True):
        scale = np.abs(w).max()
        assert scale > 1e-3, name  # every output and gradient is exercised
        err = np.abs(g - w) / scale
        assert err.mean() < mean and err.max() < worst, (name, err.mean(), err.max())


@pytest.mark.core
def test_bf16_is_in_effect():
    """The layer's products really take bfloat16 operands: every output differs from the fp32 layer's by
    more than float32's rounding, on average, and by no more than bfloat16's."""
    a = _arrays(4, 64, 64, 256, seed=3)
    low, full = _kernel("c", a), _kernel("c", a, "fp32")
    for g, f in zip(low, full, strict=True):
        err = np.abs(g - f) / np.abs(f).max()
        assert err.mean() > 1e-4 and err.max() < 3e-2


@pytest.mark.parametrize("which", ["own", "onednn"])
def test_rnnlm_gru_bf16_chooses_the_kernel(monkeypatch, which):
    """``RNNLM_GRU_BF16=onednn`` runs oneDNN's bf16 GRU instead, which keeps its states in bfloat16 (so every
    state is a bfloat16 value); the own layer keeps them float32, as rnnlm's graphs do."""
    monkeypatch.setenv("RNNLM_GRU_BF16", which)
    S = _kernel("c", _arrays(5, 4, 6, 16, seed=4))[0]
    assert np.array_equal(r(S), S) == (which == "onednn")
