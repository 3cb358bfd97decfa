"""Tests of rnnlm.analysis (BPTT and the vanishing gradient, measured) and `rnnlm analyze`.

Jacobians and ∂L_t/∂s_k are checked against finite differences (NumPy, tiny models) and against
the graph engine's autodiff through the production cells (a scan with an additive perturbation
of each state); the decay and truncation claims are property tests over generated models.
"""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlm.analysis import bptt as A
from rnnlm.errors import ConfigError
from rnnlm.models.reference import GatedRNNNumpy, RNNNumpy, init_params

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _sentence(rng, C, T):
    return rng.integers(0, C, T), rng.integers(0, C, T)


def _with_biases(ref, rng, scale=0.5):
    """Nonzero biases, so that gates and activations are off their symmetric points."""
    for k in ref.params:
        if k[0] in "bc":
            ref.params[k] = ref.params[k] + rng.normal(0.0, scale, ref.params[k].shape)
    return ref


# ------------------------------------------------------------------------------------------
# Jacobians and ∂L_t/∂s_k against finite differences
# ------------------------------------------------------------------------------------------


FD_CASES = [(cell, 1, 0, "sigmoid", "tanh") for cell in ("rnn", "gru", "lstm")]
FD_CASES += [(cell, 2, 3, "hard_sigmoid", "tanh") for cell in ("rnn", "gru", "lstm")]  # stacks, embedding
FD_CASES += [("rnn", 1, 0, "sigmoid", "relu")]


@pytest.mark.core
@pytest.mark.parametrize("cell,layers,embedding,gate,activation", FD_CASES)
def test_jacobians_and_state_gradients_match_finite_differences(cell, layers, embedding, gate, activation):
    rng = np.random.default_rng(FD_CASES.index((cell, layers, embedding, gate, activation)))
    C, H, T = 7, 3, 5
    ref = _with_biases(GatedRNNNumpy(cell, C, H, embedding_dim=embedding, layers=layers, gate=gate,
                                     activation=activation, seed=2), rng)
    x, y = _sentence(rng, C, T)

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
    ref = _with_biases(GatedRNNNumpy("gru", 9, 4, layers=2, seed=1), rng)
    x, y = _sentence(rng, 9, 6)
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


# ------------------------------------------------------------------------------------------
# Cross-check against the graph engine: autodiff through the production cells
# ------------------------------------------------------------------------------------------


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
    x, y = _sentence(rng, C, T)
    graph = _graph_state_gradients(ref, x, y)
    numpy_ = A.loss_state_gradients(ref, x, y)
    scale = np.abs(numpy_).max()
    np.testing.assert_allclose(graph, numpy_, rtol=2e-3, atol=2e-5 * scale)
    assert np.abs(numpy_[T - 1, 0]).max() > 1e-4 * scale  # the far corner is non-trivial


# ------------------------------------------------------------------------------------------
# Decay: a tanh/ReLU RNN with ‖W‖₂ = ρ < 1 decays at least by ρ per step
# ------------------------------------------------------------------------------------------


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
    sentences = [_sentence(rng, C, n) for n in lengths]
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


@pytest.fixture(scope="module")
def reddit_small(reddit_csv):
    from rnnlm.data import prepare

    return prepare(reddit_csv, vocab_size=300)


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


# ------------------------------------------------------------------------------------------
# Truncated BPTT
# ------------------------------------------------------------------------------------------


@st.composite
def small_tutorial_rnn(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    C, H, T = draw(st.integers(2, 8)), draw(st.integers(1, 5)), draw(st.integers(2, 10))
    rho = draw(st.floats(0.05, 0.95))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    p = {"U": rng.uniform(-scale, scale, (H, C)), "V": rng.uniform(-scale, scale, (C, H)),
         "W": rng.normal(size=(H, H))}
    p["W"] *= rho / np.linalg.norm(p["W"], 2)
    return RNNNumpy(C, H, bptt_truncate=-1, params=p), rho, _sentence(rng, C, T)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_tutorial_rnn())
