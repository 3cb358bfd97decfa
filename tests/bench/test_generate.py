"""rnnlm.bench.generate: incremental generation and part 4's GRU."""

import numpy as np
import pytest

from rnnlm import bench
from rnnlm.bench.generate import _sample_rows
from rnnlm.errors import ConfigError


def test_bench_generate_result():
    r = bench.bench_generate(vocab_size=25, hidden_dim=4, batch_sizes=(1, 3), tokens=12, window=4)
    for B in (1, 3):
        b = r["batches"][str(B)]
        assert b["tokens_per_s"] == pytest.approx(B * 12 / b["total_s"])
        assert b["last_over_first"] == pytest.approx(b["last_ms"] / b["first_ms"])
        assert 0 < b["step_ms"] <= b["ms_per_token"]  # the step is part of each token's time
    with pytest.raises(ConfigError):
        bench.bench_generate(vocab_size=25, hidden_dim=4, tokens=10, window=6)


def test_sample_rows_draws_from_the_distribution():
    rng = np.random.default_rng(0)
    logp = np.log(np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]) + 1e-30)
    draws = np.array([_sample_rows(rng, logp) for _ in range(400)])
    assert (draws[:, 0] == 1).all()
    assert set(draws[:, 1]) == {0, 2} and 0.35 < (draws[:, 1] == 0).mean() < 0.65


def test_bench_gru_part4_result():
    r = bench.bench_gru_part4(batch_sizes=(2,), length=4, repeat=2,
                              config={"vocab_size": 30, "hidden_dim": 6, "embedding_dim": 3})
    s = r["settings"]
    assert (s["cell"], s["layers"], s["gate"], s["optimizer"]) == ("gru", 2, "hard_sigmoid", "rmsprop")
    assert (s["decay"], s["eps"], s["learning_rate"]) == (0.9, 1e-6, 0.001)
    runs = list(r["runs"].values())
    assert [v["batch_size"] for v in runs] == [2]
    for v in runs:
        assert v["words_per_s"] == pytest.approx(v["batch_size"] * 4 / (v["median_ms"] / 1e3))
