"""Minibatches, time-major: ``x``, ``y`` (L, B) int32 and ``mask`` (L, B) float32.

Two ways to batch, as the peers do:

- :func:`sentence_batches` (the tutorial's data, word level): each sentence is one sequence,
  ``x = s[:-1]``, ``y = s[1:]``; sentences of similar length share a batch and are right-padded
  to one of a few fixed lengths (``buckets``), so a static-shape linker (JAX) compiles only a
  few functions.  Every batch has exactly ``batch_size`` columns (a short last batch gets empty,
  fully masked columns).  The mask keeps padding out of the loss and the gradients.
- :func:`stream_batches` (char-rnn / word_language_model style): the corpus is one long
  stream cut into ``batch_size`` parallel tracks, read in chunks of ``bptt`` steps; the hidden
  state is carried from one chunk to the next (truncated BPTT).

Batch order is a pure function of ``(seed, epoch)``, so a resumed run sees the same batches.

Both return lazy sequences (:class:`SentenceBatches`, :class:`StreamBatches`): ``len()`` and the order are
known up front from the sentence lengths alone, and batch i is cut from the token ids when it is asked
for -- from a memory map for a mapped corpus (:meth:`rnnlm.data.corpus.Corpus.segments`), so memory
stays flat however large the corpus. ``columns`` keeps only some columns of every batch: a process of a
multi-process run reads only its own share.
"""

from __future__ import annotations

import numpy as np

from rnnlm.data.mapped import Segments, read_span
from rnnlm.errors import ConfigError

FLOATX = "float32"


def default_buckets(max_length: int) -> tuple:
    """A few padded lengths: 8, 16, 32, ... up to ``max_length`` (always included)."""
    out, n = [], 8
    while n < max_length:
        out.append(n)
        n *= 2
    out.append(int(max_length))
    return tuple(out)


def _pieces(sentences, max_length):
    """(x, y) pairs; a sentence longer than ``max_length`` + 1 is cut into consecutive pieces."""
    for s in sentences:
        s = np.asarray(s, dtype=np.int32)
        if len(s) < 2:
            continue
        for start in range(0, len(s) - 1, max_length):
            piece = s[start: start + max_length + 1]
            if len(piece) >= 2:
                yield piece[:-1], piece[1:]


def bucket_length(n: int, minimum: int = 8) -> int:
    """Padded length for a static-shape (JAX) linker: the next power of two >= ``n``, at least ``minimum``."""
    return max(minimum, 1 << max(0, int(n) - 1).bit_length())


