"""Known data files: lookup through RNNLM_DATA and data/, the reddit sample stand-in, verified downloads.

No test touches the network: ``urllib.request.urlopen`` is replaced.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request

import pytest

from rnnlm.data import datasets as datasets
from rnnlm.data.datasets import DataWarning, KnownFile
from rnnlm.errors import CorpusError, DataUnavailableError


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No RNNLM_DATA, repo data/ -> tmp/repo-data, cwd -> tmp/cwd; returns (repo_data, cwd)."""
    repo_data, cwd = tmp_path / "repo-data", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.delenv("RNNLM_DATA", raising=False)
    monkeypatch.setattr(datasets, "_repo_data_dir", lambda: repo_data)
    monkeypatch.chdir(cwd)
    return repo_data, cwd


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def serve(monkeypatch, data: bytes | None = None, error: Exception | None = None) -> list:
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        if error is not None:
            raise error
        return FakeResponse(data)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def fake_known(monkeypatch, payload: bytes) -> KnownFile:
    item = KnownFile(
        "toy",
        "toy.txt",
        "https://example.invalid/toy.txt",
        hashlib.sha256(payload).hexdigest(),
        "corpus",
        "a toy file",
    )
    monkeypatch.setitem(datasets.KNOWN, "toy", item)
    return item


def test_data_dirs_order(isolated, monkeypatch, tmp_path):
    repo_data, cwd = isolated
    assert datasets.data_dirs() == [repo_data, cwd / "data"]
    monkeypatch.setenv("RNNLM_DATA", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    assert datasets.data_dirs() == [tmp_path / "a", tmp_path / "b", repo_data, cwd / "data"]


def test_find_prefers_rnnlm_data(isolated, monkeypatch, tmp_path):
    repo_data, _ = isolated
    env = tmp_path / "env"
    for d in (env, repo_data):
        d.mkdir()
        (d / "tinyshakespeare.txt").write_text("x")
    monkeypatch.setenv("RNNLM_DATA", str(env))
    assert datasets.find("tinyshakespeare") == env / "tinyshakespeare.txt"
    monkeypatch.delenv("RNNLM_DATA")
    assert datasets.find("tinyshakespeare") == repo_data / "tinyshakespeare.txt"


@pytest.mark.core
def test_missing_file_says_what_to_do(isolated):
    with pytest.raises(DataUnavailableError) as info:
        datasets.find("tinyshakespeare")
    message = str(info.value)
    assert (
        "RNNLM_DATA" in message and "rnnlm data download tinyshakespeare" in message and "\n" not in message
    )
    with pytest.raises(CorpusError, match="unknown data name"):
        datasets.find("nope")


def test_reddit_sample_stands_in_for_the_full_file(isolated, monkeypatch, tmp_path):
    env = tmp_path / "env"
    env.mkdir()
    (env / "reddit-comments-2015-08-sample.csv").write_text("body\nhi\n")
    monkeypatch.setenv("RNNLM_DATA", str(env))
    with pytest.warns(DataWarning, match="sample"):
        assert datasets.find("reddit").name == "reddit-comments-2015-08-sample.csv"
    with pytest.raises(DataUnavailableError):
        datasets.find("reddit", substitute=False)
    (env / "reddit-comments-2015-08.csv").write_text("body\nhi\n")
    assert datasets.find("reddit").name == "reddit-comments-2015-08.csv"


def test_resolve_paths_and_names(isolated, tmp_path, monkeypatch):
    f = tmp_path / "c.txt"
    f.write_text("hello")
    assert datasets.resolve(str(f)) == f and datasets.resolve(f) == f
    with pytest.raises(CorpusError, match="no such file"):
        datasets.resolve(str(tmp_path / "missing.txt"))
    with pytest.raises(CorpusError, match="known corpus name"):
        datasets.resolve("shakespeare", kind="corpus")
    with pytest.raises(CorpusError, match="is a model, not a corpus"):
        datasets.resolve("tutorial-model", kind="corpus")
    with pytest.raises(DataUnavailableError):
        datasets.resolve("tinyshakespeare")


@pytest.mark.core
def test_download_rejects_checksum_mismatch_and_leaves_nothing(isolated, monkeypatch, tmp_path):
    fake_known(monkeypatch, b"the real content\n")
    serve(monkeypatch, b"something else\n")
    dest = tmp_path / "dl"
    with pytest.raises(DataUnavailableError, match="checksum mismatch"):
        datasets.download("toy", dest=dest, progress=False)
    assert list(dest.iterdir()) == []


def test_download_verifies_and_moves_into_place(isolated, monkeypatch, tmp_path):
    repo_data, _ = isolated
    payload = b"the real content\n" * 1000
    fake_known(monkeypatch, payload)
    calls = serve(monkeypatch, payload)
    path = datasets.download("toy", progress=False)
    assert path == repo_data / "toy.txt" and path.read_bytes() == payload
    assert [p.name for p in repo_data.iterdir()] == ["toy.txt"]
    assert datasets.download("toy", progress=False) == path and len(calls) == 1  # verified copy reused
    datasets.download("toy", force=True, progress=False)
    assert len(calls) == 2


def test_download_offline_is_one_line_and_leaves_nothing(isolated, monkeypatch, tmp_path):
    serve(monkeypatch, error=urllib.error.URLError("no network"))
    dest = tmp_path / "dl"
    with pytest.raises(DataUnavailableError) as info:
        datasets.download("tinyshakespeare", dest=dest, progress=False)
    message = str(info.value)
    assert (
        "no network" in message and "RNNLM_DATA" in message and "manually" in message and "\n" not in message
    )
    assert list(dest.iterdir()) == []


def test_download_of_reddit_is_verified_by_parsing(isolated, monkeypatch, tmp_path):
    rows = "".join(f'"comment number {i}. It is fine."\n' for i in range(datasets.REDDIT_MIN_ROWS))
    serve(monkeypatch, ("body\n" + rows + '"cut in the mid').encode())
    dest = tmp_path / "dl"
    with pytest.raises(DataUnavailableError, match="cut off"):
        datasets.download("reddit", dest=dest, progress=False)
    assert list(dest.iterdir()) == []
    serve(monkeypatch, b"<html>Not Found</html>\n")
    with pytest.raises(DataUnavailableError, match="does not parse"):
        datasets.download("reddit", dest=dest, progress=False)
    serve(monkeypatch, ("body\n" + rows).encode())
    assert datasets.download("reddit", dest=dest, progress=False) == dest / "reddit-comments-2015-08.csv"


def test_shared_files_match_their_known_checksums(data_dir):
    for name in ("tinyshakespeare", "tutorial-model"):
        path = data_dir / datasets.KNOWN[name].filename
        if not path.is_file():
            pytest.skip(f"{path} absent")
        datasets.verify(name, path)


def test_failed_download_leaves_the_existing_file_untouched(isolated, monkeypatch, tmp_path):
    """Written with rnnlm.fileio.atomic_write: verified before it replaces anything."""
    payload = b"the real content\n"
    fake_known(monkeypatch, payload)
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / "toy.txt").write_bytes(b"an older copy\n")
    serve(monkeypatch, b"something else\n")
    with pytest.raises(DataUnavailableError, match="checksum mismatch"):
        datasets.download("toy", dest=dest, force=True, progress=False)
    assert [p.name for p in dest.iterdir()] == ["toy.txt"]
    assert (dest / "toy.txt").read_bytes() == b"an older copy\n"
    serve(monkeypatch, payload)
    assert datasets.download("toy", dest=dest, force=True, progress=False).read_bytes() == payload
    assert [p.name for p in dest.iterdir()] == ["toy.txt"]
