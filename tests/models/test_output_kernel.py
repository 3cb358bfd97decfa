"""oneDNN's output-layer kernel (native/output_dnnl.cc through rnnlm.engine_ops.dnnl): the output layer
and its loss on a CPU.

It equals the NumPy driver's chunk loop for either weight layout (V's rows or Wo), over whole and ragged
chunks, negative and zero row weights, with and without gradients, through ctypes and as an XLA FFI call;
at bf16 its products are those of bfloat16-rounded operands (h, the weights, p) accumulated in float32,
and a NaN stays a NaN;
a target outside the classes is an error, not a read out of bounds; no rows give zero gradients; the
models' graphs really reach it (the C linker's ``perform`` and the JAX linker's HLO); and a job already on
the library's thread that calls the library runs there instead of waiting on itself."""

import threading

import numpy as np
import pytest

from rnnlm import engine
from rnnlm.engine_ops import dnnl, output
from rnnlm.engine_ops.base import round_bf16
from rnnlm.engine_ops.output import SoftmaxNLL

pytestmark = pytest.mark.skipif(not dnnl.available(), reason=f"oneDNN's kernel: {dnnl.why_not()}")

JAX = engine.default_linker() == "jax" and dnnl.xla_ready()


def _data(N, K, C, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((N, K)).astype("float32")
    Wo = rng.standard_normal((K, C)).astype("float32") * 0.5
    c = rng.standard_normal(C).astype("float32")
    y = rng.integers(0, C, N).astype("int32")
    w = rng.uniform(-0.5, 2.0, N).astype("float32")
    w[::5] = 0  # masked rows
    return h, Wo, c, y, w


def _reference(h, Wo, c, y, w, grads=True, monkeypatch=None):
    monkeypatch.setattr(output, "_kernel", lambda *arrays: False)
    ref = output.numpy_softmax_nll(SoftmaxNLL(grads), h, Wo, c, y, w)
    monkeypatch.undo()
    return ref[1:]  # nll[, dh, dWo, dc]


@pytest.mark.parametrize("shape", [(37, 5, 11, 8), (300, 16, 900, 64), (5, 7, 30, 100)],
                         ids=["ragged chunks", "wide", "one chunk"])
@pytest.mark.parametrize("by_rows", [True, False], ids=["V's rows", "Wo"])
@pytest.mark.parametrize("grads", [True, False])
def test_the_kernel_equals_the_numpy_chunk_loop(shape, by_rows, grads, monkeypatch):
    N, K, C, rows = shape
    h, Wo, c, y, w = _data(N, K, C)
    want = _reference(h, Wo, c, y, w, grads, monkeypatch)
    W = np.ascontiguousarray(Wo.T) if by_rows else Wo
    got = dnnl.softmax_nll(h, W, c, y, w, rows, by_rows, grads)
    got = list(got) if grads else [got]
    if grads:
        got[2] = got[2].T if by_rows else got[2]  # dW in the weights' layout
    for name, a, b in zip(["nll", "dh", "dWo", "dc"][: len(got)], got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5, err_msg=name)


def _bf16_reference(h, Wo, c, y, w):
    """nll, dh, dWo, dc in float64 from bfloat16-rounded h and Wo, and p rounded after float32."""
    h16, W16 = (round_bf16(a).astype(np.float64) for a in (h, Wo))
    z = h16 @ W16 + c
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1)
    rows = np.arange(len(y))
    nll = np.log(s) + m[:, 0] - z[rows, y]
    p = e * (w / s)[:, None]
    p[rows, y] -= w
    p16 = round_bf16(p.astype(np.float32)).astype(np.float64)
    return nll, p16 @ W16.T, h16.T @ p16, p.sum(axis=0)


@pytest.mark.parametrize("by_rows", [True, False], ids=["V's rows", "Wo"])
def test_bf16_products_take_rounded_operands(by_rows):
    N, K, C = 300, 16, 900
    h, Wo, c, y, w = _data(N, K, C, seed=3)
    W = np.ascontiguousarray(Wo.T) if by_rows else Wo
    got = list(dnnl.softmax_nll(h, W, c, y, w, 64, by_rows, True, bf16=True))
    fp32 = list(dnnl.softmax_nll(h, W, c, y, w, 64, by_rows, True))
    for out in (got, fp32):
        out[2] = out[2].T if by_rows else out[2]
    want = _bf16_reference(h, Wo, c, y, w)
    for name, a, b, f in zip(["nll", "dh", "dWo", "dc"], got, want, fp32, strict=True):
        scale = np.abs(b).max()
        assert np.abs(a - b).max() <= 2e-5 * scale, name
        if name in ("dh", "dWo"):  # and not float32's products (bfloat16 keeps 8 bits: ~4e-3 apart)
            assert np.abs(f - b).max() > 5e-4 * scale, name


