"""Scoring and perplexity: the one definition every part of rnnlm uses.

Perplexity = ``exp(mean negative log-likelihood over every predicted token)``: at word level the tokens
after SENTENCE_START, i.e. every word *and* SENTENCE_END, but not SENTENCE_START itself (it is given, not
predicted). Out-of-vocabulary words map to the unknown token and are scored as that token; their count
is reported beside the perplexity. At char level the text is scored as one stream (every character after
the first, the state carried across lines, as char-rnn does). :func:`perplexity_of` turns a summed NLL
and a token count into the number; training, the CLI and the n-gram baselines all call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rnnlm.data.batching import bucket_length, pad_columns
from rnnlm.errors import ConfigError


def perplexity_of(nll_sum: float, ntok: float) -> float:
    """``exp(nll_sum / ntok)``: the one perplexity (``nll_sum`` in nats over ``ntok`` predicted tokens).

    Overflow-safe (capped at exp(700)); ``ntok == 0`` is NaN: nothing was predicted.
    """
    if ntok <= 0:
        return float("nan")
    return math.exp(min(float(nll_sum) / float(ntok), 700.0))


class SentenceScores(NamedTuple):
    """``logprob`` (N,) float64: log p(s[1:] | s[0]) per sentence; ``ntok`` (N,) int: predicted tokens."""

    logprob: np.ndarray
    ntok: np.ndarray

    @property
    def perplexity(self) -> np.ndarray:
        """Per-sentence :func:`perplexity_of` (nan for a sentence with nothing predicted)."""
        return np.array([perplexity_of(-lp, n) for lp, n in zip(self.logprob, self.ntok, strict=True)])


def check_scorable(model):
    """Refuse a model with no left-to-right probability (the bidirectional fill model)."""
    if model.config.bidirectional:
        raise ConfigError("a bidirectional fill model has no left-to-right sentence probability; use fill")


def _check_ids(seqs, C):
    for q in seqs:
        if len(q) and (q.min() < 0 or q.max() >= C):
            raise ConfigError(f"token ids must be in [0, {C})")


def sentence_token_logprobs(model, sentences, batch_size: int = 32) -> list:
    """log p of every predicted token of each sentence: a list of float64 arrays, ``len(s) - 1`` each.

    ``sentences``: token-id sequences as encoded by the corpus (word level ``[START, w1..wn, END]``).
    For each, ``x = s[:-1]``, ``y = s[1:]``: every token but the first is predicted, i.e. the words
    and END, not START, each from a zero state at START. Sentences are sorted by length and batched;
    under the static-shape (JAX) linker lengths are padded to powers of two and batches to
    ``batch_size`` rows, so a few compiled shapes serve any input.
    """
    check_scorable(model)
    seqs = [np.asarray(s, dtype=np.int32).reshape(-1) for s in sentences]
    _check_ids(seqs, model.config.vocab_size)
    ntok = np.array([max(len(s) - 1, 0) for s in seqs], dtype=np.int64)
    out = [np.zeros(n) for n in ntok]
    order = [i for i in np.argsort(ntok, kind="stable") if ntok[i] > 0]
    for k in range(0, len(order), batch_size):
        idx = order[k : k + batch_size]
        longest = int(ntok[idx[-1]])
        L = bucket_length(longest) if model.static else longest
        B = batch_size if model.static else len(idx)
        x, mask = pad_columns([seqs[i][:-1] for i in idx], L, B)
        y, _ = pad_columns([seqs[i][1:] for i in idx], L, B)
        nll = model.evaluate(x, y, mask)[2]
        for b, i in enumerate(idx):
            out[i] = -nll[: ntok[i], b].astype(np.float64)
    return out


def sentence_logprob(model, sentences, batch_size: int = 32) -> SentenceScores:
    """Log-probability of each sentence (see :func:`sentence_token_logprobs`): :class:`SentenceScores`
    in the input order."""
    lps = sentence_token_logprobs(model, sentences, batch_size)
    return SentenceScores(
        np.array([lp.sum() for lp in lps], dtype=np.float64),
        np.array([len(lp) for lp in lps], dtype=np.int64),
    )


def stream_token_logprobs(model, ids, chunk: int = 256, tracks: int = 1, warmup: int = 256) -> np.ndarray:
    """log p of every token of one stream after the first: (len(ids) - 1,) float64.

    ``tracks == 1`` is the definition: the state is carried through the whole stream, ``chunk`` tokens per
    compiled call (char-rnn's evaluation). ``tracks > 1`` scores ``tracks`` contiguous pieces side by side,
    each from a zero state ``warmup`` tokens before its first scored token (those tokens give context and
    are not scored): the same tokens, every one with at least ``warmup`` tokens of context -- the fast
    form training uses for validation.
    """
    check_scorable(model)
    ids = np.asarray(ids, dtype=np.int32).reshape(-1)
    _check_ids([ids], model.config.vocab_size)
    n = max(len(ids) - 1, 0)  # predicted positions 1..n
    out = np.zeros(n)
    if n == 0:
        return out
    tracks = max(1, min(int(tracks), n))
    bounds = np.linspace(0, n, tracks + 1).round().astype(int)  # scored targets [a, b) of each track
    starts = [0 if k == 0 else max(0, bounds[k] - warmup) for k in range(tracks)]  # first input position
    lengths = [bounds[k + 1] - starts[k] for k in range(tracks)]
    total = max(lengths)
    states = model.initial_state(tracks)
    for t0 in range(0, total, chunk):
        L = chunk if model.static else min(chunk, total - t0)
        xs = [ids[starts[k] + t0 : starts[k] + min(t0 + L, lengths[k])] for k in range(tracks)]
        ys = [ids[starts[k] + t0 + 1 : starts[k] + min(t0 + L, lengths[k]) + 1] for k in range(tracks)]
        x, mask = pad_columns(xs, L, tracks)
        y, _ = pad_columns(ys, L, tracks)
        _, _, nll, states = model.evaluate(x, y, mask, states)
        for k in range(tracks):
            first = max(bounds[k], starts[k] + t0)  # input position of the first scored target here
            last = min(bounds[k + 1], starts[k] + t0 + len(xs[k]))
            if last > first:
                rows = np.arange(first, last) - (starts[k] + t0)
                out[first:last] = -nll[rows, k].astype(np.float64)
    return out


def stream_logprob(model, ids, chunk: int = 256, tracks: int = 1, warmup: int = 256) -> tuple[float, int]:
    """``(log-probability, n_predicted)`` of one token stream (see :func:`stream_token_logprobs`); char-level
    scoring uses it."""
    lp = stream_token_logprobs(model, ids, chunk, tracks, warmup)
    return float(lp.sum()), len(lp)


@dataclass
class PerplexityResult:
    """``perplexity = exp(nll)``, ``nll`` = mean negative log-likelihood per predicted token (nats).

    ``predicted``: tokens averaged over (words + SENTENCE_END at word level); ``oov``: words of the
    text not in the vocabulary (scored as the unknown token); ``words``: words of the text (without
    START/END); ``sentences``; ``level``.
    """

    perplexity: float
    nll: float
    logprob: float
    predicted: int
    sentences: int
    oov: int = 0
    words: int | None = None
    level: str = "word"

    @property
    def oov_rate(self) -> float:
        return self.oov / self.words if self.words else 0.0

    @property
    def bits_per_token(self) -> float:
        return self.nll / math.log(2)

    def to_json(self) -> dict:
        return {
            "perplexity": self.perplexity,
            "nll": self.nll,
            "bits_per_token": self.bits_per_token,
            "logprob": self.logprob,
            "predicted_tokens": self.predicted,
            "sentences": self.sentences,
            "words": self.words,
            "oov": self.oov,
            "oov_rate": self.oov_rate,
            "level": self.level,
        }


def perplexity(
    model,
    sentences,
    *,
    level: str | None = None,
    oov: int | None = None,
    words: int | None = None,
    batch_size: int = 32,
    chunk: int = 256,
    tracks: int = 1,
) -> PerplexityResult:
    """Perplexity of a text (see the module docstring for the one definition used everywhere).

    ``sentences``: an :class:`~rnnlm.data.corpus.EncodedText` (its OOV and word counts are used) or a list
    of encoded sentences. ``level``: ``word`` (default: per sentence, from a zero state) or ``char``
    (the sentences concatenated into one stream, see :func:`stream_logprob`; ``tracks`` > 1 is its fast
    form).
    """
    if hasattr(sentences, "sentences"):  # EncodedText
        oov = sentences.n_oov if oov is None else oov
        words = sentences.n_words if words is None else words
        sentences = sentences.sentences
    sentences = [np.asarray(s, dtype=np.int32).reshape(-1) for s in sentences]
    level = level or "word"
    if level == "char":
        logprob, n = stream_logprob(model, np.concatenate(sentences) if sentences else [], chunk, tracks)
    elif level == "word":
        lp = np.concatenate([np.zeros(0), *sentence_token_logprobs(model, sentences, batch_size)])
        logprob, n = float(lp.sum()), len(lp)
    else:
        raise ConfigError(f"unknown level {level!r} (word or char)")
    if n == 0:
        raise ConfigError("nothing to score: no token is predicted (empty text?)")
    return PerplexityResult(
        perplexity_of(-logprob, n), -logprob / n, logprob, n, len(sentences), int(oov or 0), words, level
    )
