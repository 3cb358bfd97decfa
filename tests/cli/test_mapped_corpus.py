"""Corpora past RAM from the command line: ``data prepare --out NAME.json`` writes the memory-mapped
format, ``data info`` and ``train`` read it (training reads batches from the map), a run keeps it as
``corpus.json`` and resumes from it."""

from __future__ import annotations

import json

import numpy as np

from rnnlm.cli.app import main
from rnnlm.data import Corpus


def test_prepare_info_train_and_resume_a_mapped_corpus(tmp_path, capsys):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    src = tmp_path / "text.txt"
    src.write_text("\n".join(" ".join(rng.choice(words, rng.integers(2, 9))) for _ in range(300)) + "\n")
    rc = main(["data", "prepare", str(src), "--format", "lines", "--out", str(tmp_path / "c.json"), "--json"])
    assert rc == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["out"].endswith("c.json") and (tmp_path / "c.ids.npy").is_file()
    assert np.load(tmp_path / "c.ids.npy", mmap_mode="r").dtype == np.uint16
    assert main(["data", "info", str(tmp_path / "c.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sentences"] == stats["sentences"]

    run = tmp_path / "run"
    train = [
        "train",
        str(tmp_path / "c.json"),
        "--model",
        "gru",
        "--hidden",
        "8",
        "--embedding",
        "8",
        "--batch-size",
        "8",
        "--out",
        str(run),
        "--no-progress",
        "--json",
        "--min-count",
        "1",
    ]
    assert main([*train, "--max-steps", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 4
    kept = Corpus.load(run / "corpus.json")  # the run's corpus, mapped, not corpus.npz
    assert kept.mapped and not (run / "corpus.npz").exists() and kept.n_tokens == stats["tokens"]
    same = (run / "corpus.ids.npy").stat(), (tmp_path / "c.ids.npy").stat()
    assert (same[0].st_ino, same[0].st_dev) == (same[1].st_ino, same[1].st_dev)  # linked, not copied
    assert main([*train, "--max-steps", "3", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 7


def test_a_folded_vocabulary_is_re_encoded_into_the_run_folder(tmp_path, capsys):
    """Words seen once in training read as the unknown token: a mapped corpus is re-encoded a slice at a
    time into the run's corpus.json (its own ids file), not into memory."""
    rng = np.random.default_rng(1)
    lines = [" ".join(rng.choice([f"w{i}" for i in range(30)], 6)) for _ in range(200)] + ["rare1 rare2"]
    src = tmp_path / "text.txt"
    src.write_text("\n".join(lines) + "\n")
    assert main(["data", "prepare", str(src), "--format", "lines", "--out", str(tmp_path / "c.json")]) == 0
    run = tmp_path / "run"
    rc = main(
        [
            "train",
            str(tmp_path / "c.json"),
            "--model",
            "rnn",
            "--hidden",
            "8",
            "--batch-size",
            "8",
            "--max-steps",
            "2",
            "--out",
            str(run),
            "--no-progress",
            "--seed",
            "2",
            "--valid-fraction",
            "0.05",
            "--test-fraction",
            "0",
        ]
    )
    assert rc == 0
    source, kept = Corpus.load(tmp_path / "c.json"), Corpus.load(run / "corpus.json")
    assert kept.mapped and len(kept.vocab) < len(source.vocab) and kept.stats["rare_in_training"] >= 1
    assert kept.n_tokens == source.n_tokens and kept.stats["unknown_tokens"] >= 1
