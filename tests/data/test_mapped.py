"""The memory-mapped corpus format (NAME.json + NAME.ids.npy + NAME.offsets.npy) and lazy batches.

A mapped corpus loads as a read-only map; its splits are selections of that map (no copy); batches are cut
from it when asked for, with the same order and content as from the in-memory corpus; damaged files are one
:class:`CorpusError` naming the file.
"""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from rnnlm.data import Corpus, Vocabulary, mapped, prepare
from rnnlm.data.batching import sentence_batches, stream_batches
from rnnlm.errors import CorpusError


def small_corpus(n=60) -> Corpus:
    rng = np.random.RandomState(1)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    return Corpus.from_tokens([list(rng.choice(words, size=rng.randint(1, 12))) for _ in range(n)])


def big_corpus(n_tokens: int, vocab_size: int = 1000, length: int = 50) -> Corpus:
    vocab = Vocabulary([f"w{i}" for i in range(vocab_size - 1)] + ["<unk>"], "<unk>")
    ids = np.random.default_rng(0).integers(0, vocab_size, n_tokens).astype(np.int32)
    return Corpus.from_arrays(vocab, ids, np.arange(0, n_tokens + 1, length), "word")


def same_batches(a, b) -> None:
    assert len(a) == len(b)
    for p, q in zip(a, b, strict=True):
        for u, v in zip(p, q, strict=True):
            assert u.dtype == v.dtype and np.array_equal(u, v)


def test_save_writes_json_beside_two_npy_files_and_loads_as_a_map(tmp_path):
    c = small_corpus()
    c.save(tmp_path / "c.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ids.npy", "c.json", "c.offsets.npy"]
    meta = json.loads((tmp_path / "c.json").read_text())
    assert meta["format"] == "rnnlm-corpus" and meta["version"] == 2 and meta["arrays"]["dtype"] == "uint16"
    m = Corpus.load(tmp_path / "c.json")
    ids = m.segments().ids
    assert m.mapped and isinstance(ids, np.memmap) and ids.dtype == np.uint16 and not ids.flags.writeable
    assert m.stats == c.stats and m.vocab == c.vocab and m.settings == c.settings
    assert [s.tolist() for s in m.sentences] == [s.tolist() for s in c.sentences]
    assert m.stream().dtype == np.int32 and np.array_equal(m.stream(), c.stream())
    assert mapped.is_prepared(tmp_path / "c.json") and not mapped.is_prepared(tmp_path / "c.ids.npy")


def test_ids_are_uint32_past_65536_tokens_of_vocabulary(tmp_path):
    c = big_corpus(70_000, vocab_size=70_000)
    c.save(tmp_path / "c.json")
    m = Corpus.load(tmp_path / "c.json")
    assert m.segments().ids.dtype == np.uint32 and np.array_equal(m.stream(), c.stream())


def test_splits_of_a_mapped_corpus_are_selections_of_its_map(tmp_path):
    """The training split is a selection of the map (no copy); the small ones are read into memory with
    read(), so their scattered sentences do not page the whole file into the map."""
    c = small_corpus()
    c.save(tmp_path / "c.json")
    m = Corpus.load(tmp_path / "c.json")
    want, got = c.split(valid=0.1, test=0.1, seed=4), m.split(valid=0.1, test=0.1, seed=4)
    assert got["train"].mapped and got["train"].segments().ids is m.segments().ids  # the same map
    assert not got["valid"].mapped and not got["test"].mapped
    for k in want:
        assert got[k].stats == want[k].stats and got[k].n_tokens == want[k].n_tokens
        assert np.array_equal(got[k].stream(), want[k].stream())
        assert np.array_equal(got[k].token_counts(), np.bincount(want[k].stream(), minlength=len(c.vocab)))
    got["train"].save(tmp_path / "train.json")  # a selection saves as a corpus of its own
    assert np.array_equal(Corpus.load(tmp_path / "train.json").stream(), want["train"].stream())