def test_truncation_error_shrinks_geometrically_and_vanishes_at_full_length(case):
    rnn, rho, (x, y) = case
    T = len(x)
    r = A.truncation_error(rnn, [(x, y)])
    assert r["truncations"] == list(range(T + 1))
    tut, scan = r["modes"]["tutorial"]["mean"], r["modes"]["scan"]["mean"]
    assert np.all(tut[T - 1:] < 1e-12)  # k >= T-1: every output step reaches back to step 0
    assert np.all(scan[T:] < 1e-12)  # k >= T: scan's backward pass visits every step
    dU, _, dW = rnn.bptt(x, y, bptt_truncate=-1)
    gnorm = np.sqrt(np.sum(dU ** 2) + np.sum(dW ** 2))
    if gnorm > 1e-8:
        assert scan[0] == pytest.approx(1.0)  # k = 0: scan backpropagates through no step at all
    # The tutorial's argument as a bound: the dropped terms are those more than k steps back,
    # each at most ρ^d times the error at its own step (tanh' <= 1), so
    # error(k) <= ρ^(k+1)/(1-ρ) · Σ_t ‖∂L_t/∂a_t‖ · sqrt(1 + max‖s‖²) / ‖g‖, shrinking with k.
    o, s = rnn.forward_propagation(x)
    delta = o.copy()
    delta[np.arange(T), y] -= 1.0
    dA = (delta @ rnn.V) * (1 - s[:-1] ** 2)
    B = np.linalg.norm(dA, axis=1).sum() * np.sqrt(1 + np.max(np.sum(s ** 2, axis=1)))
    ks = np.arange(T + 1)
    if gnorm > 1e-8:
        assert np.all(tut <= rho ** (ks + 1) / (1 - rho) * B / gnorm * (1 + 1e-9) + 1e-12)
    for mode in ("tutorial", "scan"):
        m = r["modes"][mode]
        assert np.all(np.diff(m["bound"]) <= 1e-12)  # the bound never grows with k
        assert np.all(m["mean"] <= m["bound"] + 1e-12)  # and it is a bound
        assert np.all(m["per_sentence"][0] == m["mean"]) and np.allclose(m["batch"], m["mean"])


def test_truncation_error_is_not_always_monotone_but_stays_under_its_bound():
    """One hidden unit with negative feedback: the dropped terms alternate in sign, and keeping one
    more of them (k = 2 -> 3) makes the remaining error larger.  Hence no monotonicity claim."""
    p = {"U": np.array([[-0.03, 0.08, 0.09, -0.01, -0.09, 0.01]]),
         "V": np.array([[0.09], [0.08], [0.06], [0.04], [-0.06], [0.02]]), "W": np.array([[-0.46]])}
    x, y = np.array([2, 2, 3, 4, 3, 4]), np.array([4, 2, 2, 0, 4, 5])
    r = A.truncation_error(RNNNumpy(6, 1, params=p), [(x, y)], modes=("tutorial",))["modes"]["tutorial"]
    assert r["mean"][3] > 2 * r["mean"][2]
    assert np.all(r["mean"] <= r["bound"] + 1e-15) and np.all(np.diff(r["bound"]) <= 0)


def test_truncation_error_on_real_sentences_falls_with_k(reddit_small):
    pairs = A.select_sentences(reddit_small.sentences, n=6, min_len=8, max_len=14, seed=2)
    rnn = A.fresh_model("rnn", len(reddit_small.vocab), 12, seed=0)
    r = A.truncation_error(rnn, pairs, truncations=[0, 1, 2, 4, 8, 14])
    tut = r["modes"]["tutorial"]
    assert np.all(np.diff(tut["mean"]) < 0) and tut["mean"][-1] < 1e-12
    assert tut["mean"][3] < 0.25 < tut["mean"][0]  # the tutorial's k = 4 keeps most of the gradient
    assert r["modes"]["scan"]["mean"][3] > 0.5  # scan's k = 4 keeps only the last four steps
    biased = A.reference_model(params={**A.tutorial_params(rnn.params["U0"][0], rnn.params["V"],
                                                           rnn.params["W0"][0]), "c": np.ones(rnn.word_dim)})
    with pytest.raises(ConfigError, match="biases"):
        A.truncation_error(biased, pairs[:1])
    with pytest.raises(ConfigError, match="one rnn layer"):
        A.truncation_error(A.fresh_model("gru", rnn.word_dim, 3), pairs[:1])


