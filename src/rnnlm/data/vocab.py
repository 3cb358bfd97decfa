"""The vocabulary: the special tokens, :class:`Vocabulary`, and the one function that ranks tokens.

The tutorial's vocabulary is the ``vocab_size - 1`` most frequent tokens plus the unknown token, ties in
frequency broken by first occurrence in the corpus (what ``nltk.FreqDist.most_common`` gives on Python
>= 3.7). :func:`rank_tokens` computes it from counts ``(K,)`` of tokens numbered by first occurrence,
with NumPy, so that only the kept tokens become Python objects. Every vocabulary is built by it:
:meth:`Vocabulary.build` (token lists) and :meth:`Vocabulary.from_counts` (a counts mapping) as well as
:class:`TokenIds`, which encodes sentences into provisional ids as they are read and renumbers them
in place once the vocabulary is known (what :func:`~rnnlm.data.pipeline.prepare` and
:meth:`~rnnlm.data.corpus.Corpus.from_tokens` use).

Arrays: ids are int32 -- a flat ``ids`` (N,) for N tokens with ``offsets`` (S + 1,) int64 for S
sentences (sentence ``i`` is ``ids[offsets[i]:offsets[i + 1]]``); counts are int64 (K,).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from rnnlm.data.readers import KNOWN_UNK_MARKERS, shorten
from rnnlm.errors import ConfigError

__all__ = [
    "CHAR_UNKNOWN_TOKEN",
    "SENTENCE_END",
    "SENTENCE_START",
    "SLICE",
    "UNKNOWN_TOKEN",
    "TokenIds",
    "Vocabulary",
    "check_vocab_size",
    "id_counts",
    "rank_tokens",
]

SENTENCE_START = "SENTENCE_START"
SENTENCE_END = "SENTENCE_END"
UNKNOWN_TOKEN = "UNKNOWN_TOKEN"
#: The unknown token at char level: one character (U+FFFD, the Unicode replacement character), so a
#: decoded id sequence joins back into a string.
CHAR_UNKNOWN_TOKEN = "\ufffd"

#: Whole-corpus array work is done in slices of this many tokens, so temporaries stay small.
SLICE = 1 << 20


def check_vocab_size(vocab_size) -> int | None:
    """None (keep every token) or an int >= 3 (start, end and unknown tokens); returns it as int."""
    if vocab_size is None:
        return None
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise ConfigError(f"vocab_size must be an integer, got {vocab_size!r}")
    if vocab_size < 3:
        raise ConfigError(f"vocab_size must be at least 3 (start, end and unknown tokens), got {vocab_size}")
    return int(vocab_size)


def id_counts(ids: np.ndarray, n: int) -> np.ndarray:
    """``np.bincount(ids, minlength=n)`` (n,) int64, in slices: bincount copies its input to int64."""
    counts = np.zeros(n, dtype=np.int64)
    for i in range(0, len(ids), SLICE):
        counts += np.bincount(ids[i : i + SLICE], minlength=n)[:n]
    return counts


def rank_tokens(
    index: Mapping[str, int],
    counts: np.ndarray,
    vocab_size: int | None,
    unknown_token: str = UNKNOWN_TOKEN,
    reserved: Sequence[str] = (SENTENCE_START, SENTENCE_END),
) -> tuple[Vocabulary, np.ndarray]:
    """The tutorial's vocabulary of K tokens numbered by first occurrence: ``index`` maps each token to
    its number (iterating in that order) and the token numbered ``i`` occurs ``counts[i]`` times ((K,)
    integers). The only ranking function; see :meth:`Vocabulary.build` for the rules.

    Returns ``(vocab, lookup)``: ``lookup`` (K,) int32 maps a token's number to its vocabulary id (the
    unknown token's id for the tokens left out).
    """
    vocab_size = check_vocab_size(vocab_size)
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    n = len(counts)
    if len(index) != n:
        raise ConfigError(f"{len(index)} tokens but {n} counts")
    reserved = [r for r in dict.fromkeys(reserved) if r != unknown_token]
    if vocab_size is not None and len(reserved) > vocab_size - 1:
        raise ConfigError(f"vocab_size {vocab_size} leaves no room for the reserved tokens {reserved}")
    unk_id = index.get(unknown_token)
    unk_in_corpus = int(counts[unk_id]) if unk_id is not None else 0
    present = [index[r] for r in reserved if r in index]
    absent = [r for r in reserved if r not in index]
    candidate = np.ones(n, dtype=bool)
    candidate[present] = False
    if unk_id is not None:
        candidate[unk_id] = False
    cand = np.flatnonzero(candidate)
    ranked = cand[np.lexsort((cand, -counts[cand]))]  # count descending, ties by first occurrence
    take = len(ranked) if vocab_size is None else max(vocab_size - 1 - len(reserved), 0)
    tokens = list(index)  # by number
    entries = [(tokens[i], int(counts[i]), i) for i in present + ranked[:take].tolist()]
    entries += [(r, 0, n + j) for j, r in enumerate(absent)]  # reserved but unseen: after every seen token
    entries.sort(key=lambda e: (-e[1], e[2]))
    dropped = int(counts.sum()) - unk_in_corpus - sum(e[1] for e in entries)
    vocab = Vocabulary(
        [e[0] for e in entries] + [unknown_token],
        unknown_token,
        [e[1] for e in entries] + [unk_in_corpus + dropped],
    )
    lookup = np.full(n, vocab.unk_index, dtype=np.int32)
    for new_id, (_, _, i) in enumerate(entries):
        if i < n:
            lookup[i] = new_id
    return vocab, lookup


class Vocabulary:
    """Token <-> id mapping with the tutorial's semantics.

    ``index_to_word`` lists the kept tokens by decreasing training frequency (ties: first occurrence in
    the corpus first, which is what ``nltk.FreqDist.most_common`` gives on Python >= 3.7), and the
    unknown token last: ``unk_index == len(vocab) - 1`` for every vocabulary :meth:`build` makes.
    ``counts[i]`` is the training count of ``index_to_word[i]``; for the unknown token it is the number
    of training tokens that map to it.
    """

    def __init__(
        self,
        index_to_word: Sequence[str],
        unknown_token: str = UNKNOWN_TOKEN,
        counts: Sequence[int] | None = None,
    ):
        self.index_to_word: list[str] = list(index_to_word)
        self.word_to_index: dict[str, int] = {w: i for i, w in enumerate(self.index_to_word)}
        if len(self.word_to_index) != len(self.index_to_word):
            dup = [w for w, c in Counter(self.index_to_word).items() if c > 1]
            raise ConfigError(f"vocabulary has duplicate tokens: {shorten(dup)}")
        if unknown_token not in self.word_to_index:
            raise ConfigError(f"the unknown token {unknown_token!r} is not in the vocabulary")
        self.unknown_token = unknown_token
        if counts is not None and len(counts) != len(self.index_to_word):
            raise ConfigError("vocabulary counts and tokens differ in length")
        self.counts: list[int] | None = None if counts is None else [int(c) for c in counts]

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        vocab_size: int | None,
        unknown_token: str = UNKNOWN_TOKEN,
        reserved: Sequence[str] = (SENTENCE_START, SENTENCE_END),
    ) -> Vocabulary:
        """The ``vocab_size - 1`` most frequent tokens plus ``unknown_token`` (the tutorial's vocabulary).

        ``vocab_size=None`` keeps every token. Ties in frequency are broken by first occurrence.
        ``reserved`` tokens are always kept (with count 0 if absent), still ordered by frequency. A
        corpus token equal to ``unknown_token`` (e.g. ``<unk>``) is not kept twice: its occurrences count
        towards the unknown token. Fewer distinct tokens than ``vocab_size - 1`` give a smaller
        vocabulary. ``vocab_size < 3`` raises :class:`ConfigError`.
        """
        counter: Counter = Counter()
        for tokens in token_lists:
            counter.update(tokens)
        return cls.from_counts(counter, vocab_size, unknown_token, reserved)

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        vocab_size: int | None,
        unknown_token: str = UNKNOWN_TOKEN,
        reserved: Sequence[str] = (SENTENCE_START, SENTENCE_END),
    ) -> Vocabulary:
        """:meth:`build` from token counts whose iteration order is the order of first occurrence."""
        values = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
        index = {t: i for i, t in enumerate(counts)}
        return rank_tokens(index, values, vocab_size, unknown_token, reserved)[0]

    def __len__(self) -> int:
        return len(self.index_to_word)

    def __contains__(self, token) -> bool:
        return token in self.word_to_index

    def __iter__(self):
        return iter(self.index_to_word)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Vocabulary)
            and self.index_to_word == other.index_to_word
            and self.unknown_token == other.unknown_token
        )

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, unknown_token={self.unknown_token!r})"

    @property
    def unk_index(self) -> int:
        return self.word_to_index[self.unknown_token]

    @property
    def start_index(self) -> int | None:
        return self.word_to_index.get(SENTENCE_START)

    @property
    def end_index(self) -> int | None:
        return self.word_to_index.get(SENTENCE_END)

    def count(self, token: str) -> int | None:
        """Training count of ``token`` (None when counts are unknown or the token is not kept)."""
        if self.counts is None or token not in self.word_to_index:
            return None
        return self.counts[self.word_to_index[token]]

    @property
    def least_frequent(self) -> tuple[str, int] | None:
        """The least frequent kept token other than the unknown token and its count (the tutorial's
        "least frequent word in our vocabulary"); the last one in vocabulary order on ties."""
        if self.counts is None:
            return None
        best = None
        for i, (w, c) in enumerate(zip(self.index_to_word, self.counts, strict=True)):
            if i != self.unk_index and (best is None or c <= best[1]):
                best = (w, c)
        return best

    def stats(self, unique_tokens: int, requested: int | None) -> dict:
        """The vocabulary entries of a corpus's statistics (see :func:`~rnnlm.data.pipeline.prepare`)."""
        least = self.least_frequent
        return {
            "unique_tokens": unique_tokens,
            "vocab_size": len(self),
            "requested_vocab_size": requested,
            "least_frequent_word": least[0] if least else None,
            "least_frequent_count": least[1] if least else None,
            "unknown_token": self.unknown_token,
        }

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Token ids as an int32 array; tokens not in the vocabulary map to :attr:`unk_index`."""
        get, unk = self.word_to_index.get, self.unk_index
        return np.array([get(t, unk) for t in tokens], dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ids; an id outside ``[0, len(self))`` raises :class:`ConfigError`."""
        out = []
        n = len(self.index_to_word)
        for i in np.asarray(ids).reshape(-1).tolist():
            if not 0 <= i < n:
                raise ConfigError(f"token id {i} is out of range for a vocabulary of {n}")
            out.append(self.index_to_word[i])
        return out

    def is_oov(self, token: str) -> bool:
        """True for a token that is not in the vocabulary (a literal unknown token is not OOV)."""
        return token not in self.word_to_index

    def to_json(self) -> dict:
        return {
            "index_to_word": list(self.index_to_word),
            "unknown_token": self.unknown_token,
            "counts": None if self.counts is None else list(self.counts),
        }

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        """The inverse of :meth:`to_json`; types are checked (the JSON may come from any file)."""
        if not isinstance(data, dict) or "index_to_word" not in data:
            raise ConfigError("not a vocabulary (expected an object with index_to_word)")
        words, counts = data["index_to_word"], data.get("counts")
        unk = data.get("unknown_token", UNKNOWN_TOKEN)
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ConfigError("not a vocabulary: index_to_word must be a list of strings")
        if not isinstance(unk, str):
            raise ConfigError("not a vocabulary: unknown_token must be a string")
        if counts is not None and (
            not isinstance(counts, list)
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
        ):
            raise ConfigError("not a vocabulary: counts must be a list of non-negative integers")
        return cls(words, unk, counts)


class _TokenIndex(dict):
    """token -> provisional id, given in order of first occurrence (``index[token]`` adds it)."""

    def __missing__(self, token):
        i = self[token] = len(self)
        return i


class TokenIds:
    """Sentences encoded as they are read, before the vocabulary is known.

    Each token gets a provisional id in order of first occurrence; the ids go into a growing flat
    int32 array (4 bytes a token) and the sentence ends into int64 offsets. :meth:`vocabulary` ranks
    the tokens (:func:`rank_tokens`) and renumbers the array in place. With ``wrap`` every sentence is
    stored as ``[SENTENCE_START, *tokens, SENTENCE_END]``.
    """

    def __init__(self, wrap: bool = True):
        self.index = _TokenIndex()
        self.ids = array("i")
        self.offsets = array("q", [0])
        self.wrap = wrap
        assert self.ids.itemsize == 4, "array('i') is not 32-bit on this platform"

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def add(self, tokens: Iterable[str]) -> None:
        """Append one sentence."""
        ids, get = self.ids, self.index.__getitem__
        if self.wrap:
            ids.append(get(SENTENCE_START))
            ids.extend(map(get, tokens))
            ids.append(get(SENTENCE_END))  # numbered after the first sentence's tokens
        else:
            ids.extend(map(get, tokens))
        self.offsets.append(len(ids))

    def detect_unk(self) -> str:
        """The unknown-word marker (:data:`KNOWN_UNK_MARKERS`) of the first sentence holding one (the
        first in that list when it holds several), else :data:`UNKNOWN_TOKEN`."""
        present = [m for m in KNOWN_UNK_MARKERS if m in self.index]
        if len(present) < 2:
            return present[0] if present else UNKNOWN_TOKEN
        ids = np.frombuffer(self.ids, dtype=np.int32)
        offsets = np.frombuffer(self.offsets, dtype=np.int64)
        first = {}
        for m in present:
            pos = int(np.argmax(ids == self.index[m]))
            first[m] = int(np.searchsorted(offsets, pos, side="right")) - 1  # its sentence
        return min(present, key=lambda m: (first[m], KNOWN_UNK_MARKERS.index(m)))

    def vocabulary(
        self, vocab_size: int | None, unknown_token: str, reserved: Sequence[str] = ()
    ) -> tuple[Vocabulary, np.ndarray, np.ndarray, int]:
        """``(vocab, ids, offsets, n_distinct)``: the vocabulary of the tokens added, the ids (N,) int32
        renumbered to it (in place: the array's own buffer, no copy), the offsets (S + 1,) int64 and the
        number of distinct tokens. Call once; the token index is released."""
        pids = np.frombuffer(self.ids, dtype=np.int32)
        counts = id_counts(pids, len(self.index))
        vocab, lookup = rank_tokens(self.index, counts, vocab_size, unknown_token, reserved)
        n_distinct = len(self.index)
        self.index = _TokenIndex()
        for i in range(0, len(pids), SLICE):  # in slices: no second full-size array
            pids[i : i + SLICE] = lookup[pids[i : i + SLICE]]
        return vocab, pids, np.frombuffer(self.offsets, dtype=np.int64), n_distinct
