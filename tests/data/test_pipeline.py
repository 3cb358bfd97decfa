"""prepare(): every format round trip, filters, bad input, and the stable counts of the shared data."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlm.data import (
    CHAR_UNKNOWN_TOKEN,
    SENTENCE_END,
    SENTENCE_START,
    UNKNOWN_TOKEN,
    Corpus,
    CorpusWarning,
    prepare,
    read_jsonl,
    read_reddit_csv,
)
from rnnlm.errors import CorpusError, RnnlmError
from tests.data.helpers import decoded, write

S, E = SENTENCE_START, SENTENCE_END


# --------------------------------------------------------------------------------------------------
# formats (each round trip through prepare -> save -> load -> decode)
# --------------------------------------------------------------------------------------------------


def roundtrip(tmp_path, corpus: Corpus) -> Corpus:
    back = Corpus.load(corpus.save(tmp_path / "out.npz"))
    assert decoded(back) == decoded(corpus)
    return back


def test_text_format_nltk(tmp_path):
    p = write(tmp_path / "a.txt", "Hello world. This is a test.\n\nSecond paragraph here! Don't stop.\n")
    c = prepare(p, splitter="trained")
    assert (c.stats["format"], c.stats["tokenizer"], c.stats["lowercase"]) == ("text", "nltk", True)
    assert decoded(roundtrip(tmp_path, c)) == [
        [S, "hello", "world", ".", E],
        [S, "this", "is", "a", "test", ".", E],
        [S, "second", "paragraph", "here", "!", E],
        [S, "do", "n't", "stop", ".", E],
    ]
    assert c.stats["documents"] == 1 and c.stats["sentences"] == 4


@pytest.mark.core
def test_lines_format_keeps_tokens_and_unk_marker(tmp_path):
    p = write(tmp_path / "ptb.train.txt", " the <unk> sat on the mat \n\n a cat's N-word <unk> \n")
    c = prepare(p, vocab_size=5)
    assert (c.stats["format"], c.stats["tokenizer"], c.stats["lowercase"]) == ("lines", "whitespace", False)
    assert c.vocab.unknown_token == "<unk>" and c.vocab.index_to_word.count("<unk>") == 1
    assert UNKNOWN_TOKEN not in c.vocab
    back = roundtrip(tmp_path, c)
    assert back.vocab.unknown_token == "<unk>"
    full = prepare(p, vocab_size=None)
    assert decoded(full) == [
        [S, "the", "<unk>", "sat", "on", "the", "mat", E],
        [S, "a", "cat's", "N-word", "<unk>", E],
    ]
    assert prepare(p, lowercase=True, vocab_size=None).vocab.word_to_index.get("n-word") is not None


def test_csv_format_with_column_and_multiline_fields(tmp_path):
    p = write(tmp_path / "c.csv", 'id,comment\n1,"First line.\nSecond, with ""quotes""."\n2,Plain one.\n3,\n')
    with pytest.raises(CorpusError, match="no column 'body'"):
        prepare(p)
    c = prepare(p, column="comment", splitter="trained", vocab_size=None)
    assert c.stats["format"] == "csv" and c.stats["documents"] == 2
    assert decoded(roundtrip(tmp_path, c)) == [
        [S, "first", "line", ".", E],
        [S, "second", ",", "with", "``", "quotes", "''", ".", E],
        [S, "plain", "one", ".", E],
    ]
    assert read_reddit_csv(p, column="comment") == ['First line.\nSecond, with "quotes".', "Plain one."]


def test_jsonl_format_with_field(tmp_path):
    p = write(
        tmp_path / "d.jsonl", '{"text": "ignored", "t": "One two."}\n\n{"t": null}\n{"t": "Three four."}\n'
    )
    c = prepare(p, field="t", splitter="trained", tokenizer="whitespace")
    assert (c.stats["format"], c.stats["documents"]) == ("jsonl", 2)
    assert decoded(roundtrip(tmp_path, c)) == [[S, "One", "two.", E], [S, "Three", "four.", E]]
    assert read_jsonl(p, field="t") == ["One two.", "Three four."]


def test_char_level_stream_reproduces_the_text(tmp_path):
    text = "\nFirst line\n\n\nSecond é line\nlast"
    c = prepare(write(tmp_path / "t.txt", text), level="char")
    assert c.vocab.unknown_token == CHAR_UNKNOWN_TOKEN and c.vocab.start_index is None
    assert c.decode(c.stream()) == text
    assert [c.decode(s) for s in c.sentences] == ["\nFirst line\n\n\n", "Second é line\n", "last"]
    assert c.stats["lowercase"] is False and c.stats["tokenizer"] == "char"
    assert c.decode(np.concatenate(c.encode_text("Fé?"))) == "Fé" + CHAR_UNKNOWN_TOKEN
    back = roundtrip(tmp_path, c)
    assert back.level == "char" and back.decode(back.stream()) == text
    lines = prepare(write(tmp_path / "l.txt", "ab\n\ncd\n"), level="char", format="lines")
    assert [lines.decode(s) for s in lines.sentences] == ["ab\n", "cd\n"]


def test_filters_drop_containing_min_length_max_sentences(tmp_path):
    p = write(tmp_path / "l.txt", "see http://x\na b c\nshort\nd e f g\nh i j\n")
    c = prepare(p, format="lines", drop_containing="http", min_length=2, max_sentences=2, vocab_size=None)
    assert decoded(c) == [[S, "a", "b", "c", E], [S, "d", "e", "f", "g", E]]
    assert c.stats["dropped_sentences"] == 2


# --------------------------------------------------------------------------------------------------
# bad input: typed exceptions with one clear line
# --------------------------------------------------------------------------------------------------


def test_bad_input_raises_typed_error_with_one_line(bad_input):
    """Every case of the ``bad_input`` fixture (conftest.py; the CLI tests reuse it)."""
    kwargs, exc, fragment = bad_input
    with pytest.raises(exc) as info:
        prepare(**kwargs)
    assert isinstance(info.value, RnnlmError)
    message = str(info.value)
    assert fragment in message and "\n" not in message


# --------------------------------------------------------------------------------------------------
# the shared data: stable, asserted counts
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reddit_corpus(reddit_csv):
    with pytest.warns(CorpusWarning, match="cut off"):
        return prepare(reddit_csv, splitter="trained")


@pytest.mark.core
def test_reddit_sample_counts(reddit_corpus):
    s = reddit_corpus.stats
    assert (s["format"], s["tokenizer"], s["lowercase"]) == ("csv", "nltk", True)
    assert (s["rows"], s["truncated_rows"], s["documents"]) == (211, 1, 211)
    assert s["sentences"] == 1089
    assert (s["tokens"], s["words"]) == (24037, 21859)
    assert s["unique_tokens"] == 4389
    assert s["vocab_size"] == 4390 == len(reddit_corpus.vocab)  # fewer distinct tokens than 7999
    assert (s["least_frequent_word"], s["least_frequent_count"]) == ("gw^2", 1)
    assert s["unknown_tokens"] == 0
    v = reddit_corpus.vocab
    assert v.index_to_word[:6] == [S, E, ".", "the", ",", "to"] and v.unk_index == len(v) - 1


def test_reddit_sample_part4_settings(reddit_csv):
    with pytest.warns(CorpusWarning):
        c = prepare(reddit_csv, vocab_size=2000, drop_containing="http", splitter="trained")
    s = c.stats
    assert (s["sentences"], s["dropped_sentences"], s["tokens"], s["unique_tokens"]) == (
        1043,
        46,
        21748,
        4002,
    )
    assert s["vocab_size"] == 2000 and (s["least_frequent_word"], s["least_frequent_count"]) == ("attempt", 1)
    assert s["unknown_tokens"] == 2003
    parts = c.split(valid=0.05, test=0.05, seed=0)
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [939, 52, 52]
    assert parts["valid"].stats["tokens"] == 992


def test_tinyshakespeare_char_counts(shakespeare_txt):
    c = prepare(shakespeare_txt, level="char")
    s = c.stats
    assert (s["format"], s["tokenizer"]) == ("text", "char")
    assert (s["sentences"], s["tokens"], s["unique_tokens"], s["vocab_size"]) == (32777, 1115394, 65, 66)
    assert (s["least_frequent_word"], s["least_frequent_count"]) == ("$", 1)
    assert c.vocab.index_to_word[:4] == [" ", "e", "t", "o"]
    assert c.decode(c.stream()[:14]) == "First Citizen:"


@pytest.mark.slow
def test_tinyshakespeare_word_counts(shakespeare_txt):
    c = prepare(shakespeare_txt, splitter="trained")
    s = c.stats
    assert (s["sentences"], s["tokens"], s["unique_tokens"], s["vocab_size"]) == (12747, 280728, 12195, 8000)
    assert (s["least_frequent_word"], s["least_frequent_count"], s["unknown_tokens"]) == ("scroll", 1, 4196)
