"""rnnlm.experiments.part4: a short run of the tutorial's part 4 GRU."""

import numpy as np
import pytest

from rnnlm.data import SENTENCE_END, SENTENCE_START, UNKNOWN_TOKEN


@pytest.mark.filterwarnings("ignore::rnnlm.data.CorpusWarning")  # the sample's cut last row
def test_reproduce_part4_short_run(reddit_csv):
    from rnnlm.experiments import reproduce_part4

    res = reproduce_part4(time_budget=None, max_steps=40, corpus=str(reddit_csv), vocab_size=300, hidden=16,
                          embedding=8, lr=0.01, batch_size=4, max_length=32, buckets=(32,), eval_sentences=64,
                          evaluations=2, n_sentences=2, max_words=12)
    cfg = res["config"]
    assert (cfg["cell"], cfg["layers"], cfg["gate"], cfg["bptt_truncate"], cfg["optimizer"]) == \
        ("gru", 2, "hard_sigmoid", -1, "rmsprop")
    assert res["corpus"]["dropped_sentences"] > 0  # sentences containing "http" are gone
    assert res["loss_start"] == pytest.approx(np.log(300), abs=0.05)  # fresh model ~ uniform
    assert [e["step"] for e in res["losses"]] == [0, 20, 40]
    assert res["loss_end"] < res["loss_start"] - 1.0
    assert res["timing"]["steps"] == 40 and res["timing"]["ms_per_step"] > 0
    assert len(res["sentences"]) == 2
    for s in res["sentences"]:
        words = s.split()
        assert 1 <= len(words) <= 12
        assert not {UNKNOWN_TOKEN, SENTENCE_START, SENTENCE_END} & set(words)
