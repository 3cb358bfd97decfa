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


def _check_scorable(model):
    if model.config.bidirectional:
        raise ConfigError("a bidirectional fill model has no left-to-right sentence probability; use fill")


def sentence_logprob(model, sentences, batch_size: int = 32) -> SentenceScores:
    """Log-probability of each sentence under the model, in padded, masked batches through ``evaluate``.

    ``sentences``: token-id sequences as encoded by the corpus (word level ``[START, w1..wn, END]``).
    For each, ``x = s[:-1]``, ``y = s[1:]``: every token but the first is predicted, i.e. the words
    and END, not START. Sentences are sorted by length and batched; under the static-shape (JAX)
    linker lengths are padded to powers of two and batches to ``batch_size`` rows, so a few compiled
    shapes serve any input. Returns :class:`SentenceScores` in the input order.
    """
    _check_scorable(model)
    seqs = [np.asarray(s, dtype=np.int32).reshape(-1) for s in sentences]
    C = model.config.vocab_size
    for s in seqs:
        if len(s) and (s.min() < 0 or s.max() >= C):
            raise ConfigError(f"token ids must be in [0, {C})")
    N = len(seqs)
    logprob = np.zeros(N)
    ntok = np.array([max(len(s) - 1, 0) for s in seqs], dtype=np.int64)
    order = [i for i in np.argsort(ntok, kind="stable") if ntok[i] > 0]
    for k in range(0, len(order), batch_size):
        idx = order[k : k + batch_size]
        longest = int(ntok[idx[-1]])
        L = bucket_length(longest) if model.static else longest
        B = batch_size if model.static else len(idx)
        x, mask = pad_columns([seqs[i][:-1] for i in idx], L, B)
        y, _ = pad_columns([seqs[i][1:] for i in idx], L, B)
        nll = model.evaluate(x, y, mask)[2]
        logprob[idx] = -nll[:, : len(idx)].astype(np.float64).sum(axis=0)
    return SentenceScores(logprob, ntok)


def stream_logprob(model, ids, chunk: int = 256) -> tuple[float, int]:
    """Log-probability of one token stream (every token after the first), the state carried across
    chunks of ``chunk`` tokens: ``(logprob, n_predicted)``. Char-level scoring uses it."""
    _check_scorable(model)
    ids = np.asarray(ids, dtype=np.int32).reshape(-1)
    n = max(len(ids) - 1, 0)
    states = model.initial_state(1)
    total = 0.0
    for i in range(0, n, chunk):
        xs, ys = ids[i : min(i + chunk, n)], ids[i + 1 : min(i + chunk, n) + 1]
        L = chunk if model.static else len(xs)
        x, mask = pad_columns([xs], L)
        y, _ = pad_columns([ys], L)
        loss_sum, _, _, states = model.evaluate(x, y, mask, states)
        total -= float(loss_sum)
    return total, n


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
) -> PerplexityResult:
    """Perplexity of a text (see the module docstring for the one definition used everywhere).

    ``sentences``: an :class:`~rnnlm.data.corpus.EncodedText` (its OOV and word counts are used) or a list
    of encoded sentences. ``level``: ``word`` (default: per sentence, from a zero state) or ``char``
    (the sentences concatenated into one stream, see :func:`stream_logprob`).
    """
    if hasattr(sentences, "sentences"):  # EncodedText
        oov = sentences.n_oov if oov is None else oov
        words = sentences.n_words if words is None else words
        sentences = sentences.sentences
    sentences = [np.asarray(s, dtype=np.int32).reshape(-1) for s in sentences]
    level = level or "word"
    if level == "char":
        logprob, n = stream_logprob(model, np.concatenate(sentences) if sentences else [], chunk)
    elif level == "word":
        scores = sentence_logprob(model, sentences, batch_size)
        logprob, n = float(scores.logprob.sum()), int(scores.ntok.sum())
    else:
        raise ConfigError(f"unknown level {level!r} (word or char)")
    if n == 0:
        raise ConfigError("nothing to score: no token is predicted (empty text?)")
    return PerplexityResult(perplexity_of(-logprob, n), -logprob / n, logprob, n, len(sentences),
                            int(oov or 0), words, level)
