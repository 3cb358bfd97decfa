"""``precision="bf16"``: bfloat16 operands, float32 accumulation, in the fused layers and the products around
them (rnnlm.engine_ops.MatMul). The JAX code must do exactly what the NumPy emulation does (operands rounded
to bf16, products summed in float32) -- which differs measurably from fp32 -- and a bf16 model must train
like the fp32 one while scoring at fp32."""

import numpy as np
import pytest

from rnnlm import engine, engine_ops
from rnnlm.errors import ConfigError
from rnnlm.models.lm import LanguageModel, ModelConfig

pytestmark = pytest.mark.skipif(
    not engine_ops.available() or engine.default_linker() != "jax", reason="bf16 runs on the JAX linker"
)

C, D, H, L, B = 17, 8, 16, 9, 4


def _rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / (np.abs(np.asarray(b)).max() + 1e-30))


def test_round_bf16_equals_the_bfloat16_type():
    """Round to nearest, ties to even, as ml_dtypes' (and so JAX's) bfloat16 does -- ties included."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.standard_normal(10_000).astype("float32") * 10.0 ** rng.integers(-8, 8, 10_000),
        # exact ties: the low 16 bits are 0x8000, with an even and an odd bit 16 above them
        (np.array([0x3F808000, 0x3F818000, 0xBF808000, 0x40490000], np.uint32)).view(np.float32),
        np.array([0.0, -0.0, 1.0, np.inf, -np.inf], np.float32),
    ])
    want = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(engine_ops.round_bf16(x), want)


@pytest.mark.parametrize("cell,G", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_bf16_layer_jax_equals_the_numpy_emulation_and_differs_from_fp32(cell, G):
    rng = np.random.default_rng(1)
    P = rng.standard_normal((L, B, G * H)).astype("float32")
    mask = np.ones((L, B), "float32")
    mask[6:, 1] = 0
    s0 = rng.standard_normal((B, H)).astype("float32")
    c0 = rng.standard_normal((B, H)).astype("float32") if cell == "lstm" else None
    Wt = (rng.standard_normal((H, G * H)) * 0.3).astype("float32")
    gS = rng.standard_normal((L, B, H)).astype("float32")
    gC = rng.standard_normal((L, B, H)).astype("float32") if cell == "lstm" else None
    results = {}
    for precision in ("fp32", "bf16"):
        op = engine_ops.RecurrentLayer(cell, masked=True, precision=precision)
        fwd_np = engine_ops.numpy_forward(op, P, mask, s0, c0, Wt)
        fwd_jax = engine_ops.jax_forward(op, P, mask, s0, c0, Wt)
        back_np = engine_ops.numpy_backward(op, mask, s0, c0, Wt, *fwd_np, gS, gC)
        # Both backward passes start from the same stored forward values: XLA's and NumPy's elementwise code
        # differ by an ulp here and there, which at bf16 can move an operand across a rounding boundary;
        # over the sequence one such flip grew to 3e-4 (LSTM, a Xeon with AMX), within a step it does not.
        back_jax = engine_ops.jax_backward(op, mask, s0, c0, Wt, *fwd_np, gS, gC)
        for a, b in zip(fwd_np + back_np, fwd_jax + back_jax, strict=True):
            if a is not None:
                assert _rel(b, a) < 2e-5
        results[precision] = back_np
    dWt32, dWt16 = results["fp32"][-1], results["bf16"][-1]
    assert 1e-4 < _rel(dWt16, dWt32) < 3e-2  # bf16 is really in effect, and close


def test_matmul_op_and_its_gradient():
    T = engine.T
    rng = np.random.default_rng(2)
    a = rng.standard_normal((5, 7)).astype("float32")
    b = rng.standard_normal((7, 3)).astype("float32")
    g = rng.standard_normal((5, 3)).astype("float32")
    av, bv = engine.tensor("a", "float32", (5, 7)), engine.tensor("b", "float32", (7, 3))
    out = engine_ops.matmul(av, bv, "bf16")
    da, db = engine.grad(T.sum(out * g), [av, bv])
    r = engine_ops.round_bf16
    for linker in ("c", "jax"):
        f = engine.function([av, bv], [out, da, db], mode=engine.mode_for(linker))
        got = f(a, b)
        for x, want in zip(got, (r(a) @ r(b), r(g) @ r(b).T, r(a).T @ r(g)), strict=True):
            np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-6)
    assert _rel(r(a) @ r(b), a @ b) > 1e-4


def _model(precision, cell="gru"):
    cfg = ModelConfig(vocab_size=C, hidden_dim=H, cell=cell, layers=2, embedding_dim=D)
    return LanguageModel(cfg, seed=3, linker="jax", precision=precision)


def _batch(seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, C, (L, B)).astype("int32"), rng.integers(0, C, (L, B)).astype("int32"),
            np.ones((L, B), "float32"))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_bf16_gradients_are_close_to_fp32_and_scoring_stays_fp32(cell):
    m32, m16 = _model("fp32", cell), _model("bf16", cell)
    x, y, mask = _batch(4)
    g32, g16 = m32.gradients(x, y, mask), m16.gradients(x, y, mask)
    assert any(_rel(g16[k], g32[k]) > 1e-5 for k in g32)
    for k in g32:
        assert _rel(g16[k], g32[k]) < 5e-2, k
    assert any("bf16" in str(n.op) for n in m16.graph("grads", (L, B)).maker.fgraph.apply_nodes)
    e32, e16 = m32.evaluate(x, y, mask), m16.evaluate(x, y, mask)
    np.testing.assert_array_equal(e32[0], e16[0])  # scoring is fp32 whatever the training precision


def test_bf16_trains_like_fp32():
    """Thirty Adam steps on one repeated batch: the bf16 loss curve stays within 1% of fp32's."""
    from rnnlm.training.optim import make_optimizer

    x, y, mask = _batch(5)
    losses = {}
    for precision in ("fp32", "bf16"):
        m = _model(precision)
        m.set_optimizer(make_optimizer("adam", 1e-2))
        losses[precision] = [float(m.train_step(x, y, mask)[0]) for _ in range(30)]
    assert losses["fp32"][-1] < 0.5 * losses["fp32"][0]
    np.testing.assert_allclose(losses["bf16"], losses["fp32"], rtol=1e-2)
    assert losses["bf16"][1:] != losses["fp32"][1:]  # the same first step, then bf16's own path


def test_bf16_needs_the_jax_linker_and_the_fused_layers(monkeypatch):
    cfg = ModelConfig(vocab_size=C, hidden_dim=H, cell="gru")
    with pytest.raises(ConfigError, match="bf16 needs the jax linker"):
        LanguageModel(cfg, linker="c", precision="bf16")
    monkeypatch.setattr(engine_ops, "available", lambda: False)  # every layer a scan: its dots are fp32
    with pytest.raises(ConfigError, match="bf16 needs the fused layers"):
        LanguageModel(cfg, linker="jax", precision="bf16")
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16"):
        LanguageModel(cfg, linker="jax", precision="fp16")
