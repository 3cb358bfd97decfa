"""RNN as shipped (issue 15 B): the tutorial graph's truncated gradients, on the window only.

The reference is the tutorial's ``RNNTheano`` (dennybritz/rnn-tutorial-rnnlm, rnn_theano.py) transcribed
into the engine: a scan over x with outputs [o_t = softmax(V s_t), s_t = tanh(U[:, x_t] + W s_{t-1})],
``truncate_gradient=bptt_truncate``, loss = the sum of the categorical cross-entropies.  Its
truncation cuts dV too (o_t is computed inside the scan): only the last k steps contribute."""

import numpy as np
import pytest

from rnnlm import engine, engine_ops
from rnnlm.models.reference import RNNNumpy, init_tutorial_params
from rnnlm.models.tutorial import RNN

T = engine.T
C, H = 40, 7
LINKERS = ["c"] + (["jax"] if engine.default_linker() == "jax" else [])


def rnn_theano_bptt(params, bptt_truncate):
    """The tutorial's RNNTheano.bptt, transcribed (C linker: a truncated scan)."""
    U, V, W = (engine.shared(np.asarray(params[k], "float32"), name=k) for k in "UVW")
    x, y = T.ivector("x"), T.ivector("y")

    def forward_prop_step(x_t, s_t_prev, U, V, W):
        s_t = T.tanh(U[:, x_t] + T.dot(W, s_t_prev))
        o_t = engine.softmax(T.dot(V, s_t), axis=-1)
        return [o_t, s_t]

    o, s = engine.scan(forward_prop_step, sequences=[x], outputs_info=[None, T.zeros((H,), dtype="float32")],
                       non_sequences=[U, V, W], truncate_gradient=bptt_truncate)
    # categorical_crossentropy(o, y) summed: -log o[t, y_t]
    o_error = T.sum(-T.log(o[T.arange(y.shape[0]), y]))
    return engine.function([x, y], engine.grad(o_error, [U, V, W]), mode=engine.mode_for("c"))


@pytest.fixture(scope="module")
def params():
    return {k: v.astype("float32") for k, v in init_tutorial_params(C, H, seed=3).items()}


@pytest.fixture(scope="module", params=[4, 2, -1])
def transcription(request, params):
    return request.param, rnn_theano_bptt(params, request.param)


@pytest.mark.core
@pytest.mark.parametrize("linker", LINKERS)
def test_shipped_gradients_equal_the_tutorial_graph(params, transcription, linker):
    k, theano_bptt = transcription
    rnn = RNN(C, H, bptt_truncate=k, params=params, linker=linker)
    assert rnn.windowed
    rng = np.random.default_rng(k + 10)
    for n in (1, 2, 3, 4, 5, 9, 13):  # shorter than, equal to and longer than the window; odd lengths
        x = rng.integers(0, C, n).astype("int32")
        x[-1] = x[0]  # a repeated word: its column of U accumulates
        y = rng.integers(0, C, n).astype("int32")
        for got, want, name in zip(rnn.bptt(x, y), theano_bptt(x, y), "UVW", strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=f"d{name}, T={n}")


@pytest.mark.core
def test_shipped_dv_is_not_the_exact_dv(params):
    """The tutorial graph truncates dV (the last k steps); ``dv="exact"`` sums over every step; dU and dW
    agree."""
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, C, 12).astype("int32"), rng.integers(0, C, 12).astype("int32")
    shipped = RNN(C, H, bptt_truncate=4, params=params).bptt(x, y)
    exact = RNN(C, H, bptt_truncate=4, params=params, dv="exact").bptt(x, y)
    ref = RNNNumpy(C, H, 4, params={k: v.astype(np.float64) for k, v in params.items()}).bptt(
        x, y, truncation="scan")
    np.testing.assert_allclose(exact[1], ref[1], rtol=1e-4, atol=1e-6)
    assert not np.allclose(shipped[1], exact[1], atol=1e-4)
    for i in (0, 2):
        np.testing.assert_allclose(shipped[i], exact[i], rtol=1e-4, atol=1e-6)


@pytest.mark.core
@pytest.mark.parametrize("linker", LINKERS)
def test_shipped_sgd_step_updates_by_the_gradient_and_only_the_window_columns_of_U(params, linker):
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, C, 11).astype("int32"), rng.integers(0, C, 11).astype("int32")
    rnn = RNN(C, H, bptt_truncate=4, params=params, linker=linker)
    dU, dV, dW = rnn.bptt(x, y)
    rnn.sgd_step(x, y, np.float32(0.5))
    got = rnn.get_params()
    for name, g in zip("UVW", (dU, dV, dW), strict=True):
        np.testing.assert_allclose(got[name], params[name] - 0.5 * g, rtol=1e-5, atol=1e-6)
        assert got[name].dtype == np.float32
    changed = set(np.flatnonzero(np.any(got["U"] != params["U"], axis=0)))
    assert changed and changed <= set(x[-4:].tolist())


@pytest.mark.core
def test_the_c_linker_sgd_step_steps_V_in_place_in_the_output_node(params):
    """One SoftmaxNLLSGD node makes the loss and V's step, in V's own buffer (no dV, no new V)."""
    rnn = RNN(C, H, bptt_truncate=4, params=params)
    if not engine_ops.fused_sgd():
        pytest.skip("the output layer's SGD node serves PyTensor, and Aesara where oneDNN's kernel builds")
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, C, 9).astype("int32"), rng.integers(0, C, 9).astype("int32")
    rnn.sgd_step(x, y, np.float32(0.1))
    graph = rnn._window_fn("sgd_step", None).maker.fgraph
    assert [type(n.op) for n in graph.toposort()].count(engine_ops.SoftmaxNLLSGD) == 1
    buffer = rnn.V.get_value(borrow=True)
    before = buffer.copy()
    rnn.sgd_step(x, y, np.float32(0.1))
    assert rnn.V.get_value(borrow=True) is buffer and not np.array_equal(buffer, before)


def test_shipped_jax_buckets_compile_once_per_bucket(params):
    if "jax" not in LINKERS:
        pytest.skip("needs PyTensor with JAX")
    rnn = RNN(C, H, bptt_truncate=4, params=params, linker="jax")
    rng = np.random.default_rng(3)
    for n in (3, 5, 8, 9, 16):
        rnn.sgd_step(rng.integers(0, C, n).astype("int32"), rng.integers(0, C, n).astype("int32"),
                     np.float32(0.01))
    assert sorted(k[1] for k in rnn._compiled if k[0] == "sgd_step") == [8, 16]
