"""The output layer's SGD step as one node (rnnlm.engine_ops.output.SoftmaxNLLSGD), the tutorial's
``sgd_step``.

A compiled function that updates V to the node's ``V_new`` leaves V at exactly ``V − lr·dV`` and returns the
loss and ``dh`` of autodiff of the plain graph (logits, log-softmax, gather): on the C linker through
oneDNN's kernel (each thread one range of V's rows), through the NumPy drivers, and with more rows than a
chunk (the drivers' products, then the step in place); and on the JAX linker.  On the C linker V's buffer
is changed in place.  A repeated target, zero and negative row weights, fewer classes than threads.  The
kernel alone equals the output-layer kernel plus a step, and a target outside the classes changes nothing."""

import numpy as np
import pytest

from rnnlm import engine, engine_ops
from rnnlm.engine_ops import dnnl, output

pytestmark = pytest.mark.skipif(not engine_ops.fused_output(), reason="RNNLM_FUSED_LAYERS=off")

T = engine.T
LINKERS = ["c"] + (["jax"] if engine.default_linker() == "jax" else [])
LR = 0.7


def _data(N, K, C, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((N, K)).astype("float32")
    V = (rng.standard_normal((C, K)) * 0.5).astype("float32")
    y = rng.integers(0, C, N).astype("int32")
    y[-1] = y[0]  # a repeated target: its row of V gets both rows' parts
    w = rng.uniform(-0.5, 2.0, N).astype("float32")
    w[::3] = 0  # masked rows
    return h, V, y, w


def _step_and_reference(linker, V0):
    """(fused, plain): f(h, y, w, lr) -> [loss, dh], each updating its own shared V (fused: through the
    node; plain: V − lr·dV of autodiff)."""
    h, y, w, lr = T.matrix("h"), T.ivector("y"), T.vector("w"), T.scalar("lr")
    mode = engine.mode_for(linker)
    V = engine.shared(V0.copy(), name="V")
    loss, V_new = engine_ops.softmax_nll_sgd(h, V, y, w, lr)
    fused = engine.function([h, y, w, lr], [loss, engine.grad(loss, h)], updates=[(V, V_new)], mode=mode,
                            accept_inplace=True)
    Vp = engine.shared(V0.copy(), name="Vp")
    nll = -engine.log_softmax(T.dot(h, Vp.T))[T.arange(y.shape[0]), y]
    ref_loss = T.sum(w * nll)
    d_h, d_V = engine.grad(ref_loss, [h, Vp])
    plain = engine.function([h, y, w, lr], [ref_loss, d_h], updates=[(Vp, Vp - lr * d_V)], mode=mode)
    return (fused, V), (plain, Vp)


@pytest.fixture(params=["oneDNN kernel", "drivers", "more rows than a chunk"])
def path(request, monkeypatch):
    if request.param == "drivers":
        monkeypatch.setattr(dnnl, "available", lambda: False)
    elif request.param == "more rows than a chunk":
        monkeypatch.setattr(output, "CHUNK_ELEMENTS", 2)  # chunk_rows: 8 rows
    elif not dnnl.available():
        pytest.skip(f"oneDNN's kernel: {dnnl.why_not()}")
    return request.param


@pytest.mark.core
@pytest.mark.parametrize("linker", LINKERS)
@pytest.mark.parametrize("shape", [(4, 7, 30), (13, 5, 3), (9, 4, 1)],
                         ids=["few rows", "ragged", "one class (no gradient)"])
def test_the_step_equals_autodiff_of_the_plain_graph(linker, shape, path):
    N, K, C = shape
    h, V0, y, w = _data(N, K, C)
    (fused, V), (plain, Vp) = _step_and_reference(linker, V0)
    buffer = V.get_value(borrow=True)
    for step in range(2):  # the second step reads the first one's V
        got, want = fused(h, y, w, LR), plain(h, y, w, LR)
        for name, a, b in zip(["loss", "dh"], got, want, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name} {step}")
        np.testing.assert_allclose(V.get_value(), Vp.get_value(), rtol=1e-5, atol=1e-6, err_msg=f"V {step}")
    assert np.allclose(V.get_value(), V0) == (C == 1)  # (one class: softmax is 1, the loss 0)
    if linker == "c":
        assert V.get_value(borrow=True) is buffer  # changed in place


pytestmark_kernel = pytest.mark.skipif(not dnnl.available(), reason=f"oneDNN's kernel: {dnnl.why_not()}")


@pytestmark_kernel
@pytest.mark.parametrize("shape", [(4, 100, 8000), (1, 7, 30), (5, 4, 3), (3, 5, 1)])
def test_the_kernel_is_the_output_kernel_and_a_step(shape):
    N, K, C = shape
    h, V0, y, w = _data(N, K, C, seed=1)
    nll, dh, dV, _ = dnnl.softmax_nll(h, V0, np.zeros(C, np.float32), y, w, 256, True, True)
    V = V0.copy()
    got_nll, got_dh = dnnl.softmax_nll_sgd(h, V, y, w, LR)
    np.testing.assert_allclose(got_nll, nll, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_dh, dh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(V, V0 - LR * dV, rtol=1e-5, atol=1e-6)


@pytestmark_kernel
def test_a_target_outside_the_classes_changes_nothing():
    h, V0, y, w = _data(4, 5, 30)
    V = V0.copy()
    y[2] = 30
    with pytest.raises(RuntimeError, match="outside the classes"):
        dnnl.softmax_nll_sgd(h, V, y, w, LR)
    np.testing.assert_array_equal(V, V0)
    with pytest.raises(ValueError, match="C-contiguous"):
        dnnl.softmax_nll_sgd(h, np.asfortranarray(V), y % 30, w, LR)
