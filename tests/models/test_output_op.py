"""The fused output layer (rnnlm.engine_ops.output.SoftmaxNLL): the default loss of LanguageModel and of
RNN's window, on both engines.

Its loss, per-row NLLs and gradients equal autodiff of the plain graph (logits, log-softmax, gather) over
several chunks, masked rows and a ragged last chunk, on the C linker (NumPy ``perform``; PyTensor and
Aesara) and the JAX linker; its gradient fallback (an upstream gradient on the per-row NLLs too) is
exact; bf16 rounds the products' operands as the NumPy emulation does; and models with tied embeddings, a
projection or no bias get the gradients of the unfused graph."""

import numpy as np
import pytest

from rnnlm import engine, engine_ops
from rnnlm.engine_ops import dnnl, output
from rnnlm.models.lm import LanguageModel, ModelConfig

pytestmark = pytest.mark.skipif(not engine_ops.fused_output(), reason="RNNLM_FUSED_LAYERS=off")

T = engine.T
LINKERS = ["c"] + (["jax"] if engine.default_linker() == "jax" else [])
N, K, C = 37, 5, 11


def _data(seed=0, k=K):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((N, k)).astype("float32")
    Wo = rng.standard_normal((k, C)).astype("float32")
    c = rng.standard_normal(C).astype("float32")
    y = rng.integers(0, C, N).astype("int32")
    w = (rng.random(N) > 0.3).astype("float32") * rng.uniform(0.5, 2.0, N).astype("float32")
    return h, Wo, c, y, w


@pytest.fixture
def small_chunks(monkeypatch):
    """8 rows a chunk (N = 37: four whole chunks and a ragged fifth)."""
    monkeypatch.setattr(output, "CHUNK_ELEMENTS", 8 * C)
    assert output.chunk_rows(C, K) == 8


def _functions(linker, grads, precision="fp32"):
    h, Wo, c = T.matrix("h"), T.matrix("Wo"), T.vector("c")
    y, w = T.ivector("y"), T.vector("w")
    loss, nll = engine_ops.softmax_nll(h, Wo, c, y, w, grads=grads, precision=precision)
    logits = T.dot(h, Wo) + c
    ref_nll = -engine.log_softmax(logits)[T.arange(y.shape[0]), y]
    ref_loss = T.sum(ref_nll * w)
    mode = engine.mode_for(linker)

    def compile_(loss_, nll_):
        # a mean-normalised loss (upstream gradient 1/3) and, separately, an objective that also
        # differentiates the per-row NLLs (the fallback path)
        obj = loss_ / 3.0 + 0.01 * T.sum(nll_ * nll_)
        outs = [loss_, nll_, *engine.grad(loss_ / 3.0, [h, Wo, c, w]), *engine.grad(obj, [h, Wo, c])]
        return engine.function([h, Wo, c, y, w], outs, mode=mode)

    return compile_(loss, nll), compile_(ref_loss, ref_nll)


@pytest.fixture(params=["oneDNN kernel", "drivers"])
def kernel(request, monkeypatch):
    """Both paths of a float32 op on a CPU: oneDNN's kernel where the library builds, and the drivers' own
    chunk loops (what runs without it, and on a GPU)."""
    if request.param == "drivers":
        monkeypatch.setattr(output, "_kernel", lambda *arrays: False)
    elif not dnnl.available():
        pytest.skip(f"oneDNN's kernel: {dnnl.why_not()}")
    return request.param


@pytest.mark.core
@pytest.mark.parametrize("linker", LINKERS)
@pytest.mark.parametrize("grads", [True, False])
@pytest.mark.parametrize("k", [K, 2 * C], ids=["logits wider than h", "h wider than the logits"])
def test_loss_nll_and_gradients_equal_autodiff_of_the_plain_graph(linker, grads, k, small_chunks, kernel):
    """(The kernel serves the first; without it, under JAX at fp32, the first folds the bias into the
    products and the second adds it.)"""
    assert output.chunk_rows(C, k) == 8
    fused, plain = _functions(linker, grads)
    data = _data(k=k)
    got, want = fused(*data), plain(*data)
    names = ["loss", "nll", "dh", "dWo", "dc", "dw", "dh (nll too)", "dWo (nll too)", "dc (nll too)"]
    for name, a, b in zip(names, got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5, err_msg=name)
    # masked rows (w = 0) add nothing to the loss's gradient
    dh = np.asarray(got[2])
    assert np.all(dh[data[4] == 0] == 0) and np.any(dh[data[4] != 0] != 0)


