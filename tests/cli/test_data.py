"""The ``rnnlm`` command line: data download/prepare/info, demo, and its error contract
(one line ``rnnlm: error: ...`` on stderr, exit code 2, no traceback, no output file)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from rnnlm.cli import app as cli
from rnnlm.cli.app import main
from rnnlm.data import Corpus
from rnnlm.data import datasets as datasets


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, fragment=""):
    assert rc == 2
    lines = err.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("rnnlm: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert all(ln.startswith("rnnlm: ") for ln in lines), err  # warnings, then the error: no traceback
    assert "Traceback" not in err and fragment in errors[0], err


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNLM_DATA", raising=False)
    monkeypatch.setattr(datasets, "_repo_data_dir", lambda: tmp_path / "repo-data")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.core
def test_help_lists_every_command(capsys):
    rc, out, _ = run(capsys, "--help")
    assert rc == 0
    expected = (
        "data",
        "train",
        "demo",
        "generate",
        "score",
        "perplexity",
        "fill",
        "ngram",
        "serve",
        "analyze",
        "experiment",
        "bench",
    )
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()]
    assert set(expected) <= set(listed), listed
    rc, out, _ = run(capsys, "data", "--help")
    assert rc == 0 and all(sub in out for sub in ("download", "prepare", "info"))
    rc, out, _ = run(capsys, "data", "prepare", "--help")
    assert rc == 0 and "--format" in out and "--tokenizer" in out and "--unk-token" in out


@pytest.mark.core
def test_python_dash_m_rnnlm_works():
    proc = subprocess.run(
        [sys.executable, "-m", "rnnlm", "--version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("rnnlm ")
    proc = subprocess.run(
        [sys.executable, "-m", "rnnlm", "data", "prepare", "missing.txt", "--out", "x.npz"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == "rnnlm: error: missing.txt: no such file"


@pytest.mark.core
def test_prepare_csv_prints_tutorial_statistics_and_info_reads_it(tmp_path, capsys):
    src = tmp_path / "c.csv"
    src.write_text('id,comment\n1,"Hello there. How are you?"\n2,"Fine, thanks. Hello!"\n', encoding="utf-8")
    out_file = tmp_path / "c.npz"
    rc, out, err = run(
        capsys,
        "data",
        "prepare",
        src,
        "--column",
        "comment",
        "--out",
        out_file,
        "--vocab-size",
        "5",
        "--splitter",
        "trained",
    )
    assert rc == 0, err
    assert "Parsed 4 sentences.\n" in out
    assert "Found 13 unique words tokens.\n" in out
    assert "Using vocabulary size 5.\n" in out
    assert "The least frequent word in our vocabulary is '.' and appeared 2 times.\n" in out
    corpus = Corpus.load(out_file)
    assert len(corpus) == 4 and len(corpus.vocab) == 5
    rc, out, _ = run(capsys, "data", "info", out_file)
    assert rc == 0 and "Parsed 4 sentences." in out and "vocabulary head" in out
    rc, out, _ = run(capsys, "data", "info", out_file, "--json")
    info = json.loads(out)
    assert info["sentences"] == 4 and info["vocab_size"] == 5 and info["vocab_head"][0] == "SENTENCE_START"


def test_prepare_json_is_one_object(tmp_path, capsys):
    src = tmp_path / "ptb.txt"
    src.write_text(" the <unk> sat \n a cat <unk> \n", encoding="utf-8")
    rc, out, err = run(capsys, "data", "prepare", src, "--out", tmp_path / "p.npz", "--json")
    assert rc == 0, err
    stats = json.loads(out)
    assert out.count("\n") == 1
    assert (
        stats["format"] == "lines"
        and stats["tokenizer"] == "whitespace"
        and stats["unknown_token"] == "<unk>"
    )
    assert stats["out"] == str(tmp_path / "p.npz") and stats["sentences"] == 2
    rc, out, _ = run(
        capsys, "data", "prepare", src, "--out", tmp_path / "q.npz", "--json", "--unk-token", "<oov>"
    )
    assert json.loads(out)["unknown_token"] == "<oov>"


def test_formats_via_cli(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text('{"t": "one two"}\n{"t": "three"}\n', encoding="utf-8")
    rc, out, err = run(
        capsys,
        "data",
        "prepare",
        tmp_path / "d.jsonl",
        "--field",
        "t",
        "--tokenizer",
        "whitespace",
        "--out",
        tmp_path / "d.npz",
        "--json",
    )
    assert rc == 0, err and json.loads(out)["sentences"] == 2
    (tmp_path / "t.txt").write_text("Ab\ncd\n", encoding="utf-8")
    rc, out, err = run(
        capsys,
        "data",
        "prepare",
        tmp_path / "t.txt",
        "--level",
        "char",
        "--format",
        "text",
        "--out",
        tmp_path / "t.npz",
        "--json",
    )
    assert rc == 0, err
    assert Corpus.load(tmp_path / "t.npz").decode(Corpus.load(tmp_path / "t.npz").stream()) == "Ab\ncd\n"


@pytest.mark.core
def test_bad_input_via_cli_is_one_line_exit_2_and_no_file(bad_input, tmp_path, capsys, isolated):
    kwargs, _, fragment = bad_input
    argv = ["data", "prepare", kwargs.pop("source"), "--out", tmp_path / "out.npz"]
    flags = {"vocab_size": "--vocab-size", "drop_containing": "--drop-containing", "tokenizer": "--tokenizer"}
    for key, value in kwargs.items():
        argv += [flags[key], value]
    rc, _, err = run(capsys, *argv)
    assert_one_line_error(rc, err, fragment)
    assert not (tmp_path / "out.npz").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.npz")]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        ([], "choose a command"),
        (["nosuchcommand"], "invalid choice"),
        (["data"], "choose one of"),
        (["data", "prepare", "x.txt"], "--out"),
        (["data", "prepare", "x.txt", "--out", "o.npz", "--bogus"], "unrecognized arguments"),
        (["data", "prepare", "x.txt", "--out", "o.npz", "--format", "xml"], "invalid choice"),
        (["data", "prepare", "x.txt", "--out", "o.npz", "--vocab-size", "many"], "invalid int"),
        (["data", "prepare", "x.txt", "--out", "no/such/dir/o.npz"], "does not exist"),
        (["data", "prepare", "x.txt", "--out", "."], "is a directory"),
        (["data", "download", "nope"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line(argv, fragment, capsys, isolated):
    (isolated / "x.txt").write_text("some text\n")
    rc, _, err = run(capsys, *argv)
    assert_one_line_error(rc, err, fragment)


def test_info_on_a_file_that_is_not_a_corpus(tmp_path, capsys):
    (tmp_path / "x.npz").write_bytes(b"junk")
    rc, _, err = run(capsys, "data", "info", tmp_path / "x.npz")
    assert_one_line_error(rc, err, "x.npz")


def test_prepare_refuses_a_binary_file_with_one_line_and_no_output(tmp_path, capsys):
    src = tmp_path / "noise.bin"
    src.write_bytes(random.Random(1).randbytes(4096))  # today this "prepared" with ~1,700 U+FFFD
    rc, out, err = run(capsys, "data", "prepare", src, "--out", tmp_path / "x.npz")
    assert_one_line_error(rc, err, f"{src}: looks binary, not a text corpus")
    assert len(err.splitlines()) == 1 and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.bin"]


def test_undecodable_bytes_are_a_warning_not_an_error(tmp_path, capsys):
    (tmp_path / "b.txt").write_bytes(b"caf\xe9 au lait\n")
    rc, out, err = run(
        capsys,
        "data",
        "prepare",
        tmp_path / "b.txt",
        "--format",
        "lines",
        "--out",
        tmp_path / "b.npz",
        "--json",
    )
    assert rc == 0 and json.loads(out)["replacement_chars"] == 1
    assert err.strip().startswith("rnnlm: warning: ") and "1 undecodable" in err


def test_download_offline_is_one_line(isolated, monkeypatch, capsys):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    rc, _, err = run(capsys, "data", "download", "tinyshakespeare")
    assert_one_line_error(rc, err, "RNNLM_DATA")
    assert not (isolated / "repo-data" / "tinyshakespeare.txt").exists()


def test_download_finds_a_verified_local_copy(shakespeare_txt, isolated, monkeypatch, capsys):
    monkeypatch.setenv("RNNLM_DATA", str(shakespeare_txt.parent))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    rc, out, _ = run(capsys, "data", "download", "tinyshakespeare")
    assert rc == 0 and out.strip() == str(shakespeare_txt)


@pytest.mark.core
def test_demo_prepares_the_default_corpus(reddit_csv, monkeypatch, capsys, isolated):
    monkeypatch.setenv("RNNLM_DATA", str(reddit_csv.parent))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    rc, out, err = run(capsys, "demo", "--time-budget", "5s", "--num", "3", "--out", "demo-run")
    assert rc == 0, err
    assert "Parsed " in out and "Using vocabulary size" in out and "least frequent word" in out
    assert "sample" in err and "cut off" in err  # said which file stood in, and the cut row
    sentences = out.split("Generated sentences:")[1].strip().splitlines()
    assert len(sentences) == 3 and all(s.strip() for s in sentences)
    assert not any("UNKNOWN_TOKEN" in s for s in sentences)


def test_interrupt_and_oserror_handling(monkeypatch, capsys):
    def command(handler):
        def add_parser(sub):
            sub.add_parser("boom").set_defaults(run=handler)

        return SimpleNamespace(add_parser=add_parser)

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "boom", command(interrupted))
    rc, _, err = run(capsys, "boom")
    assert rc == 130 and err.strip() == "rnnlm: interrupted"

    def oserror(args):
        raise PermissionError(13, "Permission denied", "/root/secret.txt")

    monkeypatch.setitem(cli.COMMANDS, "boom", command(oserror))
    rc, _, err = run(capsys, "boom")
    assert_one_line_error(rc, err, "/root/secret.txt: Permission denied")


def test_main_restores_warning_display(tmp_path, capsys):
    import warnings

    before = warnings.showwarning
    (tmp_path / "b.txt").write_bytes(b"caf\xe9\n")
    run(capsys, "data", "prepare", tmp_path / "b.txt", "--out", tmp_path / "b.npz")
    assert warnings.showwarning is before
