"""The fused recurrent layer (rnnlm.engine_ops): LanguageModel's default path on PyTensor with full BPTT.

Every gradient equals the ``scan`` graph's (and the NumPy reference's) on odd lengths, padded batches,
carried states, dropout masks, 1 and 2 layers, rnn/gru/lstm, both gates and activations, on the JAX
linker and on the C linker (the op's NumPy ``perform``)."""

import numpy as np
import pytest

from rnnlm import engine, engine_ops
from rnnlm.models.lm import LanguageModel, ModelConfig
from rnnlm.models.reference import GatedRNNNumpy

pytestmark = pytest.mark.skipif(not engine_ops.available(), reason="the fused layer runs on PyTensor only")

C, D, H, L, B = 13, 4, 6, 7, 3
LINKERS = ["c"] + (["jax"] if engine.default_linker() == "jax" else [])


def _batch(seed, ragged=True):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, C, (L, B)).astype("int32")
    y = rng.integers(0, C, (L, B)).astype("int32")
    mask = np.ones((L, B), "float32")
    if ragged:
        mask[5:, 1] = 0  # right-padded rows of different lengths
        mask[2:, 2] = 0
    return x, y, mask


def _scan_grads(model, *args, **kwargs):
    """The same model's gradients through ``scan`` + autodiff (the fused layer switched off)."""
    saved = engine_ops.available
    engine_ops.available = lambda: False
    try:
        model._fns = {}
        return model.gradients(*args, **kwargs) if "drops" not in kwargs else None
    finally:
        engine_ops.available = saved
        model._fns = {}


def _assert_same(got, want, rtol=2e-4, atol=2e-6):
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)


CASES = [("rnn", "tanh", "sigmoid", 1), ("rnn", "relu", "sigmoid", 2), ("gru", "tanh", "sigmoid", 2),
         ("gru", "tanh", "hard_sigmoid", 1), ("lstm", "tanh", "sigmoid", 2),
         ("lstm", "tanh", "hard_sigmoid", 1)]


@pytest.mark.core
@pytest.mark.parametrize("linker", LINKERS)
@pytest.mark.parametrize("cell,act,gate,layers", CASES)
def test_fused_gradients_equal_the_scan_graph(linker, cell, act, gate, layers):
    cfg = ModelConfig(vocab_size=C, hidden_dim=H, cell=cell, layers=layers, embedding_dim=D,
                      activation=act, gate=gate)
    model = LanguageModel(cfg, seed=3, linker=linker)
    rng = np.random.default_rng(4)
    states = [rng.standard_normal(s.shape).astype("float32") * 0.5 for s in model.initial_state(B)]
    for ragged in (True, False):
        x, y, mask = _batch(5, ragged)
        got = model.gradients(x, y, mask, states)
        assert model._fns and all(k[2] == ragged for k in model._fns)  # a full batch: no mask blend
        loops = engine.scan_loops(model.graph("grads", (L, B)))
        assert [lp["name"] for lp in loops] == [f"{cell}{l}" for l in range(layers)]
        _assert_same(got, _scan_grads(model, x, y, mask, states))


@pytest.mark.core
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_fused_gradients_equal_the_numpy_reference(cell):
    """Float64 reference, hand-written BPTT: padded batch, 2 layers, no carried state."""
    cfg = ModelConfig(vocab_size=C, hidden_dim=H, cell=cell, layers=2, embedding_dim=D)
    model = LanguageModel(cfg, seed=6, linker=LINKERS[-1])
    ref = GatedRNNNumpy(cell, C, H, embedding_dim=D, layers=2,
                        params={k: v.astype(np.float64) for k, v in model.get_params().items()})
    x, y, mask = _batch(7)
    got = model.gradients(x, y, mask)
    want = {k: np.zeros_like(v) for k, v in ref.params.items()}
    loss = 0.0
    for b in range(B):
        n = int(mask[:, b].sum())
        loss += ref.loss(x[:n, b], y[:n, b])
        for k, g in ref.bptt(x[:n, b], y[:n, b]).items():
            want[k] += g
    assert got["loss_sum"] == pytest.approx(loss, rel=1e-5)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-3, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("linker", LINKERS)
def test_fused_train_step_with_dropout_and_carried_state_equals_the_scan_graph(linker):
    """A training step (Adam, clip) with locked dropout masks and a carried state: the same parameters
    after it as through the scan graph."""
    from rnnlm.training.optim import make_optimizer

    cfg = ModelConfig(vocab_size=C, hidden_dim=H, cell="lstm", layers=2, embedding_dim=D, dropout=0.3,
                      embed_dropout=0.2)
    x, y, mask = _batch(8)
    rng = np.random.default_rng(9)
    shapes = [(B, H)] * cfg.layers + [(B, D)]  # LanguageModel.dropout_shapes: locked (per sequence) masks
    drops = [(rng.random(s) > 0.3).astype("float32") / np.float32(0.7) for s in shapes]
    results = []
    for fused in (True, False):
        saved = engine_ops.available
        engine_ops.available = (lambda: True) if fused else (lambda: False)
        try:
            model = LanguageModel(cfg, seed=10, linker=linker)
            model.set_optimizer(make_optimizer("adam", lr=0.01, clip=1.0))
            states = [s + 0.25 for s in model.initial_state(B)]
            loss, ntok, gnorm, new_states = model.train_step(x, y, mask, states, drops)
            new_states = [np.asarray(s) for s in new_states]
            results.append((float(loss), float(gnorm), new_states, model.get_params()))
        finally:
            engine_ops.available = saved
    (l1, g1, s1, p1), (l2, g2, s2, p2) = results
    assert l1 == pytest.approx(l2, rel=1e-5) and g1 == pytest.approx(g2, rel=1e-4)
    for a, b in zip(s1, s2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for k in p2:
        np.testing.assert_allclose(p1[k], p2[k], rtol=1e-4, atol=1e-6, err_msg=k)
        assert p1[k].dtype == np.float32


def test_fused_layer_ops_directly_match_between_numpy_and_jax():
    """The two implementations of the op (NumPy perform, JAX) give the same forward and backward."""
    pytest.importorskip("jax")
    import jax

    jax.config.update("jax_enable_x64", False)
    rng = np.random.default_rng(11)
    for cell, G in (("rnn", 1), ("gru", 3), ("lstm", 4)):
        op = engine_ops.RecurrentLayer(cell, masked=True)
        P = rng.standard_normal((L, B, G * H)).astype("float32")
        mask = _batch(1)[2]
        s0 = rng.standard_normal((B, H)).astype("float32")
        c0 = rng.standard_normal((B, H)).astype("float32") if cell == "lstm" else None
        Wt = (rng.standard_normal((H, G * H)) * 0.3).astype("float32")
        S, Cs, A = engine_ops.numpy_forward(op, P, mask, s0, c0, Wt)
        Sj, Cj, Aj = engine_ops.jax_forward(op, P, mask, s0, c0, Wt)
        np.testing.assert_allclose(S, Sj, rtol=1e-5, atol=1e-6)
        gS = rng.standard_normal(S.shape).astype("float32")
        gC = rng.standard_normal(S.shape).astype("float32") if cell == "lstm" else None
        got = engine_ops.numpy_backward(op, mask, s0, c0, Wt, S, Cs, A, gS, gC)
        want = engine_ops.jax_backward(op, mask, s0, c0, Wt, Sj, Cj, Aj, gS, gC)
        for a, b in zip(got, want, strict=True):
            if a is not None:
                np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)
