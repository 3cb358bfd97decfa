"""RNN + n-gram interpolation, and the two forms of stream scoring."""

import numpy as np
import pytest

from rnnlm import engine
from rnnlm.errors import ConfigError
from rnnlm.inference.interpolation import interpolated, mix, token_logprobs, tune_lambda
from rnnlm.inference.scoring import perplexity, stream_token_logprobs
from rnnlm.models.lm import LanguageModel, ModelConfig
from rnnlm.models.ngram import KneserNey

LINKER = engine.default_linker()
V = 9
RNG = np.random.default_rng(4)
SENTS = [np.array([0, *RNG.integers(2, V, RNG.integers(1, 8)), 1], np.int32) for _ in range(30)]


@pytest.fixture(scope="module")
def pair():
    model = LanguageModel(
        ModelConfig(vocab_size=V, hidden_dim=6, cell="gru", embedding_dim=4), seed=2, linker=LINKER
    )
    kn = KneserNey(2).fit(SENTS[:20], V, start_id=0)
    return model, kn


def test_lambda_one_and_zero_give_each_part(pair):
    model, kn = pair
    lp_rnn, lp_kn = token_logprobs(model, kn, SENTS[20:])
    assert len(lp_rnn) == len(lp_kn) == sum(len(s) - 1 for s in SENTS[20:])
    np.testing.assert_array_equal(mix(lp_rnn, lp_kn, 1.0), lp_rnn)
    np.testing.assert_array_equal(mix(lp_rnn, lp_kn, 0.0), lp_kn)
    res1, res0 = interpolated(lp_rnn, lp_kn, 1.0), interpolated(lp_rnn, lp_kn, 0.0)
    assert res1["interpolated"] == pytest.approx(perplexity(model, SENTS[20:]).perplexity, rel=1e-6)
    assert res0["interpolated"] == pytest.approx(kn.perplexity(SENTS[20:]), rel=1e-9)
    # in between: the mixture of the probabilities, token by token
    lam = 0.3
    np.testing.assert_allclose(
        np.exp(mix(lp_rnn, lp_kn, lam)), lam * np.exp(lp_rnn) + (1 - lam) * np.exp(lp_kn)
    )
    with pytest.raises(ConfigError):
        mix(lp_rnn, lp_kn, 1.5)


def test_tuned_lambda_maximises_the_likelihood():
    rng = np.random.default_rng(0)
    a = np.log(rng.uniform(0.01, 1, 500))
    b = np.log(rng.uniform(0.01, 1, 500))
    lam = tune_lambda(a, b)
    grid = np.linspace(0, 1, 2001)
    best = grid[np.argmax([mix(a, b, g).sum() for g in grid])]
    assert abs(lam - best) < 2e-3 and 0 < lam < 1
    assert mix(a, b, lam).sum() >= max(a.sum(), b.sum())  # never worse than either part alone
    assert tune_lambda(a, a - 5.0) > 0.99  # a model that is always better takes (almost) all the weight


def test_stream_tracks_score_the_same_tokens_and_equal_the_carried_state_with_full_warmup(pair):
    model, _ = pair
    ids = np.concatenate(SENTS)
    exact = stream_token_logprobs(model, ids, chunk=16)
    full = stream_token_logprobs(model, ids, chunk=16, tracks=5, warmup=len(ids))
    np.testing.assert_allclose(full, exact, rtol=1e-5, atol=1e-6)
    short = stream_token_logprobs(model, ids, chunk=16, tracks=5, warmup=3)
    assert short.shape == exact.shape and not np.allclose(short, exact)
    # past each track's warm-up the two agree closely; the first track is exact throughout
    n = len(exact)
    np.testing.assert_allclose(short[: n // 5], exact[: n // 5], rtol=1e-5, atol=1e-6)
