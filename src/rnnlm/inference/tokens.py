"""Per-token scores: what the model thought of every token of a text (:func:`token_scores`).

For each predicted token: its log-probability (natural log, the model's own, unscaled), its rank among
all tokens of the vocabulary (1 = the model's first choice) and the model's ``top`` most probable tokens
at that position. The log-probabilities are the very numbers :func:`~rnnlm.inference.scoring.perplexity`
sums (they come from the same functions of :mod:`~rnnlm.inference.scoring`), so the total of a
:class:`TokenScores` *is* the perplexity of the text under the one definition: words and SENTENCE_END
predicted, SENTENCE_START not; at char level one stream, every character after the first. Ranks and
alternatives come from ``distribution`` on the same batches.

:func:`encode_with_tokens` encodes new text exactly as a checkpoint's corpus would and also returns
each token as written (an out-of-vocabulary word keeps its spelling, flagged, while it is scored as the
unknown token), so a caller can show the text token by token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rnnlm.data.batching import bucket_length, pad_columns
from rnnlm.errors import ConfigError
from rnnlm.inference.scoring import (
    PerplexityResult,
    check_scorable,
    perplexity_of,
    sentence_token_logprobs,
    stream_token_logprobs,
)


@dataclass
class TokenScores:
    """Scores of every predicted token of a text, in text order (N predicted tokens).

    ``sentence`` (N,): index of the sentence (char level: of the line) the token is in;
    ``position`` (N,): its index inside that sentence (word level >= 1: index 0 is SENTENCE_START);
    ``target`` (N,): its id; ``logprob`` (N,) float64: log p(token | everything before it), natural
    log; ``rank`` (N,): 1 + the number of tokens the model found strictly more probable;
    ``top_ids`` / ``top_logprob`` (N, k): the k most probable tokens at that position, best first
    (ties by id). ``total_logprob``: the text's log-probability exactly as
    :func:`~rnnlm.inference.scoring.perplexity` sums it. ``oov``/``words``: as in
    :class:`~rnnlm.inference.scoring.PerplexityResult` (when an encoded text was given).
    """

    sentence: np.ndarray
    position: np.ndarray
    target: np.ndarray
    logprob: np.ndarray
    rank: np.ndarray
    top_ids: np.ndarray
    top_logprob: np.ndarray
    total_logprob: float
    sentences: int
    level: str = "word"
    oov: int = 0
    words: int | None = None

    @property
    def predicted(self) -> int:
        return len(self.target)

    @property
    def surprisal_bits(self) -> np.ndarray:
        """−log₂ p of each token."""
        return -self.logprob / math.log(2)

    @property
    def nll(self) -> float:
        """Mean negative log-likelihood per predicted token (nats)."""
        return -self.total_logprob / self.predicted if self.predicted else float("nan")

    @property
    def perplexity(self) -> float:
        return perplexity_of(-self.total_logprob, self.predicted)

    @property
    def bits_per_token(self) -> float:
        return self.nll / math.log(2)

    def result(self) -> PerplexityResult:
        """The same numbers as :func:`~rnnlm.inference.scoring.perplexity` returns for the text."""
        return PerplexityResult(
            self.perplexity,
            self.nll,
            self.total_logprob,
            self.predicted,
            self.sentences,
            int(self.oov or 0),
            self.words,
            self.level,
        )


def _top(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest entries of each row of ``d`` (N, C): (ids, values), best first, ties by id."""
    N, C = d.shape
    k = min(k, C)
    if k == 0:
        return np.zeros((N, 0), np.int32), np.zeros((N, 0))
    part = np.argpartition(-d, k - 1, axis=1)[:, :k] if k < C else np.tile(np.arange(C), (N, 1))
    vals = np.take_along_axis(d, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)  # by value descending, then id
    ids = np.take_along_axis(part, order, axis=1)
    return ids.astype(np.int32), np.take_along_axis(vals, order, axis=1).astype(np.float64)


