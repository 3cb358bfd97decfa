"""Corpus pipeline: readers, tokenization, Vocabulary, Corpus (encode, split, save/load), prepare()."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from rnnlm.data import corpus as C
from rnnlm.data.corpus import (
    CHAR_UNKNOWN_TOKEN,
    SENTENCE_END,
    SENTENCE_START,
    UNKNOWN_TOKEN,
    Corpus,
    CorpusWarning,
    SentenceSplitter,
    Vocabulary,
    prepare,
)
from rnnlm.errors import ConfigError, CorpusError, RnnlmError

S, E = SENTENCE_START, SENTENCE_END


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def decoded(corpus: Corpus) -> list[list[str]]:
    return [corpus.vocab.decode(s) for s in corpus.sentences]


# --------------------------------------------------------------------------------------------------
# tokenization
# --------------------------------------------------------------------------------------------------


def test_word_tokenize_is_treebank_style_and_needs_no_data():
    assert C.word_tokenize("Don't stop, it's fine.") == ["Do", "n't", "stop", ",", "it", "'s", "fine", "."]


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

    monkeypatch.setattr(C, "_installed_punkt", lambda: Fake())
    got = SentenceSplitter.get(["A. B."], "auto")
    assert got.kind == "installed" and got.split("A. B.") == ["A. B."]
    assert SentenceSplitter.get(["A. B."], "trained").kind == "trained"
    monkeypatch.setattr(C, "_installed_punkt", lambda: None)
    assert SentenceSplitter.get(["A. B."], "auto").kind == "trained"
    with pytest.raises(ConfigError, match="punkt_tab"):
        SentenceSplitter.get(["A. B."], "installed")


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------


@pytest.mark.core
def test_vocabulary_tutorial_semantics_and_unknown_mapping():
    sents = [[S, "b", "a", "b", "c", E], [S, "a", "b", "d", E]]
    v = Vocabulary.build(sents, vocab_size=5)
    # 4 most frequent (count desc, ties by first occurrence) + UNKNOWN_TOKEN last
    assert v.index_to_word == ["b", S, "a", E, UNKNOWN_TOKEN]
    assert v.counts == [3, 2, 2, 2, 2]  # unknown: c and d
    assert len(v) == 5 and "a" in v and "c" not in v
    assert (v.unk_index, v.start_index, v.end_index) == (4, 1, 3)
    ids = v.encode([S, "a", "c", "zzz", E])
    assert ids.dtype == np.int32 and ids.tolist() == [1, 2, 4, 4, 3]
    assert v.decode(ids) == [S, "a", UNKNOWN_TOKEN, UNKNOWN_TOKEN, E]
    assert v.least_frequent == (E, 2)
    assert Vocabulary.from_json(json.loads(json.dumps(v.to_json()))) == v


def test_vocabulary_ties_are_deterministic_by_first_occurrence():
    sents = [["z", "y", "x", "w"], ["w", "x", "y", "z"]]
    v = Vocabulary.build(sents, vocab_size=None, reserved=())
    assert v.index_to_word == ["z", "y", "x", "w", UNKNOWN_TOKEN]
    v2 = Vocabulary.build(list(reversed(sents)), vocab_size=None, reserved=())
    assert v2.index_to_word == ["w", "x", "y", "z", UNKNOWN_TOKEN]


def test_vocabulary_keeps_reserved_tokens_even_when_rare():
    sents = [["a"] * 5 + ["b"] * 4, [S, E]]
    v = Vocabulary.build(sents, vocab_size=3)
    assert v.index_to_word == [S, E, UNKNOWN_TOKEN]
    v = Vocabulary.build([["a", "a"]], vocab_size=4)
    assert v.index_to_word == ["a", S, E, UNKNOWN_TOKEN] and v.count(S) == 0


def test_vocabulary_reuses_unk_marker_in_corpus():
    sents = [[S, "the", "<unk>", "cat", E], [S, "<unk>", "sat", E]]
    v = Vocabulary.build(sents, vocab_size=4, unknown_token="<unk>")
    assert v.index_to_word.count("<unk>") == 1 and v.unknown_token == "<unk>"
    assert v.index_to_word == [S, E, "the", "<unk>"] and UNKNOWN_TOKEN not in v
    assert v.count("<unk>") == 2 + 2  # two literal <unk> + cat, sat


@pytest.mark.parametrize("bad", [2, 0, -1, 2.5, "8000", True])
def test_vocab_size_must_be_an_integer_of_at_least_3(bad):
    with pytest.raises(ConfigError):
        Vocabulary.build([["a"]], vocab_size=bad)


def test_vocabulary_rejects_bad_ids_and_duplicates():
    v = Vocabulary(["a", UNKNOWN_TOKEN])
    with pytest.raises(ConfigError, match="out of range"):
        v.decode([2])
    with pytest.raises(ConfigError, match="out of range"):
        v.decode([-1])
    with pytest.raises(ConfigError, match="duplicate"):
        Vocabulary(["a", "a", UNKNOWN_TOKEN])
    with pytest.raises(ConfigError):
        Vocabulary(["a"], unknown_token=UNKNOWN_TOKEN)


# --------------------------------------------------------------------------------------------------
# Corpus: xy, split, save/load
# --------------------------------------------------------------------------------------------------


def small_corpus(n=40) -> Corpus:
    rng = np.random.RandomState(1)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran"]
    return Corpus.from_tokens([list(rng.choice(words, size=rng.randint(1, 8))) for _ in range(n)])


@pytest.mark.core
def test_xy_are_the_tutorials_shifted_int32_pairs():
    c = Corpus.from_tokens([["a", "b"], ["c"]])
    X, Y = c.xy()
    for s, x, y in zip(c.sentences, X, Y):
        assert x.dtype == np.int32 and y.dtype == np.int32
        assert x.tolist() == s[:-1].tolist() and y.tolist() == s[1:].tolist()
    assert c.vocab.decode(X[0]) == [S, "a", "b"] and c.vocab.decode(Y[0]) == ["a", "b", E]
    assert c.stream().dtype == np.int32 and len(c.stream()) == c.n_tokens == 7


def test_split_is_deterministic_and_a_partition():
    c = small_corpus(40)
    a, b = c.split(valid=0.1, test=0.1, seed=3), c.split(valid=0.1, test=0.1, seed=3)
    assert [len(a[k]) for k in ("train", "valid", "test")] == [32, 4, 4]
    for k in a:
        assert [s.tolist() for s in a[k].sentences] == [s.tolist() for s in b[k].sentences]
        assert a[k].vocab is c.vocab and a[k].stats["split"] == k
    other = c.split(valid=0.1, test=0.1, seed=4)
    assert [s.tolist() for s in other["valid"].sentences] != [s.tolist() for s in a["valid"].sentences]
    assert sum(len(p) for p in a.values()) == len(c)
    assert sum(p.n_tokens for p in a.values()) == c.n_tokens
    tiny = Corpus.from_tokens([["a"], ["b"], ["c"]]).split(valid=0.05, test=0.05)
    assert [len(tiny[k]) for k in ("train", "valid", "test")] == [1, 1, 1]


def test_split_rejects_bad_fractions():
    c = small_corpus(10)
    for valid, test in [(-0.1, 0.1), (0.5, 0.5), (1.0, 0.0)]:
        with pytest.raises(ConfigError):
            c.split(valid=valid, test=test)


@pytest.mark.core
def test_save_load_round_trip_without_pickle(tmp_path):
    c = small_corpus(25)
    path = c.save(tmp_path / "c.npz")
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"ids", "offsets", "meta"}
        assert z["ids"].dtype == np.int32 and z["meta"].dtype == np.uint8
        meta = json.loads(z["meta"].tobytes().decode("utf-8"))
    assert meta["vocab"]["index_to_word"] == c.vocab.index_to_word
    back = Corpus.load(path)
    assert back.vocab == c.vocab and back.vocab.counts == c.vocab.counts
    assert [s.tolist() for s in back.sentences] == [s.tolist() for s in c.sentences]
    assert all(s.dtype == np.int32 for s in back.sentences)
    assert back.stats == c.stats and back.settings == c.settings
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_save_is_atomic(tmp_path, monkeypatch):
    c = small_corpus(5)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError):
        c.save(tmp_path / "c.npz")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CorpusError, match="does not exist"):
        small_corpus(2).save(tmp_path / "missing" / "c.npz")


def test_load_rejects_files_that_are_not_prepared_corpora(tmp_path):
    np.savez(tmp_path / "other.npz", U=np.zeros(3))
    write(tmp_path / "junk.npz", b"not a zip file")
    for name in ("other.npz", "junk.npz", "absent.npz"):
        with pytest.raises(CorpusError, match=name):
            Corpus.load(tmp_path / name)
    with pytest.raises(CorpusError, match="directory"):
        Corpus.load(tmp_path)


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
    assert C.read_reddit_csv(p, column="comment") == ['First line.\nSecond, with "quotes".', "Plain one."]


def test_jsonl_format_with_field(tmp_path):
    p = write(
        tmp_path / "d.jsonl", '{"text": "ignored", "t": "One two."}\n\n{"t": null}\n{"t": "Three four."}\n'
    )
    c = prepare(p, field="t", splitter="trained", tokenizer="whitespace")
    assert (c.stats["format"], c.stats["documents"]) == ("jsonl", 2)
    assert decoded(roundtrip(tmp_path, c)) == [[S, "One", "two.", E], [S, "Three", "four.", E]]
    assert C.read_jsonl(p, field="t") == ["One two.", "Three four."]


def test_auto_format_detection(tmp_path):
    cases = {
        "a.csv": ("body\nhi\n", "csv"),
        "a.jsonl": ('{"text": "hi"}\n', "jsonl"),
        "a.json": ('{"text": "hi"}\n', "jsonl"),
        "wiki.train.tokens": (" = Title = \n", "lines"),
        "objs.txt": ('{"text": "hi"}\n{"text": "ho"}\n', "jsonl"),
        "ptb.txt": ("the <unk> sat\n", "lines"),
        "plain.txt": ("Just some text.\n", "text"),
        "noext": ("Just some text.\n", "text"),
    }
    for name, (content, fmt) in cases.items():
        got, reason = C.detect_format(write(tmp_path / name, content))
        assert got == fmt, (name, reason)


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
# encoding new text, OOV counting
# --------------------------------------------------------------------------------------------------


@pytest.mark.core
def test_encode_counts_oov_words_but_not_literal_unk(tmp_path):
    c = prepare(write(tmp_path / "train.txt", "the <unk> cat\nthe dog\n"), vocab_size=None)
    enc = c.encode(["the zebra <unk>", "cat cat yak zebra"])
    assert enc.n_words == 7 and enc.n_oov == 3 and enc.oov_counts == {"zebra": 2, "yak": 1}
    assert enc.n_predicted == 7 + 2  # the words plus SENTENCE_END per sentence
    assert enc.oov_rate == pytest.approx(3 / 7)
    unk = c.vocab.unk_index
    assert enc.sentences[0].tolist() == [
        c.vocab.start_index,
        c.vocab.word_to_index["the"],
        unk,
        unk,
        c.vocab.end_index,
    ]
    test = write(tmp_path / "test.txt", "the zebra <unk>\n\ncat cat yak zebra\n")
    assert c.encode_file(test).summary() == enc.summary()
    assert [s.tolist() for s in c.encode_text("the zebra <unk>\ncat cat yak zebra")] == [
        s.tolist() for s in enc.sentences
    ]


def test_encode_file_of_loaded_corpus_splits_like_the_original(tmp_path, reddit_csv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        c = prepare(reddit_csv, splitter="trained", max_sentences=50)
        back = Corpus.load(c.save(tmp_path / "r.npz"))
        text = "I joined a new league this year. It's a slight PPR league- .2 PPR. Would it be dumb?"
        a, b = c.encode(text), back.encode(text)
    assert [s.tolist() for s in a.sentences] == [s.tolist() for s in b.sentences]
    assert len(a.sentences) == 3 and a.n_oov == b.n_oov


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


def test_undecodable_bytes_are_replaced_counted_and_reported(tmp_path):
    p = write(tmp_path / "bad.txt", b"caf\xe9 ok\nzz \xff\xfe end \xef\xbf\xbd\n")
    with pytest.warns(CorpusWarning, match="3 undecodable"):
        c = prepare(p, format="lines")
    assert c.stats["replacement_chars"] == 3
    assert "caf\ufffd" in c.vocab and "\ufffd" in c.vocab


def test_cut_off_last_csv_row_is_dropped_with_a_warning(tmp_path):
    p = write(tmp_path / "cut.csv", 'body\n"Complete one."\n"Also, ""done""."\n"This one is cut mid')
    with pytest.warns(CorpusWarning, match="cut off"):
        docs = C.read_reddit_csv(p)
    assert docs == ["Complete one.", 'Also, "done".']
    whole = write(tmp_path / "whole.csv", 'body\n"Complete one."\nlast row\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert C.read_reddit_csv(whole) == ["Complete one.", "last row"]


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


# --------------------------------------------------------------------------------------------------
# file compatibility: a prepared corpus written before the data package was split still loads
# --------------------------------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


def test_corpus_file_written_by_the_old_single_module_still_loads():
    """corpus-v1.npz was written by ``prepare(comments.csv, vocab_size=12, splitter="trained").save``
    with the single-module ``rnnlm/data/corpus.py`` (commit 26a7c72): a CSV corpus, nltk tokenizer,
    trained Punkt parameters stored in the file."""
    c = Corpus.load(FIXTURES / "corpus-v1.npz")
    assert c.level == "word" and len(c) == 5 and c.n_tokens == 35
    assert c.vocab.index_to_word == [
        S, E, ".", "is", "hello", "world", "this", "a", "test", ",", "mr.", UNKNOWN_TOKEN
    ]
    assert decoded(c)[:2] == [
        [S, "hello", "world", ".", E],
        [S, "this", "is", "a", "test", ",", "mr.", UNKNOWN_TOKEN, UNKNOWN_TOKEN, E],
    ]
    assert c.settings == {
        "format": "csv", "level": "word", "tokenizer": "nltk", "lowercase": True, "column": "body",
        "field": "text", "drop_containing": None, "min_length": None,
    }
    s = c.stats
    assert (s["source"], s["sentences"], s["words"], s["unknown_tokens"], s["unique_tokens"]) == (
        "comments.csv", 5, 25, 13, 24
    )
    # the stored Punkt parameters split new text as they did ("mr." is an abbreviation it learned)
    assert [s.tolist() for s in c.encode("Mr. Smith is here. Hello again.").sentences] == [
        [0, 10, 11, 3, 11, 2, 1],
        [0, 4, 11, 2, 1],
    ]
    assert c.metadata()["splitter"]["kind"] == "trained"
