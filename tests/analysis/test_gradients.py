"""rnnlm.analysis.gradients: Jacobians and ∂L_t/∂s_k against finite differences (NumPy, tiny
models) and against the graph engine's autodiff through the production cells (a scan with an
additive perturbation of each state); the decay claims are property tests over generated models.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlm import analysis as A
from rnnlm.models.reference import GatedRNNNumpy, init_params
from tests.analysis.helpers import sentence, with_biases

FD_CASES = [(cell, 1, 0, "sigmoid", "tanh") for cell in ("rnn", "gru", "lstm")]
FD_CASES += [(cell, 2, 3, "hard_sigmoid", "tanh") for cell in ("rnn", "gru", "lstm")]  # stacks, embedding
FD_CASES += [("rnn", 1, 0, "sigmoid", "relu")]


@pytest.mark.core
@pytest.mark.parametrize("cell,layers,embedding,gate,activation", FD_CASES)
def test_jacobians_and_state_gradients_match_finite_differences(cell, layers, embedding, gate, activation):
    rng = np.random.default_rng(FD_CASES.index((cell, layers, embedding, gate, activation)))
    C, H, T = 7, 3, 5
    ref = with_biases(GatedRNNNumpy(cell, C, H, embedding_dim=embedding, layers=layers, gate=gate,
                                     activation=activation, seed=2), rng)
    x, y = sentence(rng, C, T)

    # The perturbable forward pass is the reference model's forward pass.
    S, logp = A.forward_with_perturbation(ref, x)
    o, cache = ref.forward(x)
    np.testing.assert_allclose(np.exp(logp), o, rtol=1e-12)
    n = 2 * H if cell == "lstm" else H
    for layer in range(layers):
        np.testing.assert_allclose(S[:, layer * n:layer * n + H], cache["layers"][layer]["s"][:-1],
                                   rtol=1e-12)

    J = A.state_jacobians(ref, x)
    G = A.loss_state_gradients(ref, x, y)
    N = S.shape[1]
    assert J.shape == (T, N, N) and G.shape == (T, T, N)
    h = 1e-6
    for k in range(T):
        for j in range(N):
            P = np.zeros((T, N))
            P[k, j] = h
            Sp, lp = A.forward_with_perturbation(ref, x, P)
            Sm, lm = A.forward_with_perturbation(ref, x, -P)
            if k + 1 < T:  # column j of ∂S_{k+1}/∂S_k
                np.testing.assert_allclose(J[k + 1][:, j], (Sp[k + 1] - Sm[k + 1]) / (2 * h), atol=1e-7)
            dL = -(lp[np.arange(T), y] - lm[np.arange(T), y]) / (2 * h)  # ∂L_t/∂S_k[j] for every t
            np.testing.assert_allclose(G[:, k, j], dL, atol=1e-7)
    assert np.all(G[np.triu_indices(T, 1)] == 0)  # L_t does not depend on later states


@pytest.mark.parametrize("norm", ["fro", "spectral"])
def test_sentence_norms_are_norms_of_the_products(norm):
    rng = np.random.default_rng(5)
    ref = with_biases(GatedRNNNumpy("gru", 9, 4, layers=2, seed=1), rng)
    x, y = sentence(rng, 9, 6)
    J = A.state_jacobians(ref, x)
    G = A.loss_state_gradients(ref, x, y)
    r = A.sentence_norms(ref, x, y, norm=norm)
    order = 2 if norm == "spectral" else "fro"
    for t in range(6):
        P = np.eye(J.shape[1])
        for k in range(t, -1, -1):
            assert r["jacobian"][t, k] == pytest.approx(np.linalg.norm(P, order), rel=1e-10)
            assert r["loss_grad"][t, k] == pytest.approx(np.linalg.norm(G[t, k]), rel=1e-10)
            P = P @ J[k]
    assert np.isnan(r["jacobian"][np.triu_indices(6, 1)]).all()
    limited = A.sentence_norms(ref, x, y, norm=norm, max_distance=2)
    assert np.isnan(limited["loss_grad"][5, 2]) and np.isfinite(limited["loss_grad"][5, 3])


def _graph_state_gradients(ref, x, y):
    """∂L_t/∂S_k from engine.grad: the model's own scan step plus an additive perturbation e_k of
    every state, differentiated w.r.t. e (float32, one compiled function per cell)."""
    from rnnlm import engine
    from rnnlm.models.cells import make_step

    T_ = engine.T
    f32 = engine.floatX
    H, T, cell = ref.hidden_dim, len(x), ref.cell
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    p = ref.params
    n_state = 2 if cell == "lstm" else 1
    base = make_step(cell, H, ref.activation, ref.gate)
    proj = engine.tensor("proj", f32, (T, 1, G * H))
    mask = engine.tensor("mask", f32, (T, 1))
    es = [engine.tensor(f"e{i}", f32, (T, 1, H)) for i in range(n_state)]
    Wt = engine.tensor("Wt", f32, (H, G * H))
    V = engine.tensor("V", f32, (ref.word_dim, H))
    c = engine.tensor("c", f32, (ref.word_dim,))
    yy = engine.tensor("y", "int32", (T,))
    w = engine.tensor("w", f32, (T,))

    if n_state == 1:
        def step(p_t, m_t, e_t, s_prev, Wt_):
            return base(p_t, m_t, s_prev, Wt_) + e_t
    else:
        def step(p_t, m_t, eh_t, ec_t, h_prev, c_prev, Wt_):
            h_t, c_t = base(p_t, m_t, h_prev, c_prev, Wt_)
            return [h_t + eh_t, c_t + ec_t]

    # Initial states as inputs, not T.zeros((1, H)): Aesara would mark that axis broadcastable
    # while its (shape-less) inputs make the step's output not so, and scan refuses the mismatch.
    init = [engine.tensor(f"s0_{i}", f32, (1, H)) for i in range(n_state)]
    out = engine.scan(step, sequences=[proj, mask] + es, outputs_info=init if n_state > 1 else init[0],
                      non_sequences=[Wt], label="perturbed")
    s = out[0] if n_state > 1 else out
    logp = engine.log_softmax(T_.dot(s[:, 0, :], V.T) + c, axis=-1)
    loss = -T_.sum(w * logp[T_.arange(T), yy])
    fn = engine.function([proj, mask, *es, *init, Wt, V, c, yy, w], engine.grad(loss, es),
                         mode=engine.mode_for(engine.default_linker()))
    U = p["U0"]
    proj_v = (U[:, :, x].transpose(2, 0, 1).reshape(T, G * H) + p["b0"].reshape(-1))[:, None, :]
    args = [proj_v.astype(f32), np.ones((T, 1), f32), *[np.zeros((T, 1, H), f32)] * n_state,
            *[np.zeros((1, H), f32)] * n_state,
            p["W0"].reshape(G * H, H).T.astype(f32), p["V"].astype(f32), p["c"].astype(f32),
            np.asarray(y, "int32")]
    out = np.zeros((T, T, n_state * H))
    for t in range(T):
        grads = fn(*args, np.eye(T, dtype=f32)[t])
        out[t] = np.concatenate([np.asarray(g)[:, 0, :] for g in grads], axis=1)
    return out


@pytest.mark.parametrize("cell", [pytest.param("rnn", marks=pytest.mark.core), "gru", "lstm"])
def test_state_gradients_match_graph_autodiff(cell):
    rng = np.random.default_rng(11)
    C, H, T = 8, 4, 6
    params = init_params(cell, C, H, seed=3)
    params = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}  # float32-exact
    ref = GatedRNNNumpy(cell, C, H, params=params)
    ref.params["W0"] *= 2.5  # larger W: gradients that reach back several steps
    ref.params["b0"] = rng.normal(0, 0.5, ref.params["b0"].shape).astype(np.float32).astype(np.float64)
    x, y = sentence(rng, C, T)
    graph = _graph_state_gradients(ref, x, y)
    numpy_ = A.loss_state_gradients(ref, x, y)
    scale = np.abs(numpy_).max()
    np.testing.assert_allclose(graph, numpy_, rtol=2e-3, atol=2e-5 * scale)
    assert np.abs(numpy_[T - 1, 0]).max() > 1e-4 * scale  # the far corner is non-trivial


@st.composite
def small_contracting_rnn(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    C = draw(st.integers(2, 8))
    H = draw(st.integers(1, 5))
    rho = draw(st.floats(0.02, 0.97))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    activation = draw(st.sampled_from(["tanh", "relu"]))
    p = init_params("rnn", C, H, seed=seed)
    p["U0"] = rng.uniform(-scale, scale, p["U0"].shape)
    p["V"] = rng.uniform(-scale, scale, p["V"].shape)
    p["b0"] = rng.normal(0, scale, p["b0"].shape)
    p["c"] = rng.normal(0, 1, p["c"].shape)
    W = rng.normal(size=(H, H))
    p["W0"] = (W * rho / np.linalg.norm(W, 2))[None]  # spectral norm ρ, so spectral radius <= ρ < 1
    ref = GatedRNNNumpy("rnn", C, H, activation=activation, params=p)
    lengths = draw(st.lists(st.integers(3, 12), min_size=1, max_size=3))
    sentences = [sentence(rng, C, n) for n in lengths]
    return ref, rho, sentences


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_contracting_rnn(), st.sampled_from(["fro", "spectral"]))
def test_contracting_rnn_decays_at_least_by_its_norm(case, norm):
    ref, rho, sentences = case
    assert A.spectral_radius(ref.params["W0"][0]) < 1
    r = A.gradient_norms(ref, sentences, norm=norm)
    for q in ("loss_grad", "jacobian"):
        fit = r["decay"][q]
        if fit["factor"] is None:  # e.g. every gradient exactly zero (all ReLU units off)
            continue
        # Each step back multiplies a chain's norm by at most ‖diag(f') W‖ <= ρ, and the pooled
        # within-chain slope is an average of chain slopes: factor <= ρ < 1.
        assert fit["factor"] <= rho * (1 + 1e-9), (q, fit, rho)
        assert fit["factor"] < 1 and fit["half_life"] > 0


def test_fit_decay_recovers_a_known_rate_and_ignores_chain_offsets():
    d = np.arange(12)
    one = 3.0 * 0.7 ** d
    fit = A.fit_decay(one)
    assert fit["factor"] == pytest.approx(0.7) and fit["r2"] == pytest.approx(1.0)
    assert fit["half_life"] == pytest.approx(np.log(0.5) / np.log(0.7))
    # Two sentences whose chains decay at 0.5 per step but with very different magnitudes: a
    # regression on the pooled means would be biased by which chains reach far; the within-chain
    # slope is exact.
    mats = []
    for T, amp in ((4, 1e3), (10, 1e-2)):
        m = np.full((T, T), np.nan)
        for t in range(T):
            for k in range(t + 1):
                m[t, k] = amp * (1 + t) * 0.5 ** (t - k)
        mats.append(m)
    fit = A.fit_decay(mats)
    assert fit["factor"] == pytest.approx(0.5) and fit["chains"] == 2 + 8  # rows with two distances >= 1
    assert A.fit_decay(mats, d_min=1, d_max=2)["distances"] == [1, 2]
    assert A.fit_decay(np.array([1.0]))["factor"] is None


def test_real_sentences_tanh_decays_below_one_and_grows_above(reddit_small):
    pairs = A.select_sentences(reddit_small.sentences, n=8, min_len=12, max_len=24, seed=1)
    assert len(pairs) == 8 and all(12 <= len(x) <= 24 for x, _ in pairs)
    C = len(reddit_small.vocab)
    small = A.gradient_norms(A.fresh_model("rnn", C, 16, radius=0.5, seed=0), pairs)
    big = A.gradient_norms(A.fresh_model("rnn", C, 16, radius=1.5, seed=0), pairs)
    assert small["decay"]["loss_grad"]["factor"] < 0.55  # about the radius: states near 0, tanh' ≈ 1
    assert big["decay"]["loss_grad"]["factor"] > 1.0  # gradients grow going back in time
    assert small["loss_grad"]["count"][0] == sum(len(x) for x, _ in pairs)
    assert small["heatmap"].shape == (24, 24) and np.isnan(small["heatmap"][0, 1])