def test_truncation_training_runs_the_same_start_and_order(reddit_small):
    pairs = A.select_sentences(reddit_small.sentences, n=30, min_len=3, max_len=15, seed=3)
    train, valid = pairs[:24], pairs[24:]
    C = len(reddit_small.vocab)
    r = A.truncation_training(train, valid, C, hidden_dim=6, truncations=(1, -1), epochs=1,
                              learning_rate=0.05, seed=4)
    assert [(run["truncation"], run["bptt_truncate"]) for run in r["runs"]] == [
        ("full", -1), ("tutorial", 1), ("scan", 1)]
    starts = {run["train_loss"][0] for run in r["runs"]}
    assert len(starts) == 1 and starts.pop() == pytest.approx(np.log(C), abs=0.05)
    finals = [run["train_loss"][-1] for run in r["runs"]]
    assert len(set(finals)) == 3 and all(f < np.log(C) for f in finals)
    # The full-BPTT run is the tutorial's training loop, step for step.
    manual = RNNNumpy(C, 6, bptt_truncate=-1, params=A.init_tutorial_params(C, 6, seed=4))
    for i in np.random.default_rng(5).permutation(len(train)):
        manual.sgd_step(*train[i], 0.05)
    np.testing.assert_allclose(r["models"][("full", -1)].W, manual.W, rtol=1e-12)
    assert r["runs"][0]["valid_loss"][-1] == pytest.approx(manual.calculate_loss(*zip(*valid)))


# ------------------------------------------------------------------------------------------
# Exploding gradients
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_exploding_norms_grow_with_radius_and_clipping_bounds_them(activation):
    rng = np.random.default_rng(7)
    C = 12
    ref = A.fresh_model("rnn", C, 8, activation=activation, seed=1)
    sentences = [_sentence(rng, C, 14) for _ in range(4)]
    r = A.exploding_gradients(ref, sentences, radii=(0.5, 1.0, 2.0, 4.0), clip=2.0, learning_rate=0.01)
    medians = [row["norm"]["median"] for row in r["rows"]]
    assert np.all(np.diff(medians) > 0) and medians[-1] > 5 * medians[0]
    for row in r["rows"]:
        scaled = A.scale_recurrent(ref.params, spectral_radius=row["radius"])
        np.testing.assert_allclose(A.spectral_radius(scaled["W0"][0]), row["radius"])
        assert row["clipped_norm"]["max"] <= 2.0 + 1e-12
        assert row["clipped_norm"]["median"] == pytest.approx(min(row["norm"]["median"], 2.0))
        assert row["sgd"]["clip"]["largest_norm"] >= 0
    factors = [row["decay"]["factor"] for row in r["rows"]]
    assert factors[0] < 1 < factors[-1]
    if activation == "tanh":  # bounded states: clipped steps of at most lr·clip keep everything finite
        assert not any(row["sgd"]["clip"]["diverged"] for row in r["rows"])


