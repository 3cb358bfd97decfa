"""`rnnlm bench quality`: every yardstick scored on the same held-out tokens."""

import numpy as np
import pytest

from rnnlm.bench.quality import quality_one
from rnnlm.data import prepare
from rnnlm.models.ngram import KneserNey, Unigram


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat while dogs ran far away from home today".split()
    lines = [
        " ".join(words[(s + i) % len(words)] for i in range(rng.integers(3, 9)))
        for s in rng.integers(0, len(words), 300)
    ]
    path = tmp_path_factory.mktemp("c") / "c.tokens"  # one pre-tokenized sentence per line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_quality_scores_every_yardstick_on_the_same_tokens(small_corpus):
    res = quality_one(f"{small_corpus}:word", budget_s=3.0, torch=False)
    rows = res["results"]
    assert set(rows) == {"rnnlm", "kn2", "kn3", "kn4", "kn5", "unigram", "rnnlm+kn3"}
    from rnnlm.training.api import split_for_training

    corpus, splits = split_for_training(prepare(str(small_corpus), progress=False), 0.05, 0.05, 0)
    for order in (2, 3, 5):
        kn = KneserNey(order).fit(
            splits["train"].sentences, len(corpus.vocab), start_id=corpus.vocab.start_index
        )
        assert rows[f"kn{order}"]["perplexity"] == pytest.approx(kn.perplexity(splits["test"].sentences))
    uni = Unigram().fit(splits["train"].sentences, len(corpus.vocab), start_id=corpus.vocab.start_index)
    assert rows["unigram"]["perplexity"] == pytest.approx(uni.perplexity(splits["test"].sentences))
    n = rows["kn3"]["tokens"]
    assert all(rows[k]["tokens"] == n for k in rows)  # the same held-out tokens for every model
    assert rows["rnnlm"]["stopped"] in ("time_budget", "early_stopping")
    assert rows["rnnlm"]["perplexity"] < rows["unigram"]["perplexity"]  # a cyclic corpus: context helps
    assert 0.0 <= rows["rnnlm+kn3"]["lambda"] <= 1.0


def test_the_command_line_runs_it(small_corpus, capsys):
    import json

    from rnnlm.cli.app import main

    rc = main(
        ["bench", "quality", "--corpora", f"{small_corpus}:word", "--budget", "2s", "--no-torch", "--json"]
    )
    res = json.loads(capsys.readouterr().out)
    rows = res["corpora"][0]["results"]
    assert rc == 0 and "torch" not in rows  # --no-torch
    assert rows["kn3"]["tokens"] == rows["rnnlm"]["tokens"] > 0 and "machine" in res
