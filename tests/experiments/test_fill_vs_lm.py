"""rnnlm.experiments.fill_vs_lm through `rnnlm experiment fill-vs-lm`."""

import numpy as np
import pytest


def test_fill_beats_lm_when_the_right_context_decides(cli, tmp_path, capsys):
    """Sentences "X c X .": the first X can only be known from its right.  A left-to-right model
    gets at most c, the second X and "." (3/4 plus chance on the first X); the fill model all four.
    Runs through the CLI (`rnnlm experiment fill-vs-lm --json`)."""
    import json

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20)]
    f = tmp_path / "copy.txt"
    f.write_text("".join(f"{x} c {x} .\n" for x in rng.choice(words, 400)))
    rc = cli(["experiment", "fill-vs-lm", "--corpus", str(f), "--model", "gru", "--hidden", "16",
              "--embedding", "8", "--lr", "0.01", "--batch-size", "16", "--max-steps", "400",
              "--max-length", "8",
              "--test-fraction", "0.2", "--time-budget", "10m", "--no-progress", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert res["corpus"]["test_sentences_scored"] == 80
    assert res["fill"]["positions"] == res["lm"]["positions"] == 4 * 80
    assert res["fill"]["timing"]["steps"] == res["lm"]["timing"]["steps"] == 400
    assert res["fill"]["accuracy"] >= 0.95
    assert res["lm"]["accuracy"] <= 0.85
    assert res["margin"] >= 0.15
    assert res["margin"] == pytest.approx(res["fill"]["accuracy"] - res["lm"]["accuracy"])
    assert res["fill"]["parameters"] > res["lm"]["parameters"]  # two stacks of one size
    assert res["unigram_baseline"]["accuracy"] == pytest.approx(0.25)  # "c" or "." once in four words
