"""``rnnlm demo`` on a fresh machine: no RNNLM_DATA, no network -- the reddit sample shipped in the package
stands in (one warning), training uses ``rnnlm train``'s defaults, and the output says how good the model is
and what to run next."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rnnlm.cli.app import main
from rnnlm.data import datasets


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No RNNLM_DATA, empty data folders, and every download fails as it does without a network."""
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.delenv("RNNLM_DATA", raising=False)
    monkeypatch.setattr(datasets, "_repo_data_dir", lambda: tmp_path / "repo-data")
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.chdir(tmp_path)
    return calls


def test_the_packaged_sample_is_the_tutorials_first_212_comments(data_dir):
    packaged = datasets.packaged("reddit")
    assert packaged is not None and packaged.parent == datasets.PACKAGED_DIR
    assert datasets.sha256_file(packaged) == datasets.KNOWN["reddit"].substitute_sha256
    shared = data_dir / datasets.KNOWN["reddit"].substitute
    if shared.is_file():
        assert datasets.sha256_file(shared) == datasets.sha256_file(packaged)


def test_find_falls_back_to_the_packaged_sample_without_the_network(offline, recwarn):
    assert datasets.find("reddit") == datasets.packaged("reddit")
    messages = [str(w.message) for w in recwarn if w.category is datasets.DataWarning]
    assert len(messages) == 1 and "(a sample)" in messages[0]
    assert offline == []  # find never downloads


def test_find_or_download_tries_the_network_then_warns_once(offline, tmp_path):
    with pytest.warns(datasets.DataWarning) as caught:
        path = datasets.find_or_download("reddit", progress=False)
    assert path == datasets.packaged("reddit")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "sample" in message and "could not be downloaded" in message and "name resolution" in message
    assert len(offline) == 1  # one download attempt
    assert not (tmp_path / "repo-data" / "reddit-comments-2015-08.csv").exists()


def test_find_or_download_uses_a_download_when_there_is_one(tmp_path, monkeypatch):
    import io

    rows = "".join(f'"comment number {i}. It is fine."\n' for i in range(datasets.REDDIT_MIN_ROWS))
    payload = ("body\n" + rows).encode()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    monkeypatch.delenv("RNNLM_DATA", raising=False)
    monkeypatch.setattr(datasets, "_repo_data_dir", lambda: tmp_path / "repo-data")
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Response(payload))
    monkeypatch.chdir(tmp_path)
    path = datasets.find_or_download("reddit", progress=False)
    assert path == tmp_path / "repo-data" / "reddit-comments-2015-08.csv" and path.read_bytes() == payload


def test_demo_offline_without_data_trains_judges_and_says_what_next(offline, capsys):
    rc = main(["demo", "--time-budget", "5s", "--num", "3", "--out", "runs/demo"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    # one warning for the stand-in, one for its cut-off last row; nothing twice
    warnings = [line for line in err.splitlines() if line.startswith("rnnlm: warning: ")]
    assert len(warnings) == len(set(warnings)) == 2, err
    assert sum("(a sample)" in w and "could not be downloaded" in w for w in warnings) == 1
    assert len(offline) == 1
    # the tutorial's statistics
    assert "Parsed 1089 sentences." in out and "Using vocabulary size 2000." in out
    assert "least frequent word" in out and "cut-off rows skipped: 1" in out
    # how good it is: why it stopped, perplexity beside the baselines of the same split, what that means
    assert re.search(r"^stopped: .+ after \d+ steps", out, re.M), out
    assert re.search(r"^validation perplexity [\d.]+ \(KN-3 [\d.]+, unigram [\d.]+", out, re.M), out
    assert re.search(r"^test perplexity [\d.]+ over \d+ tokens \(KN-3 [\d.]+, unigram [\d.]+", out, re.M), out
    assert "=> " in out and "lower is better" in out
    # the sentences come last on stdout
    sentences = out.split("Generated sentences:")[1].strip().splitlines()
    assert len(sentences) == 3 and all(s.strip() for s in sentences)
    assert not any("UNKNOWN_TOKEN" in s or "SENTENCE_" in s for s in sentences)
    # then what to run next
    assert re.search(r"rnnlm train reddit --out runs/demo --resume --time-budget \d+m", err), err
    assert err.strip().splitlines()[-1] == "rnnlm: generate more: rnnlm generate runs/demo"
    assert (Path("runs/demo") / "best.npz").is_file()

    # `rnnlm generate runs/demo` says which file of the run folder it read
    assert main(["generate", "runs/demo", "--num", "2", "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    assert "rnnlm: using runs/demo/best.npz" in err.splitlines()
    assert len(out.strip().splitlines()) == 2