def pad_columns(seqs, length: int, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D id sequences into time-major columns: ``(ids (length, width) int32, mask (length,
    width) float32)``. Column b holds ``seqs[b]``; steps past its end, and columns past ``len(seqs)``
    (``width`` defaults to ``len(seqs)``), are 0 with mask 0. The one padding helper of rnnlm.
    """
    width = len(seqs) if width is None else width
    if len(seqs) > width:
        raise ConfigError(f"{len(seqs)} sequences do not fit in a batch of {width}")
    x = np.zeros((length, width), np.int32)
    m = np.zeros((length, width), FLOATX)
    for b, s in enumerate(seqs):
        if len(s) > length:
            raise ConfigError(f"a sequence of {len(s)} tokens does not fit in length {length}")
        x[: len(s), b] = s
        m[: len(s), b] = 1.0
    return x, m


def _segments(sequences):
    """``(ids, starts, lengths)`` of a list of 1-D id arrays, or of :class:`~rnnlm.data.mapped.Segments`."""
    if isinstance(sequences, Segments):
        ids, starts, lengths = sequences
        return ids, np.asarray(starts, np.int64), np.asarray(lengths, np.int64)
    seqs = [np.asarray(q).reshape(-1) for q in sequences]
    lengths = np.array([len(q) for q in seqs], np.int64)
    ids = np.concatenate(seqs).astype(np.int32, copy=False) if seqs else np.zeros(0, np.int32)
    return ids, np.cumsum(lengths) - lengths, lengths


class _Lazy:
    """A read-only sequence of ``(x, y, mask)`` batches computed on demand (see the module docstring)."""

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"batch {i} of {self._n}")
        return self._batch(i)

    def __iter__(self):
        for i in range(self._n):
            yield self._batch(i)

    def _cols(self, columns, batch_size):
        if columns is None:
            return 0, batch_size
        lo, hi, step = columns.indices(batch_size)
        if step != 1 or hi <= lo:
            raise ConfigError(f"columns must be a non-empty contiguous slice of 0..{batch_size}")
        return lo, hi


class SentenceBatches(_Lazy):
    """The batches of :func:`sentence_batches`, each made when it is asked for."""

    def __init__(self, sentences, batch_size, max_length=64, buckets=None, shuffle=True, seed=0, epoch=0,
                 fill=False, columns=None):
        if batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {batch_size}")
        if max_length < 2:
            raise ConfigError(f"max length must be at least 2, got {max_length}")
        self.ids, starts, lengths = _segments(sentences)
        self.fill, self.batch_size = fill, batch_size
        self.lo, self.hi = self._cols(columns, batch_size)
        self.buckets = tuple(sorted(buckets or default_buckets(max_length)))
        rng = np.random.default_rng([int(seed), int(epoch)])
        # Per piece: where its x starts in ids (int64) and its length (int32); 12 bytes a sentence.
        if fill:  # x = y = the sentence's first max_length tokens, if it has at least 3
            n = np.minimum(lengths, max_length)
            keep = n >= 3
            self.start, self.xlen = starts[keep], n[keep].astype(np.int32)
        elif lengths.max(initial=0) <= max_length + 1:  # every sentence is one piece (the common case)
            keep = lengths >= 2
            self.start, self.xlen = starts[keep], (lengths[keep] - 1).astype(np.int32)
        else:  # pieces of max_length predictions: a piece starts every max_length tokens
            pieces = np.where(lengths >= 2, (lengths - 2) // max_length + 1, 0)
            first = np.repeat(np.cumsum(pieces) - pieces, pieces)
            j = np.arange(int(pieces.sum()), dtype=np.int64) - first  # piece number within its sentence
            owner = np.repeat(np.arange(len(lengths)), pieces)
            self.start = starts[owner] + j * max_length
            self.xlen = np.minimum(max_length, lengths[owner] - 1 - j * max_length).astype(np.int32)
        if not len(self.start):
            raise ConfigError("no sentence has at least two tokens: nothing to train on")
        # int32 positions where they fit: the same permutation (a shuffle depends only on the length)
        order = np.arange(len(self.start), dtype=np.int32 if len(self.start) < 2**31 else np.int64)
        if shuffle:
            rng.shuffle(order)
        # Stable sort by length after the shuffle: similar lengths together, random among equals.
        self.order = order[np.argsort(self.xlen[order], kind="stable")]
        self._n = -(-len(self.order) // batch_size)
        self.perm = rng.permutation(self._n) if shuffle else np.arange(self._n)

    def _members(self, k):
        return self.order[k * self.batch_size : (k + 1) * self.batch_size]

    def shapes(self) -> set:
        """The (L, B) shapes of the batches (B: the columns kept)."""
        longest = np.maximum.reduceat(self.xlen[self.order], np.arange(0, len(self.order), self.batch_size))
        return {(next(b for b in self.buckets if b >= n), self.hi - self.lo) for n in np.unique(longest)}

    def _batch(self, i):
        idx = self._members(int(self.perm[i]))
        L = next(b for b in self.buckets if b >= int(self.xlen[idx].max()))
        width = self.hi - self.lo
        x = np.zeros((L, width), np.int32)
        y = np.zeros((L, width), np.int32)
        mask = np.zeros((L, width), FLOATX)
        shift = 0 if self.fill else 1
        for b, p in enumerate(idx[self.lo : self.hi]):
            a, n = int(self.start[p]), int(self.xlen[p])
            x[:n, b] = self.ids[a : a + n]
            y[:n, b] = self.ids[a + shift : a + shift + n]
            mask[:n, b] = 1.0
        return x, y, mask


def sentence_batches(sentences, batch_size, max_length=64, buckets=None, shuffle=True, seed=0,
                     epoch=0, fill=False, columns=None) -> SentenceBatches:
    """Padded batches of whole sentences, grouped by length.

    Args:
        sentences: int32 arrays, each ``[START, w1, ..., wn, END]``; or ``(ids, starts, lengths)``, the
            sentences as :class:`~rnnlm.data.mapped.Segments` of one id array
            (:meth:`~rnnlm.data.corpus.Corpus.segments`).
        batch_size: columns per batch B (fixed).
        max_length: longest sequence L; longer sentences are cut into pieces.
        buckets: padded lengths (default :func:`default_buckets`).
        shuffle: shuffle within length order and the batch order, by ``(seed, epoch)``.
        fill: for the bidirectional fill model: ``x`` is the whole sentence (``y`` unused).
        columns: keep only these columns of every batch (a slice of ``range(batch_size)``).
    Returns:
        a :class:`SentenceBatches`: a sequence of ``(x, y, mask)``, each (L, B), made on demand.
    """
    return SentenceBatches(sentences, batch_size, max_length, buckets, shuffle, seed, epoch, fill, columns)


class StreamBatches(_Lazy):
    """The chunks of :func:`stream_batches`, each read from the token ids when it is asked for."""

    def __init__(self, ids, batch_size, bptt, columns=None):
        if batch_size < 1 or bptt < 1:
            raise ConfigError("batch size and bptt must be positive")
        if isinstance(ids, Segments):
            self.ids, starts, lengths = _segments(ids)
        else:
            self.ids = np.asarray(ids)
            starts, lengths = np.zeros(1, np.int64), np.array([len(self.ids)], np.int64)
        self.starts, self.ends = starts, np.cumsum(lengths)
        total = int(self.ends[-1]) if len(self.ends) else 0
        self.n = (total - 1) // batch_size
        if self.n < 1:
            raise ConfigError(f"stream of {total} tokens is too short for batch size {batch_size}")
        self.bptt, self.batch_size = bptt, batch_size
        self.lo, self.hi = self._cols(columns, batch_size)
        self._n = -(-self.n // bptt)

    def shapes(self) -> set:
        return {(self.bptt, self.hi - self.lo)}

    def _batch(self, i):
        start = i * self.bptt
        k = min(self.bptt, self.n - start)
        width = self.hi - self.lo
        x = np.zeros((self.bptt, width), np.int32)
        y = np.zeros((self.bptt, width), np.int32)
        mask = np.zeros((self.bptt, width), FLOATX)
        for col, b in enumerate(range(self.lo, self.hi)):
            a = b * self.n + start  # track b holds stream[b·n : (b+1)·n]; y is each x's next token
            span = read_span(self.ids, self.starts, self.ends, a, a + k + 1)
            x[:k, col], y[:k, col] = span[:k], span[1 : k + 1]
            mask[:k, col] = 1.0
        return x, y, mask


def stream_batches(ids, batch_size, bptt, columns=None) -> StreamBatches:
    """Chunks of a token stream for truncated BPTT with the state carried across chunks.

    The stream is cut into ``batch_size`` equal tracks (the tail that does not fit is dropped,
    as in PyTorch's ``batchify``); chunk i holds steps ``[i·bptt, (i+1)·bptt)`` of every track.
    The last chunk is padded to ``bptt`` steps with a zero mask so every chunk has one shape.
    ``ids``: the stream (1-D), or the stream as :class:`~rnnlm.data.mapped.Segments` of one id array
    (:meth:`~rnnlm.data.corpus.Corpus.segments`). ``columns``: keep only these tracks.

    Returns:
        a :class:`StreamBatches`: a sequence of ``(x, y, mask)``, each (bptt, B); order matters (state
        carries over).
    """
    return StreamBatches(ids, batch_size, bptt, columns)
