"""rnnlm's own GRU and LSTM layers (native/rnn_own.cc), which oneDNN's layer ops run where ``dnnl.own_layer``
says so (both at fp32; at bf16 the GRU with bfloat16 instructions, the LSTM with AMX;
``RNNLM_LAYERS=own`` everywhere): their outputs and every gradient are rnnlm's fused layer -- at bf16 its
NumPy emulation (every product's operands rounded to bfloat16, float32 sums and states) -- to float32's
precision, on the C and JAX linkers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm import engine, engine_ops
from rnnlm.engine_ops import dnnl

pytestmark = pytest.mark.skipif(not engine_ops.dnnl_lstm("c"), reason="no oneDNN layers here")

T = engine.T
JAX = ["jax"] if engine_ops.dnnl_lstm("jax") else []
r = engine_ops.round_bf16
CELLS = [c for c in ("gru", "lstm") if dnnl.own_layer(c, "bf16")]


def _arrays(cell, L, B, D, H, seed=0):
    G = engine_ops.GATES[cell]
    rng = np.random.default_rng(seed)
    f = lambda *s, scale=0.5: (rng.standard_normal(s) * scale).astype("float32")  # noqa: E731
    # weights at the usual initial scale: wider layers stay out of the chaotic regime
    return dict(x=f(L, B, D), U=f(G, H, D, scale=D ** -0.5), W=f(G, H, H, scale=H ** -0.5), b=f(G, H),
                h0=f(B, H), c0=f(B, H), gS=f(L, B, H), gh=f(B, H), gc=f(B, H))


def _names(cell):
    return ["S", "hT", *(["cT"] if cell == "lstm" else []), "dx", "dU", "dW", "db", "dh0",
            *(["dc0"] if cell == "lstm" else [])]


def _inputs(cell):
    return ("x", "U", "W", "b", "h0", "c0") if cell == "lstm" else ("x", "U", "W", "b", "h0")


def _emulation(cell, a, precision="bf16", mask=None):
    """S, hT (, cT) and the gradients of Σ(S·gS) + Σ(hT·gh) (+ Σ(cT·gc)) w.r.t. x, U, W, b, h0 (, c0), from
    rnnlm's NumPy layer at ``precision`` (``mask`` (L, B): its masked layer)."""
    r = engine_ops.round_bf16 if precision == "bf16" else np.asarray
    lstm = cell == "lstm"
    x, U, W, b, h0 = (a[k] for k in ("x", "U", "W", "b", "h0"))
    c0 = a["c0"] if lstm else None
    L, B, D = x.shape
    G, H = U.shape[0] * U.shape[1], W.shape[1]
    op = engine_ops.RecurrentLayer(cell, masked=mask is not None, precision=precision)
    P = (r(x.reshape(L * B, D)) @ r(U.reshape(G, D)).T + b.reshape(G)).reshape(L, B, G)
    Wt = W.reshape(G, H).T
    mask = np.ones((L, B), "float32") if mask is None else mask
    S, C, A = engine_ops.numpy_forward(op, P, mask, h0, c0, Wt)
    gS = a["gS"].copy()
    gS[-1] += a["gh"]  # hT is the last state
    gC = None
    if lstm:
        gC = np.zeros_like(gS)
        gC[-1] = a["gc"]
    dA, dh0, dc0, dWt = engine_ops.numpy_backward(op, mask, h0, c0, Wt, S, C, A, gS, gC)
    dA2 = dA.reshape(L * B, G)
    dx = (r(dA2) @ r(U.reshape(G, D))).reshape(L, B, D)
    dU = (r(dA2).T @ r(x.reshape(L * B, D))).reshape(U.shape)
    grads = [dx, dU, dWt.T.reshape(W.shape), dA2.sum(0).reshape(b.shape), dh0]
    return [S, S[-1], C[-1], *grads, dc0] if lstm else [S, S[-1], *grads]


def _kernel(cell, linker, a, precision="bf16"):
    xs = {k: engine.tensor(k, "float32", a[k].shape) for k in _inputs(cell)}
    x, U, W, b, *init = xs.values()
    S, *finals = dnnl.layer(cell, x, U, W, b, init, precision=precision)
    cost = T.sum(S * a["gS"]) + sum(T.sum(f * a[g]) for f, g in zip(finals, ("gh", "gc"), strict=False))
    fn = engine.function(list(xs.values()), [S, *finals, *engine.grad(cost, list(xs.values()))],
                         mode=engine.mode_for(linker))
    return fn(*(a[k] for k in xs))


