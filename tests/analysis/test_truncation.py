"""rnnlm.analysis.truncation: truncated BPTT against full BPTT (property tests over generated
tutorial models, real sentences) and the training runs per truncation setting."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlm import analysis as A
from rnnlm.errors import ConfigError
from rnnlm.models.reference import RNNNumpy, init_tutorial_params, tutorial_to_general
from tests.analysis.helpers import sentence


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
    return RNNNumpy(C, H, bptt_truncate=-1, params=p), rho, sentence(rng, C, T)


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
    biased = A.reference_model(params={**tutorial_to_general(rnn.params["U0"][0], rnn.params["V"],
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
    manual = RNNNumpy(C, 6, bptt_truncate=-1, params=init_tutorial_params(C, 6, seed=4))
    for i in np.random.default_rng(5).permutation(len(train)):
        manual.sgd_step(*train[i], 0.05)
    np.testing.assert_allclose(r["models"][("full", -1)].W, manual.W, rtol=1e-12)
    assert r["runs"][0]["valid_loss"][-1] == pytest.approx(manual.calculate_loss(*zip(*valid, strict=True)))
