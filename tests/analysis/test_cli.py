"""`rnnlm analyze`: JSON and plots of the three subcommands, checkpoints, one-line errors."""

import json

import pytest

from rnnlm import analysis as A

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
