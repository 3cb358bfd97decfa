"""Learning-rate schedules on constructed validation curves, and the stop rules of the loop."""

import math

import numpy as np
import pytest

from rnnlm.errors import ConfigError
from rnnlm.training.schedules import NewBob, Plateau, WarmupDecay, make_schedule


def test_auto_picks_newbob_for_sgd_and_cosine_for_adam():
    assert isinstance(make_schedule("auto", "sgd", 1.0), NewBob)
    assert make_schedule("auto", "adam", 0.002).name == "cosine"
    assert make_schedule("auto", "rmsprop", 0.001).name == "cosine"
    with pytest.raises(ConfigError):
        make_schedule("exponential", "adam", 0.1)


def test_cosine_warms_up_peaks_and_ends_at_its_floor():
    s = WarmupDecay(0.01, floor=0.05, warmup=0.1)
    ps = np.linspace(0, 1, 201)
    r = np.array([s.rate(p) for p in ps])
    assert r[0] == pytest.approx(0.0005)  # warm-up starts at the floor...
    assert s.rate(0.05) == pytest.approx(0.0005 + 0.5 * (0.01 - 0.0005))  # ...rises linearly...
    assert s.rate(0.1) == pytest.approx(0.01)  # ...to the peak
    after = r[ps >= 0.1]
    assert np.all(np.diff(after) <= 1e-15) and after[-1] == pytest.approx(0.0005)
    assert s.rate(0.55) == pytest.approx(0.0005 + 0.5 * (0.01 - 0.0005))  # cosine: half way at the middle
    assert s.rate(1.7) == pytest.approx(0.0005)  # past the horizon: the floor, never zero
    assert not any(s.below_floor(p) for p in ps)
    lin = WarmupDecay(0.01, floor=0.0, warmup=0.0, shape="linear")
    assert lin.rate(0.25) == pytest.approx(0.0075) and lin.rate(1.0) == 0.0


def test_newbob_keeps_the_rate_then_halves_then_stops():
    s = NewBob(1.0, min_improvement=0.01)
    curve = [5.0, 4.0, 3.5, 3.48, 3.40, 3.30, 3.29, 3.0]  # relative gains: 20%, 12.5%, 0.6%, ...
    rates, stops = [], []
    for loss in curve:
        stops.append(s.validated(loss))
        rates.append(s.rate(0.0))
        if stops[-1]:
            break
    # keep 1.0 while the gain is > 1%; 3.48 gains 0.57%: halve from here on, at every evaluation
    assert rates[:3] == [1.0, 1.0, 1.0]
    assert rates[3:6] == [0.5, 0.25, 0.125]
    assert stops == [None] * 6 + ["converged"]  # 3.29 gains 0.3% again: converged
    assert s.rate(0.0) == 0.125


def test_newbob_stops_at_its_floor_when_it_keeps_improving_slowly():
    s = NewBob(1.0, floor=2.0**-3, min_improvement=0.001)
    s.validated(10.0)
    s.validated(9.995)  # a small gain: halving starts
    assert s.rate(0) == 0.5 and not s.below_floor(0)
    for loss in (9.0, 8.0, 7.0):  # big gains: no convergence, but the rate keeps halving
        assert s.validated(loss) is None
    assert s.rate(0) == 2.0**-4 and s.below_floor(0)


def test_plateau_cuts_only_when_validation_does_not_improve():
    s = Plateau(0.1, floor=0.1, factor=0.5)  # stop below 0.01
    for loss in (3.0, 2.9, 2.95, 2.8, 2.85, 2.85):
        s.validated(loss)
    assert s.rate(0) == pytest.approx(0.1 * 0.5**3)
    assert not s.below_floor(0)
    for _ in range(1):
        s.validated(2.9)
    assert s.rate(0) == pytest.approx(0.1 / 16) and s.below_floor(0)


def test_halving_and_state_round_trip():
    s = make_schedule("newbob", "sgd", 2.0)
    for loss in (4.0, 3.999, 3.0):
        s.validated(loss)
    s.halve()
    t = make_schedule("newbob", "sgd", 2.0)
    t.load(s.to_json())
    assert t.rate(0.3) == s.rate(0.3) == pytest.approx(2.0 * 0.5 * 0.25)
    assert t.validated(2.999) == s.validated(2.999) == "converged"


@pytest.mark.parametrize("bad", [dict(peak=0), dict(floor=1.0), dict(warmup=1.0)])
def test_bad_settings_are_refused(bad):
    kw = dict(peak=0.1, floor=0.05, warmup=0.1) | bad
    with pytest.raises(ConfigError):
        WarmupDecay(**kw)


def test_cosine_decay_is_what_the_optimizer_gets(tmp_path):
    """The loop sets the optimizer's rate from the schedule before every step (progress by steps)."""
    from rnnlm import engine
    from rnnlm.data import Corpus, Vocabulary
    from rnnlm.models.lm import LanguageModel, ModelConfig
    from rnnlm.training.config import TrainConfig
    from rnnlm.training.trainer import Trainer

    vocab = Vocabulary(["SENTENCE_START", "SENTENCE_END", "a", "b", "UNKNOWN_TOKEN"], "UNKNOWN_TOKEN")
    rng = np.random.default_rng(0)
    sents = [np.array([0, *rng.integers(2, 4, rng.integers(2, 6)), 1], np.int32) for _ in range(40)]
    corpus = Corpus(vocab, sents, "word")
    model = LanguageModel(
        ModelConfig(vocab_size=5, hidden_dim=4, cell="gru", embedding_dim=3),
        seed=0,
        linker=engine.default_linker(),
    )
    seen = []
    cfg = TrainConfig(lr=0.01, epochs=3, batch_size=8, max_length=8, warmup=0.2, lr_floor=0.1, patience=0)
    tr = Trainer(model, corpus, None, cfg, progress=False)
    tr.fit(callback=lambda t: seen.append((t.state["global_step"], t.model.optimizer.learning_rate)))
    total = 3 * 5  # 40 sentences / 8 per batch = 5 steps per epoch
    assert len(seen) == total
    want = [WarmupDecay(0.01, 0.1, 0.2).rate((k - 1) / total) for k, _ in seen]
    np.testing.assert_allclose([lr for _, lr in seen], want, rtol=1e-5)
    assert math.isclose(max(lr for _, lr in seen), 0.01, rel_tol=0.2)