def test_clip_matches_the_optimizers_rule():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    clipped, norm = A._clip(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert A._global_norm(clipped) == pytest.approx(1.0, rel=1e-6)
    same, _ = A._clip(grads, 10.0)
    assert same is grads


# ------------------------------------------------------------------------------------------
# Model conversion
# ------------------------------------------------------------------------------------------


def test_reference_model_accepts_the_tutorial_and_language_models():
    rng = np.random.default_rng(3)
    C, H = 9, 4
    tut = RNNNumpy(C, H, seed=2)
    ref = A.reference_model(tut)
    x, _ = _sentence(rng, C, 7)
    np.testing.assert_allclose(ref.forward(x)[0], tut.forward_propagation(x)[0], rtol=1e-12)

    from rnnlm.models.lm import LanguageModel, ModelConfig

    cfg = ModelConfig(vocab_size=C, hidden_dim=H, cell="lstm", embedding_dim=3, tie_embeddings=True,
                      layers=2)
    lm = LanguageModel(cfg, seed=1)
    ref = A.reference_model(lm)
    p = {k: v.astype(np.float64) for k, v in lm.get_params().items()}
    _, cache = ref.forward(x)
    top = cache["layers"][-1]["s"][:-1]
    np.testing.assert_allclose(cache["logits"], top @ p["P"].T @ p["E"] + p["c"], rtol=1e-10)
    assert ref.cell == "lstm" and ref.layers == 2
    with pytest.raises(ConfigError, match="bidirectional"):
        A.reference_model(LanguageModel(ModelConfig(vocab_size=C, hidden_dim=H, bidirectional=True), seed=1))
    with pytest.raises(ConfigError, match="exactly one"):
        A.scale_recurrent(p, scale=2.0, spectral_radius=1.0)


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch, data_dir):
    from rnnlm.cli.app import main

    monkeypatch.setenv("RNNLM_DATA", str(data_dir))
    return main


def _run_json(main, capsys, argv):
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def _check_png(path):
    import matplotlib.image

    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_SIGNATURE
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img.std() > 0  # something was drawn


SMALL = ["--vocab-size", "200", "--sentences", "4", "--min-tokens", "6", "--max-tokens", "10",
         "--seed", "3"]


@pytest.mark.core
def test_cli_gradients_json_and_plots(cli, capsys, tmp_path, reddit_csv):
    out = tmp_path / "plots"
    doc = _run_json(cli, capsys, ["analyze", "gradients", "--fresh", "rnn",
                                  "--fresh", "lstm:hidden=3,radius=0.8",
                                  "--hidden", "5", "--corpus", str(reddit_csv), *SMALL, "--json",
                                  "--out", str(out)])
    assert set(doc) >= {"norm", "fit_range", "models", "plots"}
    assert [m["name"] for m in doc["models"]] == ["rnn tanh", "lstm radius=0.8 hidden=3"]
    for m in doc["models"]:
        assert set(m) >= {"name", "source", "sentences", "model", "recurrent", "norm", "lengths", "distance",
                          "loss_grad", "jacobian", "decay", "heatmap", "heatmap_count"}
        assert "per_sentence" not in m
        for q in ("loss_grad", "jacobian"):
            assert set(m[q]) == {"count", "mean", "log_mean", "geomean", "zero_fraction"}
            assert len(m[q]["mean"]) == len(m["distance"])
            assert set(m["decay"][q]) >= {"slope", "factor", "half_life", "r2", "distances"}
            assert 0 < m["decay"][q]["factor"] < 1
        assert m["sentences"] == 4 and m["selection"]["count"] == 4 and m["selection"]["max_len"] <= 10
    assert doc["models"][1]["model"]["state_dim"] == 6  # lstm state: (h, c)
    assert doc["models"][1]["recurrent"]["W0"]["radius"] == pytest.approx([0.8] * 4)
    assert sorted(doc["plots"]) == ["decay", "heatmap"]
    for path in doc["plots"].values():
        _check_png(path)
    assert not list(out.glob(".*.tmp"))

    # The CLI reports what the Python API computes on the same sentences.
    from rnnlm.data import prepare

    corpus = prepare(reddit_csv, vocab_size=200)
    pairs = A.select_sentences(corpus.sentences, n=4, min_len=6, max_len=10, seed=3)
    api = A.gradient_norms(A.fresh_model("rnn", len(corpus.vocab), 5, seed=3), pairs)
    cli_factor = doc["models"][0]["decay"]["loss_grad"]["factor"]
    assert cli_factor == pytest.approx(api["decay"]["loss_grad"]["factor"])