def _direct(cell, a, precision, mask=None):
    """The layer's C entry points on NumPy arrays (no graph): S, hT (, cT) and the gradients, as
    :func:`_kernel` returns them; ``mask`` (L, B) or None."""
    lstm, (L, B, D), H = cell == "lstm", a["x"].shape, a["W"].shape[-1]
    bf16 = int(precision == "bf16")
    ins = [a[k] for k in _inputs(cell)]
    ws = np.zeros(dnnl.workspace_words(L, B, D, H, precision, cell, mask is not None), np.float32)
    S, hT, cT = np.zeros((L, B, H), np.float32), np.zeros((B, H), np.float32), np.zeros((B, H), np.float32)
    finals = [hT, cT] if lstm else [hT]
    dnnl._call(f"rnnlm_{cell}_forward", (L, B, D, H, bf16), (*ins, S, *finals, ws, mask))
    grads = [np.zeros_like(a[k]) for k in _inputs(cell)]
    seeds = [a["gS"], a["gh"], *([a["gc"]] if lstm else [])]
    dnnl._call(f"rnnlm_{cell}_backward", (L, B, D, H, bf16), (*ins, S, *finals, ws, *seeds, *grads, mask))
    return [S, *finals, *grads]


@settings(max_examples=60, deadline=None)
@given(cell=st.sampled_from(["gru", "lstm"]), precision=st.sampled_from(["fp32", "bf16"]),
       shape=st.tuples(*(st.integers(1, n) for n in (6, 9, 12, 20))), seed=st.integers(0, 2**16),
       masked=st.sampled_from([None, "padded", "any"]))
def test_any_shape_is_rnnlms_layer(cell, precision, shape, seed, masked):
    """Fuzzed (L, B, D, H) down to ones (one step, one row, fewer rows than threads), full, padded or any
    mask: the own layer's C entry points give rnnlm's NumPy layer at that precision (masked: its masked
    layer), outputs and every gradient -- at fp32 to float32's
    precision.  At bf16 a sum's last ulp can move a later operand to the next bfloat16 value (2⁻⁸ away), so
    (as at the char width above) the mean error is held to a quarter of the fp32 layer's distance from the
    same emulation (at most 0.13 of it in 800 draws) and the worst element to 3e-3 (at most 1.6e-3)."""
    if not dnnl.own_layer(cell, precision):
        return
    a = _arrays(cell, *shape, seed=seed)
    mask = None
    if masked:  # rows padded at the end, or any weights in [0, 1] (the blend is linear in m)
        rng = np.random.default_rng(seed)
        L, B = shape[:2]
        mask = (np.arange(L)[:, None] < rng.integers(1, L + 1, B)).astype("float32") if masked == "padded" \
            else rng.choice(np.float32([0, 0.25, 1]), (L, B))
    got, want = _direct(cell, a, precision, mask), _emulation(cell, a, precision, mask)
    fp32 = _emulation(cell, a, "fp32", mask) if precision == "bf16" else want
    for name, g, w, f in zip(_names(cell), got, want, fp32, strict=True):
        scale = max(np.abs(w).max(), 1.0)
        if precision == "fp32":
            assert np.abs(g - w).max() <= 1e-5 * scale, name
        else:
            err = np.abs(g - w)
            assert err.mean() <= np.abs(f - w).mean() / 4 and err.max() <= 3e-3 * scale, name


def test_the_own_layers_run_where_the_cpu_has_their_instructions(monkeypatch):
    flags = dnnl._cpu_flags().split()
    assert dnnl.own_layer("gru") and dnnl.own_layer("lstm")
    assert dnnl.own_layer("gru", "bf16") == ("avx512_bf16" in flags or "amx_bf16" in flags)
    assert dnnl.own_layer("lstm", "bf16") == dnnl.bf16_amx() == ("amx_bf16" in flags)
    assert not dnnl.own_layer("rnn") and not dnnl.own_layer("rnn", "bf16")
    for which, want in (("own", True), ("onednn", False)):
        monkeypatch.setenv("RNNLM_LAYERS", which)
        assert [dnnl.own_layer(c, p) for c in ("gru", "lstm") for p in ("fp32", "bf16")] == [want] * 4
        assert not dnnl.own_layer("rnn")


