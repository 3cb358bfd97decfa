"""Helpers shared by the tests of :mod:`rnnlm.data`."""

from __future__ import annotations

from pathlib import Path

from rnnlm.data import Corpus


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def decoded(corpus: Corpus) -> list[list[str]]:
    return [corpus.vocab.decode(s) for s in corpus.sentences]
