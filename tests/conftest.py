"""Shared fixtures.

``data_dir``: the folder with the shared data files -- the first entry of ``$RNNLM_DATA`` (CI sets it),
else ``../shared/data`` next to the repository; tests that need it are skipped when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REDDIT_SAMPLE = "reddit-comments-2015-08-sample.csv"
SHAKESPEARE = "tinyshakespeare.txt"
TUTORIAL_MODEL = "trained-model-theano.npz"


def _shared_data_dir() -> Path | None:
    candidates = [Path(d) for d in os.environ.get("RNNLM_DATA", "").split(os.pathsep) if d.strip()]
    candidates.append(REPO.parent / "shared" / "data")
    for d in candidates:
        if d.is_dir():
            return d
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _shared_data_dir()
    if d is None:
        pytest.skip("shared data folder not found (set RNNLM_DATA)")
    return d


def _data_file(data_dir: Path, name: str) -> Path:
    p = data_dir / name
    if not p.is_file():
        pytest.skip(f"{name} not in {data_dir}")
    return p


@pytest.fixture(scope="session")
def reddit_csv(data_dir) -> Path:
    """The 212-comment sample of the tutorial's reddit CSV (last row cut mid-comment)."""
    return _data_file(data_dir, REDDIT_SAMPLE)


@pytest.fixture(scope="session")
def shakespeare_txt(data_dir) -> Path:
    return _data_file(data_dir, SHAKESPEARE)


@pytest.fixture(scope="session")
def tutorial_model_npz(data_dir) -> Path:
    """The tutorial's pretrained Theano model (U, V, W)."""
    return _data_file(data_dir, TUTORIAL_MODEL)


# --------------------------------------------------------------------------------------------------
# bad corpus input: one case per kind of user error (used by test_corpus and test_cli_data)
# --------------------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _random_bytes(n: int, nul: bool) -> bytes:
    """``n`` random bytes (seeded); without ``nul`` the zero bytes are replaced (mostly invalid UTF-8)."""
    import random

    data = random.Random(0).randbytes(n)
    return data if nul else data.replace(b"\x00", b"\x01")


def _npz_bytes() -> bytes:
    """A NumPy .npz file (a zip: NUL bytes in its headers) -- what a learner may pass by mistake."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, U=np.linspace(0, 1, 400).reshape(20, 20))
    return buf.getvalue()


def _bad_cases(d: Path) -> dict:
    """name -> (prepare() kwargs, exception type, fragment of its one-line message)."""
    from rnnlm.errors import ConfigError, CorpusError

    return {
        "empty": lambda: ({"source": _write(d / "empty.txt", "")}, CorpusError, "empty"),
        "blank": lambda: ({"source": _write(d / "blank.txt", "  \n\n \n")}, CorpusError, "empty"),
        "directory": lambda: ({"source": d}, CorpusError, "directory"),
        "missing": lambda: ({"source": str(d / "nope.txt")}, CorpusError, "no such file"),
        "csv_without_body": lambda: (
            {"source": _write(d / "nobody.csv", "text,score\nhello,1\n")},
            CorpusError,
            "no column 'body'",
        ),
        "csv_header_only": lambda: (
            {"source": _write(d / "header.csv", "body\n")},
            CorpusError,
            "no non-empty",
        ),
        "no_sentences": lambda: (
            {"source": _write(d / "http.txt", "http one\nhttp two\n"), "drop_containing": "http"},
            CorpusError,
            "no sentences",
        ),
        "bad_json_line": lambda: (
            {"source": _write(d / "bad.jsonl", '{"text": "a"}\n{"text": \n')},
            CorpusError,
            "line 2",
        ),
        "jsonl_without_field": lambda: (
            {"source": _write(d / "nofield.jsonl", '{"body": "a"}\n')},
            CorpusError,
            "no field 'text'",
        ),
        "vocab_size_below_3": lambda: (
            {"source": _write(d / "ok.txt", "a b c\n"), "vocab_size": 2},
            ConfigError,
            "at least 3",
        ),
        "unknown_corpus_name": lambda: ({"source": "no-such-corpus"}, CorpusError, "known corpus name"),
        "binary_random_bytes": lambda: (
            {"source": _write_bytes(d / "random.txt", _random_bytes(4096, nul=False))},
            CorpusError,
            "random.txt: looks binary",
        ),
        "binary_npz": lambda: (
            {"source": _write_bytes(d / "model.npz", _npz_bytes())},
            CorpusError,
            "model.npz: looks binary",
        ),
        "char_tokenizer_at_word_level": lambda: (
            {"source": _write(d / "ok2.txt", "a b\n"), "tokenizer": "char"},
            ConfigError,
            "level",
        ),
    }


BAD_CASES = list(_bad_cases(Path(".")))


@pytest.fixture(params=BAD_CASES)
def bad_input(request, tmp_path):
    """``(prepare kwargs, exception type, message fragment)`` for each kind of bad corpus input."""
    return _bad_cases(tmp_path)[request.param]()