def test_bf16_keeps_a_nan():
    """Rounding a NaN's bits to bfloat16 could carry into its exponent (an infinity, or zero): the
    loss of a row with a NaN feature stays NaN, the others stay finite."""
    h, Wo, c, y, w = _data(4, 6, 10)
    h[1, 2] = np.float32(np.nan)
    h[2, 0] = np.frombuffer(np.uint32(0x7FFFFFFF).tobytes(), np.float32)[0]  # the NaN whose bits carry
    nll = dnnl.softmax_nll(h, Wo, c, y, w, 2, False, False, bf16=True)
    assert np.isnan(nll[1]) and np.isnan(nll[2]) and np.isfinite(nll[[0, 3]]).all()


@pytest.mark.skipif(not JAX, reason="the XLA FFI handlers (PyTensor with jaxlib, on a CPU)")
@pytest.mark.parametrize("grads", [True, False])
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_the_xla_call_equals_the_ctypes_call(grads, bf16):
    import jax

    h, Wo, c, y, w = _data(300, 16, 900, seed=1)
    V = np.ascontiguousarray(Wo.T)
    want = dnnl.softmax_nll(h, V, c, y, w, 64, True, grads, bf16)
    got = jax.jit(lambda *a: dnnl.jax_softmax_nll(*a, 64, True, grads, bf16))(h, V, c, y, w)
    for a, b in zip(got if grads else [got], want if grads else [want], strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6, atol=1e-6)


def test_a_target_outside_the_classes_is_an_error():
    h, Wo, c, y, w = _data(9, 4, 6)
    y[3] = 6
    with pytest.raises(RuntimeError, match="outside the classes"):
        dnnl.softmax_nll(h, Wo, c, y, w, 4, False, True)
    with pytest.raises(IndexError, match="outside the 6 classes"):
        output.numpy_softmax_nll(SoftmaxNLL(True), h, Wo, c, y, w)


def test_no_rows_give_zero_gradients():
    h, Wo, c, y, w = _data(0, 4, 6)
    nll, dh, dW, dc = dnnl.softmax_nll(h, Wo, c, y, w, 4, False, True)
    assert nll.shape == (0,) and dh.shape == (0, 4)
    assert np.all(dW == 0) and np.all(dc == 0) and dW.shape == (4, 6)


def test_the_c_linker_graph_calls_the_kernel(monkeypatch):
    calls = []
    real = dnnl.softmax_nll
    monkeypatch.setattr(dnnl, "softmax_nll", lambda *a, **k: calls.append(a[6]) or real(*a, **k))
    T = engine.T
    h, c, w = T.matrix("h"), T.vector("c"), T.vector("w")
    y = T.ivector("y")
    V = T.matrix("V")
    loss, _ = output.softmax_nll(h, V.T, c, y, w)
    f = engine.function([h, V, c, y, w], engine.grad(loss, [h, V, c]), mode=engine.mode_for("c"))
    data = _data(20, 4, 30)
    f(data[0], np.ascontiguousarray(data[1].T), *data[2:])
    assert calls == [True]  # V's rows, as the model stores them: no transposing copy
    narrow = _data(20, 40, 30)  # logits narrower than the features: the kernel still
    f(narrow[0], np.ascontiguousarray(narrow[1].T), *narrow[2:])
    assert calls == [True, True]
    monkeypatch.setenv("RNNLM_DNNL", "off")
    f(data[0], np.ascontiguousarray(data[1].T), *data[2:])
    assert calls == [True, True]  # switched off: the driver's loop


@pytest.mark.skipif(not JAX, reason="the XLA FFI handlers (PyTensor with jaxlib, on a CPU)")
def test_the_jax_graph_calls_the_kernel_at_every_shape_and_precision(monkeypatch):
    import jax

    rng = np.random.default_rng(2)
    _, _, c, y, w = _data(20, 4, 30)

    def hlo(K, precision="fp32"):
        fn = lambda h, V: output.jax_softmax_nll(SoftmaxNLL(True, precision), h, V.T, c, y, w)  # noqa: E731
        h, V = rng.standard_normal((20, K)).astype("float32"), rng.standard_normal((30, K)).astype("float32")
        return jax.jit(fn).lower(h, V).as_text()

    assert "rnnlm_softmax_nll_grads_xla" in hlo(4)  # 30 classes over 4 features
    assert "rnnlm_softmax_nll_grads_xla" in hlo(40)  # over 40 features
    assert "bf16 = 0" in hlo(4) and "bf16 = 1" in hlo(4, "bf16")  # its bfloat16 products at bf16
    monkeypatch.setenv("RNNLM_DNNL", "off")
    assert "rnnlm_softmax_nll" not in hlo(4)  # switched off: XLA's own products


def test_a_job_on_the_library_thread_may_call_the_library():
    """A step run on the library's thread (benchmarks run PyTorch's there) whose graph calls the kernel
    runs it in place: waiting for the thread from the thread itself would never end."""
    h, Wo, c, y, w = _data(16, 4, 10)
    want = dnnl.softmax_nll(h, Wo, c, y, w, 8, False, False)
    box = {}
    job = dnnl.on_worker(lambda: dnnl.softmax_nll(h, Wo, c, y, w, 8, False, False))
    t = threading.Thread(target=lambda: box.setdefault("got", job()), daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "the library's thread waited on itself"
    np.testing.assert_array_equal(box["got"], want)
