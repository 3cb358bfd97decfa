"""Vocabulary: the tutorial's ranking (frequency, ties by first occurrence), reserved and unknown tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnlm.data import SENTENCE_END, SENTENCE_START, UNKNOWN_TOKEN, Vocabulary
from rnnlm.data.vocab import TokenIds, rank_tokens
from rnnlm.errors import ConfigError

S, E = SENTENCE_START, SENTENCE_END


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
# one ranker: token lists (Vocabulary.build) and encoded ids (TokenIds, prepare) agree
# --------------------------------------------------------------------------------------------------

SENTS = [["b", "a", "<unk>", "b", "c"], ["a", "b", "d", E], [], ["e", "c", "a", "<unk>", "f"], ["f", "g"]]


@pytest.mark.parametrize("vocab_size", [None, 3, 4, 6, 50])
@pytest.mark.parametrize("unk", [UNKNOWN_TOKEN, "<unk>", "a"])
@pytest.mark.parametrize("wrap", [True, False])
def test_one_ranker_gives_the_same_vocabulary_from_token_lists_and_from_encoded_ids(vocab_size, unk, wrap):
    lists = [[S, *s, E] for s in SENTS] if wrap else SENTS
    reserved = (S, E) if wrap else ()
    flat = [t for s in lists for t in s]
    want = Vocabulary.build(lists, vocab_size, unk, reserved=reserved)
    # encoded while read (what prepare does), then renumbered in place
    tokens = TokenIds(wrap=False)
    for s in lists:
        tokens.add(s)
    got, ids, offsets, n_distinct = tokens.vocabulary(vocab_size, unk, reserved)
    assert got == want and got.counts == want.counts and n_distinct == len(set(flat))
    assert ids.dtype == np.int32 and ids.tolist() == want.encode(flat).tolist()
    assert offsets.dtype == np.int64 and offsets.tolist() == np.cumsum([0] + [len(s) for s in lists]).tolist()
    # from counts of ids numbered by first occurrence
    index: dict = {}
    pids = np.array([index.setdefault(t, len(index)) for t in flat])
    ranked, lookup = rank_tokens(index, np.bincount(pids, minlength=len(index)), vocab_size, unk, reserved)
    assert ranked == want and ranked.counts == want.counts
    assert lookup.dtype == np.int32 and lookup[pids].tolist() == ids.tolist()


def test_wrapping_while_encoding_equals_wrapping_the_lists():
    """TokenIds(wrap=True) numbers SENTENCE_END after the first sentence's tokens, as the wrapped lists do."""
    tokens = TokenIds(wrap=True)
    for s in SENTS:
        tokens.add(s)
    got, ids, _, _ = tokens.vocabulary(5, UNKNOWN_TOKEN, (S, E))
    want = Vocabulary.build([[S, *s, E] for s in SENTS], 5)
    assert got == want and got.counts == want.counts
    assert ids.tolist() == want.encode([t for s in SENTS for t in (S, *s, E)]).tolist()


def test_unknown_marker_is_the_one_of_the_first_sentence_holding_one():
    for sents, want in [
        ([["a"], ["<UNK>", "<unk>"], ["<unk>"]], "<unk>"),  # same sentence: KNOWN_UNK_MARKERS order
        ([["a", "<UNK>"], ["<unk>"]], "<UNK>"),
        ([["a"], ["b"]], UNKNOWN_TOKEN),
    ]:
        tokens = TokenIds()
        for s in sents:
            tokens.add(s)
        assert tokens.detect_unk() == want
