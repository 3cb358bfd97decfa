"""`rnnlm train` from the command line: a real short run, and clean failures."""

import json

import numpy as np
import pytest

from rnnlm.cli.app import main
from rnnlm.data import Corpus
from rnnlm.training.checkpoint import load_model


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlm: error:"), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.core
def test_train_30s_on_the_reddit_sample(reddit_csv, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            str(reddit_csv),
            "--vocab-size",
            "500",
            "--model",
            "gru",
            "--hidden",
            "16",
            "--embedding",
            "8",
            "--time-budget",
            "30s",
            "--epochs",
            "50",
            "--out",
            str(out),
            "--no-progress",
            "--json",
            "--lr",
            "0.01",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    # the rule's choices are printed with what they were chosen for (the corpus and the budget)
    picked = next(line for line in captured.err.splitlines() if "--size auto picked" in line)
    assert "hidden_dim" not in picked and "training tokens at word level and a 30 s budget" in picked
    assert res["steps"] > 0 and res["stopped"] in ("time_budget", "epochs", "early_stopping")
    assert res["best_valid_perplexity"] < 500  # a fresh model is ~500 (ln C = 6.2)
    model, vocab, meta = load_model(out / "best.npz")
    # the 500 asked for, less the words seen fewer than --min-count (2) times in the training split
    assert len(vocab) == model.config.vocab_size == len(Corpus.load(out / "corpus.npz").vocab)
    assert 400 < len(vocab) < 500
    assert meta["corpus"]["settings"]["format"] == "csv"
    for name in ("checkpoint.npz", "best.npz", "log.jsonl", "loss.png", "corpus.npz"):
        assert (out / name).is_file(), name


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "{csv}", "--device", "gpu", "--linker", "jax"], "gpu"),
        (["train", "{csv}", "--hidden", "0"], "positive"),
        (["train", "{csv}", "--vocab-size", "2"], "vocab"),
        (["train", "{csv}", "--time-budget", "soon"], "duration"),
        (["train", "{csv}", "--model", "transformer"], "invalid choice"),
        (["train", "{csv}", "--resume", "{tmp}/missing.npz"], "checkpoint"),
        (["train", "{csv}", "--out", "{csv}/sub"], "out"),
        (["train", "{tmp}"], "directory"),
        (["train", "no-such-corpus-name"], "no-such-corpus-name"),
        (["train", "{csv}", "--precision", "bf16", "--linker", "c"], "bf16 needs the jax linker"),
        (["train", "{csv}", "--precision", "fp8"], "invalid choice"),
    ],
)
def test_train_bad_flags_and_files_fail_cleanly(reddit_csv, tmp_path, capsys, argv, needle):
    argv = [a.format(csv=reddit_csv, tmp=tmp_path) for a in argv]
    assert main(argv + ["--no-progress", "--out", str(tmp_path / "o")] if "--out" not in argv else argv) == 2
    line = _one_error_line(capsys)
    assert needle.lower() in line.lower()
    assert not (tmp_path / "o" / "checkpoint.npz").exists()


def test_resume_continues_from_checkpoint(reddit_csv, tmp_path, capsys):
    out = tmp_path / "run"
    base = [
        "train",
        str(reddit_csv),
        "--vocab-size",
        "300",
        "--model",
        "rnn",
        "--hidden",
        "8",
        "--embedding",
        "8",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--no-progress",
        "--json",
        "--max-length",
        "16",
        "--batch-size",
        "64",
    ]
    assert main(base + ["--max-steps", "3"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["steps"] == 3 and first["stopped"] == "max_steps"
    assert main(base + ["--resume"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["stopped"] == "epochs" and second["epochs"] == 2 and second["steps"] > 3
    model, _, meta = load_model(out / "checkpoint.npz")
    assert meta["train_state"]["global_step"] == second["steps"]
    assert all(np.all(np.isfinite(v)) for v in model.get_params().values())
