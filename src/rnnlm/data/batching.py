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
"""

from __future__ import annotations

import numpy as np

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


def sentence_batches(sentences, batch_size, max_length=64, buckets=None, shuffle=True, seed=0,
                     epoch=0, fill=False):
    """Padded batches of whole sentences, grouped by length.

    Args:
        sentences: int32 arrays, each ``[START, w1, ..., wn, END]``.
        batch_size: columns per batch B (fixed).
        max_length: longest sequence L; longer sentences are cut into pieces.
        buckets: padded lengths (default :func:`default_buckets`).
        shuffle: shuffle within length order and the batch order, by ``(seed, epoch)``.
        fill: for the bidirectional fill model: ``x`` is the whole sentence (``y`` unused).
    Returns:
        list of ``(x, y, mask)``, each (L, B).
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    if max_length < 2:
        raise ConfigError(f"max length must be at least 2, got {max_length}")
    buckets = tuple(sorted(buckets or default_buckets(max_length)))
    rng = np.random.default_rng([int(seed), int(epoch)])
    if fill:
        pairs = []
        for s in sentences:
            s = np.asarray(s, np.int32)[: max_length]
            if len(s) >= 3:
                pairs.append((s, s))
    else:
        pairs = list(_pieces(sentences, max_length))
    if not pairs:
        raise ConfigError("no sentence has at least two tokens: nothing to train on")
    order = np.arange(len(pairs))
    if shuffle:
        rng.shuffle(order)
    # Stable sort by length after the shuffle: similar lengths together, random among equals.
    order = order[np.argsort([len(pairs[i][0]) for i in order], kind="stable")]
    batches = []
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        longest = max(len(pairs[i][0]) for i in idx)
        L = next(b for b in buckets if b >= longest)
        x, mask = pad_columns([pairs[i][0] for i in idx], L, batch_size)
        y, _ = pad_columns([pairs[i][1] for i in idx], L, batch_size)
        batches.append((x, y, mask))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def stream_batches(ids, batch_size, bptt):
    """Chunks of a token stream for truncated BPTT with the state carried across chunks.

    The stream is cut into ``batch_size`` equal tracks (the tail that does not fit is dropped,
    as in PyTorch's ``batchify``); chunk i holds steps ``[i·bptt, (i+1)·bptt)`` of every track.
    The last chunk is padded to ``bptt`` steps with a zero mask so every chunk has one shape.

    Returns:
        list of ``(x, y, mask)``, each (bptt, B); order matters (state carries over).
    """
    ids = np.asarray(ids, np.int32)
    if batch_size < 1 or bptt < 1:
        raise ConfigError("batch size and bptt must be positive")
    n = (len(ids) - 1) // batch_size
    if n < 1:
        raise ConfigError(f"stream of {len(ids)} tokens is too short for batch size {batch_size}")
    tracks_x = ids[: n * batch_size].reshape(batch_size, n).T  # (n, B)
    tracks_y = ids[1: n * batch_size + 1].reshape(batch_size, n).T  # each x's own next token
    out = []
    for start in range(0, n, bptt):
        k = min(bptt, n - start)
        x, m = pad_columns(list(tracks_x[start: start + k].T), bptt, batch_size)
        y, _ = pad_columns(list(tracks_y[start: start + k].T), bptt, batch_size)
        out.append((x, y, m))
    return out