@pytest.mark.parametrize("fill", [False, True])
def test_batches_from_the_map_equal_batches_from_memory(tmp_path, fill):
    c = small_corpus(80)
    c.save(tmp_path / "c.json")
    m = Corpus.load(tmp_path / "c.json").split(valid=0.1, test=0.0, seed=1)["train"]
    plain = c.split(valid=0.1, test=0.0, seed=1)["train"]
    kw = dict(max_length=6, seed=2, epoch=3, fill=fill)
    a, b = sentence_batches(plain.sentences, 8, **kw), sentence_batches(m.segments(), 8, **kw)
    same_batches(a, b)
    assert b.shapes() == {x.shape for x, _, _ in a}
    cols = sentence_batches(m.segments(), 8, columns=slice(2, 6), **kw)  # a process's share
    assert all(np.array_equal(p[0][:, 2:6], q[0]) for p, q in zip(a, cols, strict=True))
    s1, s2 = stream_batches(plain.stream(), 4, 5), stream_batches(m.segments(), 4, 5)
    same_batches(s1, s2)
    assert s2[-1][0].shape == (5, 4) and len(s2[1:3]) == 2


def test_a_mapped_corpus_is_read_in_pieces_not_whole(tmp_path):
    """Load, split and a pass over an epoch's batches of a 16M-token corpus (32 MB of ids) allocate less
    than the ids would take as a copy (64 MB as int32): the ids stay in the file's map."""
    big_corpus(16_000_000).save(tmp_path / "big.json")
    tracemalloc.start()
    try:
        m = Corpus.load(tmp_path / "big.json")
        train = m.split(valid=0.01, test=0.01, seed=0)["train"]
        batches = sentence_batches(train.segments(), 64, 64)
        chunks = stream_batches(train.segments(), 64, 64)
        for i in range(0, len(batches), 50):
            batches[i], chunks[i % len(chunks)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40e6, peak
    assert train.n_tokens == 15_680_000 and isinstance(train.segments().ids, np.memmap)


def test_prepare_then_save_as_json_keeps_the_statistics(tmp_path):
    src = tmp_path / "t.txt"
    src.write_text("a b c\nb c d e\nc d\n" * 5)
    c = prepare(src, format="lines")
    c.save(tmp_path / "p.json")
    m = Corpus.load(tmp_path / "p.json")
    assert m.stats == c.stats and [s.tolist() for s in m.sentences] == [s.tolist() for s in c.sentences]


def _damage(tmp_path, how):
    small_corpus().save(tmp_path / "c.json")
    meta_path, ids_path = tmp_path / "c.json", tmp_path / "c.ids.npy"
    meta = json.loads(meta_path.read_text())
    if how == "missing ids":
        ids_path.unlink()
    elif how == "short ids":
        np.save(ids_path, np.load(ids_path)[:-3])
    elif how == "id out of range":
        ids = np.load(ids_path)
        ids[5] = 60000
        np.save(ids_path, ids)
    elif how == "int64 ids":
        np.save(ids_path, np.load(ids_path).astype(np.int64))
    elif how == "pickled ids":
        np.save(ids_path, np.array([object()] * meta["arrays"]["tokens"]), allow_pickle=True)
    elif how == "ids elsewhere":
        meta["arrays"]["ids"] = "../c.ids.npy"
    elif how == "bad offsets":
        offsets = np.load(tmp_path / "c.offsets.npy")
        offsets[3] = offsets[4] + 1
        np.save(tmp_path / "c.offsets.npy", offsets)
    elif how == "no arrays":
        del meta["arrays"]
    elif how == "bad vocabulary":
        meta["vocab"] = 7
    elif how == "not json":
        meta_path.write_text("{nope")
        return meta_path
    meta_path.write_text(json.dumps(meta))
    return meta_path


@pytest.mark.parametrize(
    "how",
    [
        "missing ids",
        "short ids",
        "id out of range",
        "int64 ids",
        "pickled ids",
        "ids elsewhere",
        "bad offsets",
        "no arrays",
        "bad vocabulary",
        "not json",
    ],
)
def test_damaged_mapped_corpora_are_one_error_naming_the_file(tmp_path, how):
    path = _damage(tmp_path, how)
    with pytest.raises(CorpusError, match="c.json"):
        Corpus.load(path)
