"""Tests of the NumPy reference models (rnnlm.models.reference): gradients, truncated BPTT, parity, init.

Sizes are tiny (C = 13, H = 5..6, T = 7..8) so that finite differences over every parameter
entry stay fast; the whole file runs in a few seconds.
"""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm.errors import ConfigError
from rnnlm.models.reference import (
    CELLS,
    GATES,
    GatedRNNNumpy,
    RNNNumpy,
    activation_grad,
    apply_activation,
    apply_gate,
    gate_grad,
    hard_sigmoid,
    init_params,
    init_tutorial_params,
    param_shapes,
    sentence_pair,
    word_ids,
)

C, H, T = 13, 6, 8


def sentence(seed, length=T, word_dim=C):
    rng = np.random.default_rng(seed)
    return rng.integers(0, word_dim, length), rng.integers(0, word_dim, length)


def fd_grad(f, p, h=1e-5):
    """Central differences of f() w.r.t. every entry of p (an independent copy of the idea)."""
    g = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        orig = p[idx]
        p[idx] = orig + h
        plus = f()
        p[idx] = orig - h
        minus = f()
        p[idx] = orig
        g[idx] = (plus - minus) / (2 * h)
    return g


def act_fn(name):
    return np.tanh if name == "tanh" else (lambda a: np.maximum(a, 0.0))


def nll(logits, target):
    z = logits - logits.max()
    return -(z[target] - np.log(np.exp(z).sum()))


# ------------------------------------------------------------------------------------------
# Tutorial RNN: forward, loss, SGD
# ------------------------------------------------------------------------------------------


def test_init_tutorial_params_draw_order_and_bounds():
    p = init_tutorial_params(C, H, seed=3)
    rng = np.random.default_rng(3)
    expected_U = rng.uniform(-1 / np.sqrt(C), 1 / np.sqrt(C), (H, C))
    expected_V = rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), (C, H))
    expected_W = rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), (H, H))
    np.testing.assert_array_equal(p["U"], expected_U)
    np.testing.assert_array_equal(p["V"], expected_V)
    np.testing.assert_array_equal(p["W"], expected_W)
    assert all(v.dtype == np.float64 for v in p.values())
    big = init_tutorial_params(400, 50, seed=0)
    assert np.abs(big["U"]).max() <= 1 / np.sqrt(400) and np.abs(big["U"]).max() > 0.9 / np.sqrt(400)
    assert np.abs(big["W"]).max() <= 1 / np.sqrt(50)
    # same seed, same weights: the graph model relies on this
    np.testing.assert_array_equal(RNNNumpy(C, H, seed=3).U, p["U"])


def test_forward_shapes_and_initial_state():
    model = RNNNumpy(C, H, seed=0)
    x, _ = sentence(1)
    o, s = model.forward_propagation(x)
    assert o.shape == (T, C) and s.shape == (T + 1, H)
    np.testing.assert_array_equal(s[-1], 0.0)
    np.testing.assert_allclose(o.sum(axis=1), 1.0)
    # the tutorial's recurrence, step by step
    np.testing.assert_allclose(s[0], np.tanh(model.U[:, x[0]]))
    np.testing.assert_allclose(s[3], np.tanh(model.U[:, x[3]] + model.W @ s[2]))
    np.testing.assert_array_equal(model.predict(x), o.argmax(axis=1))


def test_loss_of_fresh_model_is_ln_C():
    word_dim = 500
    model = RNNNumpy(word_dim, 20, seed=0)
    rng = np.random.default_rng(1)
    X = [rng.integers(0, word_dim, n) for n in rng.integers(3, 12, 20)]
    Y = [rng.integers(0, word_dim, len(x)) for x in X]
    loss = model.calculate_loss(X, Y)
    assert abs(loss - np.log(word_dim)) < 0.1
    n = sum(len(y) for y in Y)
    assert model.calculate_total_loss(X, Y) == pytest.approx(loss * n)