# The float32 layers against rnnlm's NumPy layer.
@pytest.mark.core
@pytest.mark.parametrize("shape", [(7, 3, 5, 4), (9, 5, 6, 17), (4, 64, 64, 256)])
@pytest.mark.parametrize("linker", ["c", *JAX])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_fp32_layer_is_rnnlms_layer(cell, linker, shape):
    a = _arrays(cell, *shape, seed=1)
    for name, g, w in zip(_names(cell), _kernel(cell, linker, a, "fp32"), _emulation(cell, a, "fp32"),
                          strict=True):
        scale = np.abs(w).max()
        assert scale > 1e-3, name
        assert np.abs(g - w).max() / scale < 1e-5, name


# (L, B, D, H): odd widths, a row per thread and fewer: to float32's precision.  Then the char preset's
# layer width, where the two compute a gate's gradient with its factors in another order: an ulp there
# can move a product's operand to the next bfloat16 value (2⁻⁸ away), in the forward pass as in the
# backward, and from there they drift apart along the sequence.  There the mean error is held to a
# twentieth of the fp32 layer's distance from the same emulation, the worst element to bf16's.
@pytest.mark.core
@pytest.mark.parametrize("shape", [(7, 3, 5, 4), (9, 5, 6, 17), (4, 64, 64, 256)])
@pytest.mark.parametrize("linker", ["c", *JAX])
@pytest.mark.parametrize("cell", CELLS)
def test_the_layer_is_rnnlms_bf16_layer(cell, linker, shape):
    a = _arrays(cell, *shape)
    want = _emulation(cell, a)
    got = _kernel(cell, linker, a)
    wide = shape[-1] > 100
    fp32 = _kernel(cell, linker, a, "fp32") if wide else want
    for name, g, w, f in zip(_names(cell), got, want, fp32, strict=True):
        scale = np.abs(w).max()
        assert scale > 1e-3, name  # every output and gradient is exercised
        err = np.abs(g - w) / scale
        if wide:
            assert err.mean() < np.abs(f - w).mean() / scale / 20 and err.max() < 3e-3, (name, err.mean())
        else:
            assert err.max() < 1e-5, (name, err.max())


@pytest.mark.core
@pytest.mark.parametrize("cell", CELLS)
def test_bf16_is_in_effect(cell):
    """The layer's products really take bfloat16 operands: every output differs from the fp32 layer's by
    more than float32's rounding, on average, and by no more than bfloat16's."""
    a = _arrays(cell, 4, 64, 64, 256, seed=3)
    low, full = _kernel(cell, "c", a), _kernel(cell, "c", a, "fp32")
    for name, g, f in zip(_names(cell), low, full, strict=True):
        err = np.abs(g - f) / np.abs(f).max()
        assert err.mean() > 1e-4 and err.max() < 3e-2, name


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("which", ["own", "onednn"])
def test_rnnlm_layers_chooses_the_kernel(monkeypatch, cell, which):
    """``RNNLM_LAYERS=onednn`` runs oneDNN's bf16 layer instead, which keeps its states in bfloat16 (so
    every state is a bfloat16 value); the own layer keeps them float32, as rnnlm's graphs do."""
    monkeypatch.setenv("RNNLM_LAYERS", which)
    S = _kernel(cell, "c", _arrays(cell, 5, 4, 6, 16, seed=4))[0]
    assert np.array_equal(r(S), S) == (which == "onednn")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_workspace_is_the_chosen_kernels(monkeypatch, cell, precision):
    """The op sizes its workspace from the kernel that will run (read at each call): the own layer's gates
    of every step (GRU 3H, LSTM 6H floats a row), oneDNN's its own layout."""
    L, B, D, H = 5, 4, 6, 16
    own = L * B * H * {"gru": 3, "lstm": 6}[cell]
    monkeypatch.setenv("RNNLM_LAYERS", "own")
    assert dnnl.workspace_words(L, B, D, H, precision, cell) == own
    monkeypatch.setenv("RNNLM_LAYERS", "onednn")
    assert dnnl.workspace_words(L, B, D, H, precision, cell) != own
