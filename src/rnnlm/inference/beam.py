"""Beam search (:func:`beam_search`): the most probable sentences rather than samples."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rnnlm.errors import ConfigError
from rnnlm.inference.decoding import PRIME_CHUNK, SpecialIds, render, special_ids, start_decoding


@dataclass
class Hypothesis:
    """A beam-search result; unpacks as ``(tokens, logprob)``.

    ``tokens``: generated ids (without SENTENCE_END); ``logprob``: log p(tokens [+ END] | prime),
    unscaled; ``ended``: it ends with SENTENCE_END (False: cut off at max_length); ``score``: the
    ranking score ``logprob / lp`` with GNMT's length penalty ``lp = ((5 + |Y|) / 6) ** alpha``
    (|Y| counts END); ``words``/``text``: as in :class:`Generation`.
    """

    tokens: list
    logprob: float
    ended: bool = True
    score: float = 0.0
    prefix: list = field(default_factory=list)
    words: list | None = None
    text: str = ""

    def __iter__(self):
        yield self.tokens
        yield self.logprob

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "ids": list(self.tokens),
            "logprob": self.logprob,
            "score": self.score,
            "ended": self.ended,
            "prefix_ids": list(self.prefix),
            "tokens": self.words,
        }


def _penalty(n_tokens: int, alpha: float) -> float:
    return ((5.0 + n_tokens) / 6.0) ** alpha if alpha else 1.0


def _cut(tokens, logprob, alpha) -> Hypothesis:
    """A prefix that stops without SENTENCE_END (max_length reached, or nothing left to add)."""
    return Hypothesis(list(tokens), float(logprob), False, float(logprob) / _penalty(len(tokens), alpha))


def beam_search(
    model,
    vocab=None,
    beam_size: int = 5,
    max_length: int | None = None,
    length_penalty: float = 0.0,
    prime=None,
    allow_unk: bool = False,
    *,
    min_length: int = 0,
    n_best: int | None = None,
    ids: SpecialIds | None = None,
    prime_chunk: int = PRIME_CHUNK,
) -> list:
    """The ``n_best`` (default ``beam_size``) best sentences by beam search, best first.

    Keeps the ``beam_size`` most probable unfinished prefixes at each step (one batched step call of
    ``beam_size`` rows); a prefix extended by SENTENCE_END is finished. Stops when no prefix is left,
    at ``max_length`` words (only SENTENCE_END may follow the last allowed word), or when no
    unfinished prefix can beat the ``beam_size`` best finished ones. Never emits the unknown token
    unless ``allow_unk``, nor SENTENCE_START. A beam larger than the vocabulary simply keeps every
    candidate. Finished sentences are ranked by ``score`` (``length_penalty`` = alpha >= 0; 0 ranks by
    log-probability, larger values favour longer sentences); if fewer than ``n_best`` finished, the
    best cut-off prefixes fill the list (``ended=False``). At char level (no end token) every result
    has ``max_length`` characters.

    Returns a list of :class:`Hypothesis` (each unpacks as ``(tokens, logprob)``).
    """
    if isinstance(beam_size, bool) or not isinstance(beam_size, (int, np.integer)) or beam_size < 1:
        raise ConfigError(f"beam size must be a positive integer, got {beam_size!r}")
    if not (math.isfinite(length_penalty) and length_penalty >= 0):
        raise ConfigError(f"length penalty must be >= 0, got {length_penalty!r}")
    K = int(beam_size)
    n_best = K if n_best is None else int(n_best)
    special = ids or special_ids(model, vocab)
    word, max_length, prefix, base, logp0, states0 = start_decoding(
        model, vocab, special, prime, min_length, max_length, prime_chunk
    )
    C = model.config.vocab_size

    allowed = np.ones(C, bool)
    if special.unk is not None and not allow_unk:
        allowed[special.unk] = False
    if word:
        allowed[special.start] = False
        allowed[special.end] = False  # END extensions are handled apart
    step = model.step_function(K)
    max_tokens = max_length + (1 if word else 0)

    live = [[]]
    live_lp = np.zeros(1)
    logp = logp0[None].astype(np.float64)
    states = [np.asarray(s) for s in states0]  # rows = live prefixes
    finished, cut = [], []

    def worst_kept():
        if len(finished) < K:
            return -np.inf
        return sorted((h.score for h in finished), reverse=True)[K - 1]

    while live:
        length = base + len(live[0])
        if word and length >= min_length:
            for i, toks in enumerate(live):
                lp = float(live_lp[i] + logp[i, special.end])
                if np.isfinite(lp):
                    finished.append(
                        Hypothesis(list(toks), lp, True, lp / _penalty(len(toks) + 1, length_penalty))
                    )
        if length >= max_length:
            cut.extend(_cut(t, lp, length_penalty) for t, lp in zip(live, live_lp, strict=True))
            break
        cand = np.where(allowed, live_lp[:, None] + logp, -np.inf)
        flat = cand.ravel()
        m = min(K, int(np.isfinite(flat).sum()))
        if m == 0:  # every extension is forbidden: what is left is cut off here
            cut.extend(_cut(t, lp, length_penalty) for t, lp in zip(live, live_lp, strict=True))
            break
        top = np.argpartition(-flat, m - 1)[:m]
        top = top[np.argsort(-flat[top], kind="stable")]
        # No unfinished prefix can beat the K best finished sentences: scores only fall as words are
        # added (with alpha > 0, bounded by dividing by the largest possible penalty).
        bound = flat[top[0]] / _penalty(max_tokens, length_penalty)
        if bound < worst_kept():
            break
        parents, toks = top // C, top % C
        live = [live[p] + [int(t)] for p, t in zip(parents, toks, strict=True)]
        live_lp = flat[top]
        rows = np.zeros(K, np.int64)
        rows[:m] = parents
        feed = np.zeros(K, np.int32)
        feed[:m] = toks
        # Rows past m repeat prefix 0 (padding: one compiled batch size); the first step has one prefix.
        res = step(feed, *[s[:, rows] for s in states])
        logp = np.asarray(res[0], dtype=np.float64)[:m]
        states = [np.asarray(s) for s in res[1:]]
    ranked = sorted(finished, key=lambda h: -h.score)[:n_best]
    if len(ranked) < n_best:
        ranked += sorted(cut, key=lambda h: -h.score)[: n_best - len(ranked)]
    for h in ranked:
        h.prefix = list(prefix)
        h.words, h.text = render(prefix + h.tokens, vocab, special)
    return ranked