def _rank(d: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1 + the number of entries of each row of ``d`` (N, C) strictly larger than the target's."""
    own = d[np.arange(len(target)), target]
    return 1 + (d > own[:, None]).sum(axis=1)


def token_scores(
    model,
    sentences,
    *,
    level: str | None = None,
    top: int = 5,
    batch_size: int = 32,
    chunk: int = 256,
) -> TokenScores:
    """Score every predicted token of a text (see the module docstring).

    ``sentences``: an :class:`~rnnlm.data.corpus.EncodedText` or a list of encoded sentences, as for
    :func:`~rnnlm.inference.scoring.perplexity`; ``level``: ``word`` (default; each sentence from a zero
    state) or ``char`` (the sentences concatenated into one stream, scored in chunks of ``chunk``
    tokens with the state carried). ``top``: how many alternatives to keep per position (0: none).
    ``batch_size`` and ``chunk`` are those of :func:`perplexity`; with the same values the total is
    computed from the very same numbers.
    """
    check_scorable(model)
    oov = words = None
    if hasattr(sentences, "sentences"):  # EncodedText
        oov, words = sentences.n_oov, sentences.n_words
        sentences = sentences.sentences
    seqs = [np.asarray(s, dtype=np.int32).reshape(-1) for s in sentences]
    level = level or "word"
    if level not in ("word", "char"):
        raise ConfigError(f"unknown level {level!r} (word or char)")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 0:
        raise ConfigError(f"top must be an integer >= 0, got {top!r}")
    C = model.config.vocab_size
    for s in seqs:
        if len(s) and (s.min() < 0 or s.max() >= C):
            raise ConfigError(f"token ids must be in [0, {C})")
    k = min(int(top), C)
    if level == "char":
        parts = _score_stream(model, seqs, k, chunk)
    else:
        parts = _score_sentences(model, seqs, k, batch_size)
    sent, pos, target, logprob, rank, top_ids, top_lp, total = parts
    if not len(target):
        raise ConfigError("nothing to score: no token is predicted (empty text?)")
    return TokenScores(
        sent, pos, target, logprob, rank, top_ids, top_lp, total, len(seqs), level, int(oov or 0), words
    )


def _score_sentences(model, seqs, k, batch_size):
    """Word level: log-probabilities from the one scoring path; ranks and alternatives from
    ``distribution`` on the same padded batches."""
    lps = sentence_token_logprobs(model, seqs, batch_size)
    ntok = np.array([len(lp) for lp in lps], dtype=np.int64)
    per = [None] * len(seqs)  # per sentence: (logprob (n,), rank (n,), top ids (n, k), top lp (n, k))
    order = [i for i in np.argsort(ntok, kind="stable") if ntok[i] > 0]
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        longest = int(ntok[idx[-1]])
        L = bucket_length(longest) if model.static else longest
        B = batch_size if model.static else len(idx)
        x, mask = pad_columns([seqs[i][:-1] for i in idx], L, B)
        dist = model.distribution(x, mask)
        for col, i in enumerate(idx):
            n = int(ntok[i])
            d = np.asarray(dist[:n, col], dtype=np.float32)
            ids, top_lps = _top(d, k)
            per[i] = (lps[i], _rank(d, seqs[i][1:]), ids, top_lps)
    return _assemble(seqs, per, k, first=1)


def _score_stream(model, seqs, k, chunk):
    """Char level: log-probabilities from the one scoring path (the state carried through the stream in
    chunks of ``chunk``); ranks and alternatives from ``distribution`` on the same chunks."""
    ids = np.concatenate(seqs) if seqs else np.zeros(0, np.int32)
    n = max(len(ids) - 1, 0)
    logprob = stream_token_logprobs(model, ids, chunk)
    states = model.initial_state(1)
    rank, top_ids, top_lp = [], [], []
    for i in range(0, n, chunk):
        xs, ys = ids[i : min(i + chunk, n)], ids[i + 1 : min(i + chunk, n) + 1]
        L = chunk if model.static else len(xs)
        x, mask = pad_columns([xs], L)
        y, _ = pad_columns([ys], L)
        # graph("dist") takes the carried states as inputs; evaluate returns the states after the chunk.
        d = np.asarray(model.graph("dist", x.shape)(x, y, mask, *states))[: len(xs), 0]
        states = model.evaluate(x, y, mask, states)[3]
        rank.append(_rank(d, ys))
        t_ids, t_lp = _top(d, k)
        top_ids.append(t_ids)
        top_lp.append(t_lp)
    if not n:
        return _assemble([], [], k, 1)
    flat = (logprob, *(np.concatenate(a) for a in (rank, top_ids, top_lp)))
    # Map stream positions 1..n back to (line, position in line).
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(seqs) else np.zeros(0, np.int64)
    where = np.arange(1, n + 1)
    sent = np.searchsorted(starts, where, side="right") - 1
    pos = where - starts[sent]
    return (
        sent.astype(np.int32),
        pos.astype(np.int32),
        ids[1:].astype(np.int32),
        *flat,
        float(logprob.sum()),
    )


def _assemble(seqs, per, k, first):
    sent, pos, target, logprob, rank, top_ids, top_lp = [], [], [], [], [], [], []
    for i, s in enumerate(seqs):
        if per[i] is None:
            continue
        lp, r, ids, lps = per[i]
        n = len(lp)
        sent.append(np.full(n, i, np.int32))
        pos.append(np.arange(first, first + n, dtype=np.int32))
        target.append(s[first : first + n])
        logprob.append(lp)
        rank.append(r)
        top_ids.append(ids)
        top_lp.append(lps)
    if not sent:
        return (
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
            np.zeros(0),
            np.zeros(0, np.int64),
            np.zeros((0, k), np.int32),
            np.zeros((0, k)),
            0.0,
        )
    logprob = np.concatenate(logprob)
    return (
        np.concatenate(sent),
        np.concatenate(pos),
        np.concatenate(target).astype(np.int32),
        logprob,
        *(np.concatenate(a) for a in (rank, top_ids, top_lp)),
        float(logprob.sum()),
    )


def encode_with_tokens(vocab, corpus_meta: dict | None, text: str, format: str | None = None):
    """Encode ``text`` as :meth:`Corpus.encoder(vocab, corpus_meta, format).encode(text)
    <rnnlm.data.corpus.Corpus.encode>` does, keeping each token as written.

    Returns ``(encoded, tokens, oov)``: the :class:`~rnnlm.data.corpus.EncodedText` (ids with
    out-of-vocabulary words mapped to the unknown token, exactly what scoring uses), and per sentence
    the token strings (lowercased if the corpus was; SENTENCE_START/END included at word level) and
    a bool array marking out-of-vocabulary tokens.
    """
    from rnnlm.data import Corpus, Vocabulary

    encoder = Corpus.encoder(vocab, corpus_meta, format=format)
    encoded = encoder.encode(text)
    if not encoded.oov_counts:
        return (
            encoded,
            [vocab.decode(s) for s in encoded.sentences],
            [np.zeros(len(s), bool) for s in encoded.sentences],
        )
    # A vocabulary extended by the unknown words gives each its own id, so its spelling survives.
    C = len(vocab)
    extended = Vocabulary([*vocab.index_to_word, *encoded.oov_counts], vocab.unknown_token)
    meta = {**(corpus_meta or {}), "level": encoder.level}
    wide = Corpus.encoder(extended, meta, format=format).encode(text)
    tokens, oov = [], []
    for narrow, s in zip(encoded.sentences, wide.sentences, strict=True):
        if not np.array_equal(np.where(s >= C, vocab.unk_index, s), narrow):  # pragma: no cover - a bug
            raise ConfigError("tokenization differs between the vocabulary and its extension")
        tokens.append(extended.decode(s))
        oov.append(s >= C)
    return encoded, tokens, oov