def test_total_loss_is_sum_of_log_probabilities():
    model = RNNNumpy(C, H, seed=2)
    x, y = sentence(5)
    o, _ = model.forward_propagation(x)
    expected = -np.sum(np.log(o[np.arange(T), y]))
    assert model.calculate_total_loss([x], [y]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("truncation", ["tutorial", "scan"])
def test_sgd_step_lowers_loss(truncation):
    model = RNNNumpy(C, H, bptt_truncate=4, seed=0)
    x, y = sentence(7)
    before = model.calculate_total_loss([x], [y])
    for _ in range(5):
        model.sgd_step(x, y, 0.05, truncation=truncation)
    assert model.calculate_total_loss([x], [y]) < before - 0.1


def test_params_argument_is_copied_and_checked():
    p = init_tutorial_params(C, H, seed=1)
    model = RNNNumpy(C, H, params=p)
    model.sgd_step(*sentence(0), 0.1)
    assert not np.array_equal(model.U, p["U"])  # the caller's arrays were not updated
    with pytest.raises(ConfigError):
        RNNNumpy(C, H + 1, params=p)
    with pytest.raises(ConfigError):
        RNNNumpy(C, H, activation="sigmoid")


@pytest.mark.parametrize("name", ["tanh", "relu"])
def test_activation_grad_is_the_derivative_from_the_output(name):
    a = np.array([-2.0, -0.3, 0.2, 1.7])
    h = 1e-6
    numeric = (apply_activation(name, a + h) - apply_activation(name, a - h)) / (2 * h)
    np.testing.assert_allclose(activation_grad(name, apply_activation(name, a)), numeric, atol=1e-8)
    want = np.tanh(0.5) if name == "tanh" else 0.5
    assert apply_activation(name, np.array([0.5]))[0] == pytest.approx(want)


@pytest.mark.parametrize("name", GATES)
def test_gate_grad_is_the_derivative_of_the_gate(name):
    a = np.array([-4.0, -1.0, 0.3, 2.0, 3.0])  # off hard_sigmoid's kinks at ±2.5
    h = 1e-6
    numeric = (apply_gate(name, a + h) - apply_gate(name, a - h)) / (2 * h)
    np.testing.assert_allclose(gate_grad(name, a, apply_gate(name, a)), numeric, atol=1e-8)
    np.testing.assert_allclose(apply_gate("hard_sigmoid", a), hard_sigmoid(a))


def test_word_ids_and_sentence_pair_check_their_input():
    got = word_ids([3, 0, 2], 4)
    assert got.dtype == np.intp and got.tolist() == [3, 0, 2]
    assert word_ids([], 4).shape == (0,)
    for bad, fragment in (([[1, 2]], "1-D"), ([1.0, 2.0], "integer"), ([0, 4], "outside"), ([-1], "outside")):
        with pytest.raises(ValueError, match=fragment):
            word_ids(bad, 4, name="ids")
    x, y = sentence_pair([1, 2], np.array([2, 3]), 4)
    assert x.tolist() == [1, 2] and y.tolist() == [2, 3]
    with pytest.raises(ValueError, match="same length"):
        sentence_pair([1, 2], [3], 4)
    with pytest.raises(ValueError, match="^y holds"):
        sentence_pair([1], [9], 4)


def test_bad_word_ids_raise():
    model = RNNNumpy(C, H, seed=0)
    with pytest.raises(ValueError):
        model.forward_propagation([0, C])
    with pytest.raises(ValueError):
        model.forward_propagation([-1, 2])
    with pytest.raises(ValueError):
        model.bptt([0, 1], [1])
    with pytest.raises(ValueError):
        model.calculate_loss([[]], [[]])


# ------------------------------------------------------------------------------------------
# Tutorial RNN: gradients and truncated BPTT
# ------------------------------------------------------------------------------------------


@pytest.mark.core
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_rnn_gradient_check(activation):
    model = RNNNumpy(C, H, bptt_truncate=2, activation=activation, seed=4)  # gradient_check ignores k
    x, y = sentence(11)
    U0 = model.U.copy()
    errors = model.gradient_check(x, y)
    assert set(errors) == {"U", "V", "W"}
    assert max(errors.values()) < 1e-4, errors
    np.testing.assert_array_equal(model.U, U0)  # parameters restored exactly


def test_gradient_check_verbose_prints(capsys):
    RNNNumpy(C, H, seed=0).gradient_check(*sentence(0), verbose=True)
    out = capsys.readouterr().out
    assert "Gradient check for parameter W passed" in out


def blog_bptt(model, x, y):
    """The blog post's bptt, transcribed (tanh only)."""
    T_ = len(y)
    o, s = model.forward_propagation(x)
    dLdU, dLdV, dLdW = np.zeros(model.U.shape), np.zeros(model.V.shape), np.zeros(model.W.shape)
    delta_o = o
    delta_o[np.arange(len(y)), y] -= 1.0
    for t in np.arange(T_)[::-1]:
        dLdV += np.outer(delta_o[t], s[t].T)
        delta_t = model.V.T.dot(delta_o[t]) * (1 - (s[t] ** 2))
        for bptt_step in np.arange(max(0, t - model.bptt_truncate), t + 1)[::-1]:
            dLdW += np.outer(delta_t, s[bptt_step - 1])
            dLdU[:, x[bptt_step]] += delta_t
            delta_t = model.W.T.dot(delta_t) * (1 - s[bptt_step - 1] ** 2)
    return dLdU, dLdV, dLdW


@pytest.mark.parametrize("k", [0, 1, 4, 20])
def test_tutorial_truncation_is_the_blog_loop(k):
    model = RNNNumpy(C, H, bptt_truncate=k, seed=5)
    x, y = sentence(12)
    for ours, blog in zip(model.bptt(x, y), blog_bptt(model, x, y), strict=True):
        np.testing.assert_allclose(ours, blog, rtol=1e-12, atol=1e-14)


@settings(max_examples=12, deadline=None)
@given(
    length=st.integers(1, 9),
    extra=st.integers(0, 3),
    seed=st.integers(0, 2**16),
    activation=st.sampled_from(["tanh", "relu"]),
)
def test_truncations_equal_full_bptt_when_window_covers_sentence(length, extra, seed, activation):
    model = RNNNumpy(C, H, activation=activation, seed=seed)
    x, y = sentence(seed, length)
    full = model.bptt(x, y, bptt_truncate=-1)
    for truncation, k in (("tutorial", length - 1 + extra), ("scan", length + extra)):
        for got, want in zip(model.bptt(x, y, truncation=truncation, bptt_truncate=k), full, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    for truncation in ("tutorial", "scan"):  # k < 0 is full BPTT for both
        for got, want in zip(model.bptt(x, y, truncation=truncation, bptt_truncate=-1), full, strict=True):
            np.testing.assert_array_equal(got, want)


def test_short_windows_differ_from_full_bptt():
    model = RNNNumpy(C, H, seed=1)
    x, y = sentence(2)
    full = model.bptt(x, y, bptt_truncate=-1)
    for truncation, k in (("tutorial", T - 3), ("scan", T - 2)):
        dU, dV, dW = model.bptt(x, y, truncation=truncation, bptt_truncate=k)
        np.testing.assert_allclose(dV, full[1])  # the output layer's gradient is never truncated
        assert not np.allclose(dW, full[2], rtol=1e-6, atol=0)


def _states_from(model, x, start_state, t0, t1):
    """s_t for t = t0..t1 computed from s_{t0-1} = start_state (a constant)."""
    f = act_fn(model.activation)
    s, out = start_state, {}
    for t in range(t0, t1 + 1):
        s = f(model.U[:, x[t]] + model.W @ s)
        out[t] = s
    return out


@pytest.mark.core
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("k", [0, 2])
def test_tutorial_truncation_by_brute_force(activation, k):
    """'tutorial': sum over t of d loss_t, with every state before t-k held constant."""
    model = RNNNumpy(C, H, bptt_truncate=k, activation=activation, seed=8)
    x, y = sentence(13)
    _, s_base = model.forward_propagation(x)  # s_base[-1] is the zero state

    def surrogate():
        total = 0.0
        for t in range(T):
            t0 = max(0, t - k)
            s_t = _states_from(model, x, s_base[t0 - 1], t0, t)[t]
            total += nll(model.V @ s_t, y[t])
        return total

    want = [fd_grad(surrogate, p) for p in (model.U, model.V, model.W)]
    for got, w in zip(model.bptt(x, y, truncation="tutorial"), want, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-8)


@pytest.mark.core
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("k", [1, 3])
def test_scan_truncation_by_brute_force(activation, k):
    """'scan': the gradient stops at s_{T-k-1}; steps before T-k give U and W nothing, V all."""
    model = RNNNumpy(C, H, bptt_truncate=k, activation=activation, seed=9)
    x, y = sentence(14)
    _, s_base = model.forward_propagation(x)
    first = T - k

    def surrogate():
        recomputed = _states_from(model, x, s_base[first - 1], first, T - 1)
        return sum(nll(model.V @ recomputed.get(t, s_base[t]), y[t]) for t in range(T))

    want = [fd_grad(surrogate, p) for p in (model.U, model.V, model.W)]
    for got, w in zip(model.bptt(x, y, truncation="scan"), want, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-8)


def test_bad_truncation_name():
    with pytest.raises(ConfigError):
        RNNNumpy(C, H, seed=0).bptt(*sentence(0), truncation="keras")


# ------------------------------------------------------------------------------------------
# General model (part 4)
# ------------------------------------------------------------------------------------------


def test_param_shapes_and_init():
    D, L = 4, 2
    shapes = param_shapes("gru", C, H, D, L)
    assert list(shapes) == ["E", "U0", "W0", "b0", "U1", "W1", "b1", "V", "c"]
    assert shapes["E"] == (D, C) and shapes["U0"] == (3, H, D) and shapes["U1"] == (3, H, H)
    assert shapes["W1"] == (3, H, H) and shapes["b0"] == (3, H) and shapes["V"] == (C, H)
    assert param_shapes("lstm", C, H)["U0"] == (4, H, C)  # one-hot input without embedding
    assert param_shapes("rnn", C, H)["U0"] == (1, H, C)

    p = init_params("gru", C, H, D, L, seed=6)
    rng = np.random.default_rng(6)  # draw order: E, U0, W0, U1, W1, V
    # E: word vectors of norm ~1 (±sqrt(3/D)); the rest: the tutorial's ±1/sqrt(fan-in)
    for name, b in (
        ("E", np.sqrt(3 / D)),
        ("U0", 1 / np.sqrt(D)),
        ("W0", 1 / np.sqrt(H)),
        ("U1", 1 / np.sqrt(H)),
        ("W1", 1 / np.sqrt(H)),
        ("V", 1 / np.sqrt(H)),
    ):
        np.testing.assert_array_equal(p[name], rng.uniform(-b, b, shapes[name]))
    for name in ("b0", "b1", "c"):
        np.testing.assert_array_equal(p[name], 0.0)
    assert all(v.dtype == np.float64 and v.shape == shapes[k] for k, v in p.items())

    lstm = init_params("lstm", C, H, 0, 2, seed=0)
    for name in ("b0", "b1"):
        np.testing.assert_array_equal(lstm[name][1], 1.0)  # forget gate open
        np.testing.assert_array_equal(lstm[name][[0, 2, 3]], 0.0)


@pytest.mark.core
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("embedding_dim", [0, 4])
@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("cell", CELLS)
def test_gated_gradient_check(cell, gate, embedding_dim, layers):
    model = GatedRNNNumpy(cell, C, 5, embedding_dim, layers, gate=gate, seed=layers * 10 + embedding_dim)
    x, y = sentence(15)
    errors = model.gradient_check(x, y)
    assert set(errors) == set(model.params)
    assert max(errors.values()) < 1e-3, errors


@pytest.mark.core
def test_gated_rnn_relu_gradient_check():
    model = GatedRNNNumpy("rnn", C, 5, 4, 2, activation="relu", seed=1)
    errors = model.gradient_check(*sentence(16))
    assert max(errors.values()) < 1e-3, errors


@pytest.mark.core
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_gradient_check_with_saturated_hard_sigmoid(cell):
    """Large weights push many gates outside (-2.5, 2.5), where hard_sigmoid's slope is 0."""
    p = {k: 6.0 * v for k, v in init_params(cell, C, 5, 4, 1, seed=2).items()}
    p["b0"] = p["b0"] + np.random.default_rng(0).normal(0.0, 2.0, p["b0"].shape)
    model = GatedRNNNumpy(cell, C, 5, 4, 1, gate="hard_sigmoid", params=p)
    x, y = sentence(17)
    _, cache = model.forward(x)
    gate_pre = cache["layers"][0]["a"][:, : 3 if cell == "lstm" else 2]
    saturated = np.mean(np.abs(gate_pre) > 2.5)
    assert 0.1 < saturated < 0.9
    errors = model.gradient_check(x, y)
    assert max(errors.values()) < 1e-3, errors


def test_hard_sigmoid():
    np.testing.assert_allclose(
        hard_sigmoid(np.array([-3.0, -2.5, 0.0, 1.0, 2.5, 4.0])), [0.0, 0.0, 0.5, 0.7, 1.0, 1.0], atol=1e-15
    )


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_gated_rnn_cell_matches_tutorial_rnn(activation):
    tut = RNNNumpy(C, H, bptt_truncate=-1, activation=activation, seed=3)
    params = {"U0": tut.U[None], "W0": tut.W[None], "b0": np.zeros((1, H)), "V": tut.V, "c": np.zeros(C)}
    gen = GatedRNNNumpy("rnn", C, H, activation=activation, params=params)
    x, y = sentence(18)
    o_tut, s_tut = tut.forward_propagation(x)
    o_gen, cache = gen.forward(x)
    np.testing.assert_allclose(o_gen, o_tut, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(cache["layers"][0]["s"], s_tut, rtol=1e-13, atol=1e-16)
    assert gen.loss(x, y) == pytest.approx(tut.calculate_total_loss([x], [y]), rel=1e-13)
    dU, dV, dW = tut.bptt(x, y)
    g = gen.bptt(x, y)
    np.testing.assert_allclose(g["U0"][0], dU, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g["W0"][0], dW, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g["V"], dV, rtol=1e-10, atol=1e-14)


def test_gated_forward_by_hand():
    """One GRU step and one LSTM step written out from the formulas."""
    x, y = sentence(19, length=2)
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    gru = GatedRNNNumpy("gru", C, H, seed=4)
    p = gru.params
    p["b0"][:] = np.random.default_rng(1).normal(size=p["b0"].shape)
    p["c"][:] = np.random.default_rng(2).normal(size=C)
    U, W, b = p["U0"], p["W0"], p["b0"]
    s = np.zeros(H)
    for w in x:
        z = sig(U[0][:, w] + W[0] @ s + b[0])
        r = sig(U[1][:, w] + W[1] @ s + b[1])
        c = np.tanh(U[2][:, w] + W[2] @ (s * r) + b[2])
        s = (1 - z) * c + z * s
    o, _ = gru.forward(x)
    logits = p["V"] @ s + p["c"]
    np.testing.assert_allclose(o[-1], np.exp(logits) / np.exp(logits).sum(), rtol=1e-12)

    lstm = GatedRNNNumpy("lstm", C, H, embedding_dim=3, seed=5)
    p = lstm.params
    U, W, b, E = p["U0"], p["W0"], p["b0"], p["E"]
    h = c = np.zeros(H)
    for w in x:
        pre = [U[j] @ E[:, w] + W[j] @ h + b[j] for j in range(4)]
        i, f, o_gate, g = sig(pre[0]), sig(pre[1]), sig(pre[2]), np.tanh(pre[3])
        c = f * c + i * g
        h = o_gate * np.tanh(c)
    _, cache = lstm.forward(x)
    np.testing.assert_allclose(cache["layers"][0]["s"][len(x) - 1], h, rtol=1e-12)


def test_gated_empty_sentence_and_predict():
    model = GatedRNNNumpy("lstm", C, H, 4, 2, seed=0)
    empty = np.array([], dtype=int)
    assert model.loss(empty, empty) == 0.0
    assert all(not g.any() for g in model.bptt(empty, empty).values())
    x, _ = sentence(0)
    o, _ = model.forward(x)
    np.testing.assert_array_equal(model.predict(x), o.argmax(axis=1))


def test_gated_config_errors():
    with pytest.raises(ConfigError):
        GatedRNNNumpy("transformer", C, H)
    with pytest.raises(ConfigError):
        GatedRNNNumpy("gru", C, H, gate="relu")
    with pytest.raises(ConfigError):
        GatedRNNNumpy("gru", C, H, activation="relu")
    with pytest.raises(ConfigError):
        GatedRNNNumpy("rnn", C, H, layers=0)
    p = init_params("gru", C, H, seed=0)
    with pytest.raises(ConfigError):
        GatedRNNNumpy("lstm", C, H, params=p)  # wrong gate count
    with pytest.raises(ConfigError):
        GatedRNNNumpy("gru", C, H, embedding_dim=4, params=p)  # lacks E


def test_reference_imports_no_graph_engine():
    code = (
        "import sys, rnnlm.models.reference; "
        "bad = [m for m in ('pytensor', 'aesara', 'theano') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
