"""Tokenization: the Treebank word tokenizer, Punkt sentence splitting (installed or trained)."""

from __future__ import annotations

import json

import pytest

from rnnlm.data import SentenceSplitter, word_tokenize
from rnnlm.data import tokenize as T
from rnnlm.errors import ConfigError


def test_word_tokenize_is_treebank_style_and_needs_no_data():
    assert word_tokenize("Don't stop, it's fine.") == ["Do", "n't", "stop", ",", "it", "'s", "fine", "."]


def test_trained_punkt_splits_sentences_and_round_trips_through_json():
    text = "Hello world. This is a test. Is it? Yes! The end."
    splitter = SentenceSplitter.train([text])
    assert splitter.kind == "trained"
    assert splitter.split(text) == ["Hello world.", "This is a test.", "Is it?", "Yes!", "The end."]
    again = SentenceSplitter.from_json(json.loads(json.dumps(splitter.to_json())))
    assert again.split(text) == splitter.split(text)


def test_installed_punkt_is_preferred_when_present(monkeypatch):
    class Fake:
        def tokenize(self, text):
            return [text]

    monkeypatch.setattr(T, "_installed_punkt", lambda: Fake())
    got = SentenceSplitter.get(["A. B."], "auto")
    assert got.kind == "installed" and got.split("A. B.") == ["A. B."]
    assert SentenceSplitter.get(["A. B."], "trained").kind == "trained"
    monkeypatch.setattr(T, "_installed_punkt", lambda: None)
    assert SentenceSplitter.get(["A. B."], "auto").kind == "trained"
    with pytest.raises(ConfigError, match="punkt_tab"):
        SentenceSplitter.get(["A. B."], "installed")