def test_cli_gradients_reads_a_checkpoint_with_its_vocabulary(cli, capsys, tmp_path, reddit_csv):
    from rnnlm.data import prepare
    from rnnlm.models.lm import LanguageModel, ModelConfig
    from rnnlm.training.checkpoint import save_checkpoint

    corpus = prepare(reddit_csv, vocab_size=150)
    lm = LanguageModel(ModelConfig(vocab_size=len(corpus.vocab), hidden_dim=6, cell="gru", embedding_dim=4),
                       seed=2)
    ck = save_checkpoint(tmp_path / "gru.npz", lm, corpus=corpus)
    doc = _run_json(cli, capsys, ["analyze", "gradients", str(ck), "--corpus", str(reddit_csv), *SMALL,
                                  "--json"])
    (m,) = doc["models"]
    assert m["source"] == str(ck) and m["model"]["cell"] == "gru"
    assert m["model"]["vocab_size"] == len(corpus.vocab)
    pairs = A.select_sentences(corpus.sentences, n=4, min_len=6, max_len=10, seed=3)
    api = A.gradient_norms(lm, pairs)
    assert m["decay"]["jacobian"]["factor"] == pytest.approx(api["decay"]["jacobian"]["factor"], rel=1e-6)


def test_cli_truncation_and_exploding(cli, capsys, tmp_path, reddit_csv):
    out = tmp_path / "p"
    doc = _run_json(cli, capsys, ["analyze", "truncation", "--corpus", str(reddit_csv), *SMALL,
                                  "--hidden", "4",
                                  "--train-sentences", "12", "--valid-sentences", "4", "--epochs", "1",
                                  "--truncate", "2,-1", "--json", "--out", str(out)])
    assert set(doc) >= {"selection", "error", "training", "plots"}
    assert set(doc["error"]) == {"fresh", "trained"}
    for e in doc["error"].values():
        assert e["truncations"][-1] == max(e["lengths"])
        for mode in ("tutorial", "scan"):
            assert e["modes"][mode]["mean"][-1] == pytest.approx(0.0, abs=1e-12)
            assert "per_sentence" not in e["modes"][mode]
    assert [(r["truncation"], r["bptt_truncate"]) for r in doc["training"]["runs"]] == [
        ("full", -1), ("tutorial", 2), ("scan", 2)]
    assert "models" not in doc["training"]
    _check_png(doc["plots"]["truncation"])

    doc = _run_json(cli, capsys, ["analyze", "exploding", "--corpus", str(reddit_csv), *SMALL,
                                  "--hidden", "4",
                                  "--radius", "0.5,3", "--clip", "1.5", "--json", "--out", str(out)])
    assert [m["name"] for m in doc["models"]] == ["rnn tanh", "rnn relu"]
    for m in doc["models"]:
        assert [row["radius"] for row in m["rows"]] == [0.5, 3.0]
        assert all(row["clipped_norm"]["max"] <= 1.5 for row in m["rows"])
        assert set(m["rows"][0]["sgd"]) == {"no_clip", "clip"}
    _check_png(doc["plots"]["exploding"])


@pytest.mark.parametrize("argv,fragment", [
    (["analyze"], "choose one of gradients"),
    (["analyze", "gradients", "--fresh", "cnn"], "unknown cell 'cnn'"),
    (["analyze", "gradients", "--fresh", "rnn:depth=2"], "key=value"),
    (["analyze", "gradients", "--fresh", "rnn:radius=x"], "bad value for radius"),
    (["analyze", "gradients", "--fresh", "rnn", "--fresh", "rnn"], "two models are named"),
    (["analyze", "gradients", "/no/such/model.npz"], "no such file"),
    (["analyze", "truncation", "--truncation", "sideways"], "unknown definition"),
    (["analyze", "exploding", "--clip", "0"], "positive"),
])
def test_cli_errors_are_one_line(cli, capsys, argv, fragment):
    assert cli(argv + ["--sentences", "2"] if len(argv) > 1 else argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.startswith("rnnlm: error:") and err.count("\n") == 1


def test_cli_out_must_be_a_directory(cli, capsys, tmp_path, reddit_csv):
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    argv = ["analyze", "gradients", "--fresh", "rnn", "--corpus", str(reddit_csv), *SMALL, "--out", str(f)]
    assert cli(argv) == 2
    assert "not a directory" in capsys.readouterr().err
