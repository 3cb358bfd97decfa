"""Corpus: xy pairs, split, save/load (no pickle; old files still load), encoding new text."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from rnnlm.data import SENTENCE_END, SENTENCE_START, UNKNOWN_TOKEN, Corpus, CorpusWarning, prepare
from rnnlm.errors import ConfigError, CorpusError
from tests.data.helpers import decoded, write

S, E = SENTENCE_START, SENTENCE_END
FIXTURES = Path(__file__).parent / "fixtures"


def small_corpus(n=40) -> Corpus:
    rng = np.random.RandomState(1)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran"]
    return Corpus.from_tokens([list(rng.choice(words, size=rng.randint(1, 8))) for _ in range(n)])


@pytest.mark.core
def test_xy_are_the_tutorials_shifted_int32_pairs():
    c = Corpus.from_tokens([["a", "b"], ["c"]])
    X, Y = c.xy()
    for s, x, y in zip(c.sentences, X, Y, strict=True):
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
# file compatibility: a prepared corpus written before the data package was split still loads
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# one read path: encode_file reads a file exactly as prepare did
# --------------------------------------------------------------------------------------------------

TEXT = "Hello world. This is a test.\r\n \nSecond paragraph here! Don't stop.\n\n\nLast one <unk> here.\n"


@pytest.mark.parametrize(
    "name, content, kwargs",
    [
        ("a.txt", TEXT, dict(splitter="trained")),
        ("a.txt", TEXT, dict(tokenizer="whitespace")),
        ("ptb.txt", TEXT, dict(format="lines")),
        ("a.txt", TEXT, dict(level="char")),
        ("a.txt", TEXT, dict(level="char", format="lines", lowercase=True)),
        ("c.csv", 'body\n"One. Two,\nthree."\nfour five\n', dict(splitter="trained")),
        ("c.csv", 'body\n"One. Two,\nthree."\nfour five\n', dict(level="char")),
        ("d.jsonl", '{"text": "One. Two."}\n{"text": "Three four."}\n', dict(tokenizer="whitespace")),
    ],
)
def test_encode_file_reads_the_training_file_as_prepare_did(tmp_path, name, content, kwargs):
    p = write(tmp_path / name, content)
    c = prepare(p, vocab_size=None, **kwargs)
    for corpus in (c, Corpus.load(c.save(tmp_path / "c.npz"))):
        enc = corpus.encode_file(p)
        assert [s.tolist() for s in enc.sentences] == [s.tolist() for s in c.sentences]
        assert enc.n_oov == 0 and enc.n_words == c.stats["words"]


def test_encode_file_streams_and_reports_like_prepare(tmp_path):
    c = Corpus.from_tokens([["one", "two"]])
    lines = [json.dumps({"text": f"one two {i}"}) for i in range(5)] + ["{not json"]
    bad = write(tmp_path / "bad.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match="bad.jsonl: line 6: invalid JSON"):
        c.encode_file(bad, format="jsonl")
    cut = write(tmp_path / "cut.csv", b'body\none \xff two\n"three, cut')
    with pytest.warns(CorpusWarning) as caught:
        enc = c.encode_file(cut, format="csv")
    assert enc.replacement_chars == 1 and len(enc.sentences) == 1 and enc.oov_counts == {"\ufffd": 1}
    messages = " | ".join(str(r.message) for r in caught)
    assert "cut.csv: 1 undecodable" in messages and "cut off" in messages


def test_encoder_with_format_auto_detects_the_format_of_each_file(tmp_path):
    c = Corpus.from_tokens([["one", "two"], ["three"]])
    encoder = Corpus.encoder(c.vocab, c.metadata(), format="auto")
    jsonl = write(tmp_path / "d.jsonl", '{"text": "one two"}\n{"text": "three four"}\n')
    lines = write(tmp_path / "d.txt", "one two\nthree four\n")
    for p in (jsonl, lines):
        enc = encoder.encode_file(p)
        assert [c.vocab.decode(s) for s in enc.sentences] == [
            [S, "one", "two", E], [S, "three", UNKNOWN_TOKEN, E]
        ]
