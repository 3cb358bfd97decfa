"""Baselines next to every model: what `rnnlm train` reports, `rnnlm ngram`, and
`rnnlm perplexity --interpolate`."""

import json

import pytest

from rnnlm.cli.app import main
from rnnlm.data import Corpus
from rnnlm.training.baselines import fit_baselines, score_baselines
from rnnlm.training.checkpoint import read_checkpoint


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def trained(reddit_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rc = main(
        [
            "train",
            str(reddit_csv),
            "--vocab-size",
            "400",
            "--model",
            "gru",
            "--hidden",
            "16",
            "--layers",
            "1",
            "--embedding",
            "16",
            "--time-budget",
            "8s",
            "--out",
            str(out),
            "--no-progress",
            "--json",
        ]
    )
    assert rc == 0
    return out


@pytest.mark.core
def test_train_reports_the_baselines_of_its_own_split(trained, reddit_csv, tmp_path, capsys):
    corpus = Corpus.load(trained / "corpus.npz")
    splits = corpus.split(valid=0.05, test=0.05, seed=0)
    models = fit_baselines(splits["train"])
    want = score_baselines(models, splits["valid"])
    state = read_checkpoint(trained / "best.npz")["meta"]["train_state"]
    got = state["baselines"]["valid"]
    assert got["kn"] == pytest.approx(want["kn"]) and got["unigram"] == pytest.approx(want["unigram"])
    assert state["baselines"]["kn_order"] == 3 and 1 < got["kn"] < got["unigram"] < 400
    log = [json.loads(x) for x in (trained / "log.jsonl").read_text().splitlines()]
    assert any(r["event"] == "baselines" for r in log) and any(r["event"] == "interpolation" for r in log)
    mix = state["interpolation"]
    assert 0.0 <= mix["lambda"] <= 1.0
    assert mix["valid"]["interpolated"] <= min(mix["valid"]["rnn"], mix["valid"]["ngram"]) * (1 + 1e-9)
    assert mix["valid"]["ngram"] == pytest.approx(want["kn"])


@pytest.mark.core
def test_ngram_cli_matches_the_baseline_and_scores_files(trained, reddit_csv, tmp_path, capsys):
    rc, out, _ = run(
        capsys, "ngram", "train", reddit_csv, "--vocab-size", "400", "--out", tmp_path / "kn.npz", "--json"
    )
    assert rc == 0
    res = json.loads(out)
    state = read_checkpoint(trained / "best.npz")["meta"]["train_state"]
    assert res["valid"]["kn"] == pytest.approx(state["baselines"]["valid"]["kn"])
    text = tmp_path / "t.txt"
    text.write_text("i think it is a good idea.\n\nthis is not what i said.\n", encoding="utf-8")
    rc, out, _ = run(capsys, "ngram", "perplexity", tmp_path / "kn.npz", text, "--format", "text", "--json")
    assert rc == 0 and json.loads(out)["predicted_tokens"] > 10
    rc, _, err = run(capsys, "ngram", "perplexity", tmp_path / "nope.npz", text)
    assert rc == 2 and err.startswith("rnnlm: error:") and len(err.strip().splitlines()) == 1


def test_perplexity_interpolate_with_lambda_0_1_and_auto(trained, tmp_path, capsys):
    text = tmp_path / "t.csv"
    text.write_text(
        'body\n"i think it is a good idea. this is not what i said."\n"thanks for the link."\n',
        encoding="utf-8",
    )
    base = ["perplexity", trained / "best.npz", text, "--json", "--interpolate", trained / "ngram.npz"]
    results = {}
    for lam in ("0", "1", "auto"):
        rc, out, _ = run(capsys, *base, "--lambda", lam)
        assert rc == 0
        results[lam] = json.loads(out)
    plain = results["1"]["perplexity"]
    assert results["1"]["interpolation"]["interpolated"] == pytest.approx(plain, rel=1e-5)
    assert results["0"]["interpolation"]["interpolated"] == pytest.approx(
        results["0"]["interpolation"]["ngram"]
    )
    stored = read_checkpoint(trained / "best.npz")["meta"]["train_state"]["interpolation"]["lambda"]
    assert results["auto"]["interpolation"]["lambda"] == pytest.approx(stored)
    rc, _, err = run(capsys, *base, "--lambda", "2")
    assert rc == 2 and "[0, 1]" in err


@pytest.mark.parametrize(("level", "batching"), [("word", "stream"), ("char", "sentences")])
def test_the_mixture_scores_the_definition_whatever_the_training_batches(level, batching, tmp_path, capsys):
    """Words are mixed sentence by sentence and characters as one stream even when training batched them
    the other way: the mixture covers every predicted token of the validation split, and its n-gram part
    is the KN baseline reported for that split."""
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\nthe dog sat on the log\na cat and a dog met\n" * 30)
    out = tmp_path / "run"
    rc, _, err = run(
        capsys,
        "train",
        text,
        "--format",
        "lines",
        "--level",
        level,
        "--batching",
        batching,
        "--model",
        "gru",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--embedding",
        "8",
        "--max-steps",
        "3",
        "--out",
        out,
        "--no-progress",
        "--json",
    )
    assert rc == 0, err
    corpus = Corpus.load(out / "corpus.npz")
    valid = corpus.split(valid=0.05, test=0.05, seed=0)["valid"]
    state = read_checkpoint(out / "best.npz")["meta"]["train_state"]
    mix = state["interpolation"]["valid"]
    want = valid.n_tokens - 1 if level == "char" else sum(len(s) - 1 for s in valid.sentences)
    assert mix["tokens"] == want
    assert mix["ngram"] == pytest.approx(state["baselines"]["valid"]["kn"], rel=1e-6)