@pytest.mark.parametrize("linker", LINKERS)
def test_one_chunk_and_many_chunks_agree(linker, monkeypatch, kernel):
    data = _data(1)
    fused, _ = _functions(linker, True)
    whole = fused(*data)
    monkeypatch.setattr(output, "CHUNK_ELEMENTS", 8 * C)
    chunked, _ = _functions(linker, True)
    for a, b in zip(chunked(*data), whole, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_chunk_rows_is_a_power_of_two_near_the_cache_budget():
    for n_classes in (65, 1000, 8000, 10_000, 50_000, 10**7):
        for n_features in (0, 128, 1024):
            rows = output.chunk_rows(n_classes, n_features)
            bound = max(8, output.CHUNK_ELEMENTS / n_classes, n_features / 2)
            assert rows & (rows - 1) == 0 and rows <= bound < 2 * rows
            assert output.chunk_rows(n_classes, n_features, "gpu") is None  # an accelerator: one chunk
    assert output.chunk_rows(8000, 128) == 256 and output.chunk_rows(50_000, 256) == 128


@pytest.mark.skipif("jax" not in LINKERS, reason="the JAX driver")
def test_on_an_accelerator_the_jax_driver_takes_one_chunk(monkeypatch, small_chunks):
    """With the platform reported as a GPU, no chunk loop is traced, and the results do not change."""
    import jax

    data = _data(3)
    cpu, _ = _functions("jax", True)
    want = cpu(*data)
    traced = []
    real_scan = jax.lax.scan
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(jax.lax, "scan", lambda *a, **k: traced.append(1) or real_scan(*a, **k))
    gpu, _ = _functions("jax", True)
    got = gpu(*data)
    assert not traced
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif("jax" not in LINKERS, reason="bf16 products need the JAX linker")
def test_bf16_rounds_the_operands_as_the_numpy_emulation(small_chunks, monkeypatch):
    """The drivers' bf16 products (oneDNN's kernel, where it runs, takes float32 ones at either precision)."""
    monkeypatch.setattr(output, "_kernel", lambda *arrays: False)
    data = _data(2)
    jax_bf16, _ = _functions("jax", True, "bf16")
    numpy_bf16, plain = _functions("c", True, "bf16")
    a, b, ref = jax_bf16(*data), numpy_bf16(*data), plain(*data)
    for x, z in zip(a[:5], b[:5], strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(z), rtol=2e-5, atol=2e-5)
    assert np.abs(np.asarray(a[2]) - np.asarray(ref[2])).max() > 1e-4  # and it is not fp32


@pytest.mark.core
def test_the_training_graph_has_one_output_node_and_no_logits(small_chunks):
    cfg = ModelConfig(vocab_size=C, hidden_dim=4, cell="gru", embedding_dim=3)
    model = LanguageModel(cfg, seed=0, linker=LINKERS[-1])
    nodes = model.graph("grads", (5, 2)).maker.fgraph.apply_nodes
    ops = [type(n.op).__name__ for n in nodes]
    assert ops.count("SoftmaxNLL") == 1
    # nothing else in the graph has a vocabulary-wide row block: the logits are never materialised
    wide = [n for n in nodes if type(n.op).__name__ != "SoftmaxNLL"
            for o in n.outputs if getattr(o.type, "ndim", 0) == 2 and o.type.shape == (10, C)]
    assert not wide


CONFIGS = [
    dict(tie_embeddings=True, embedding_dim=6, hidden_dim=6),  # E serves as the output weights
    dict(tie_embeddings=True, embedding_dim=4, hidden_dim=6),  # through the projection P
    dict(output_bias=False, embedding_dim=4, hidden_dim=6),
]


@pytest.mark.core
@pytest.mark.parametrize("linker", LINKERS)
@pytest.mark.parametrize("extra", CONFIGS, ids=["tied", "tied+projection", "no-bias"])
def test_model_gradients_equal_the_unfused_graph(linker, extra, small_chunks, monkeypatch):
    cfg = ModelConfig(vocab_size=C, cell="lstm", **extra)
    rng = np.random.default_rng(3)
    x, y = (rng.integers(0, C, (7, 3)).astype("int32") for _ in range(2))
    mask = np.ones((7, 3), "float32")
    mask[4:, 1] = 0
    got = LanguageModel(cfg, seed=4, linker=linker).gradients(x, y, mask)
    monkeypatch.setattr(engine_ops, "fused_output", lambda: False)
    want = LanguageModel(cfg, seed=4, linker=linker).gradients(x, y, mask)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-4, atol=2e-6, err_msg=k)
