"""Sampling and greedy decoding (:func:`generate`, :func:`generate_sentence`).

Temperature and top-k (sampling only): the next-token distribution is ``p_T(w) ∝ p(w)^(1/T)``: ``T < 1``
makes it sharper (towards greedy decoding as ``T → 0``), ``T > 1`` flatter (towards uniform). ``top_k =
k > 0`` keeps only the k most probable allowed tokens. Neither ever affects scoring: every log-probability
reported (``Generation.logprob``, beam scores, :mod:`rnnlm.inference.scoring`) is the model's unscaled
probability. The rules shared with beam search are in :mod:`rnnlm.inference.decoding`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rnnlm.errors import ConfigError
from rnnlm.inference.decoding import PRIME_CHUNK, SpecialIds, render, special_ids, start_decoding

MODES = ("sample", "greedy", "beam")


def adjust_distribution(logp, temperature: float = 1.0, top_k: int = 0, forbidden=None) -> np.ndarray:
    """The sampling distribution from model log-probabilities ``logp`` (C,) or (B, C): float64, same shape.

    ``p_T(w) ∝ exp(logp(w) / T)`` (T < 1 sharper, T > 1 flatter), restricted to allowed tokens
    (``forbidden``: bool (C,) or (B, C), True = never emit) and, with ``top_k > 0``, to the k most
    probable of them; renormalised to sum to 1.
    """
    _check_sampling(temperature, top_k)
    z = np.array(logp, dtype=np.float64, ndmin=1)  # a copy: worked on in place below
    squeeze = z.ndim == 1
    z = z.reshape(-1, z.shape[-1])
    if temperature != 1:
        z *= 1.0 / float(temperature)
    if forbidden is not None:
        forbidden = np.asarray(forbidden, dtype=bool)
        if forbidden.ndim == 1:
            z[:, np.flatnonzero(forbidden)] = -np.inf  # a few columns: cheaper than a full mask
        else:
            z[np.broadcast_to(forbidden, z.shape)] = -np.inf
    zmax = z.max(axis=1, keepdims=True)
    if np.isneginf(zmax).any():
        raise ConfigError("every token is forbidden here (check min_length and the vocabulary)")
    if top_k and top_k < z.shape[1]:
        drop = np.argpartition(-z, top_k - 1, axis=1)[:, top_k:]
        np.put_along_axis(z, drop, -np.inf, axis=1)
    z -= zmax
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z[0] if squeeze else z


def _check_sampling(temperature, top_k):
    if not (
        isinstance(temperature, (int, float, np.floating)) and math.isfinite(temperature) and temperature > 0
    ):
        raise ConfigError(
            f"temperature must be a positive number, got {temperature!r} (use --mode greedy for argmax)"
        )
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ConfigError(f"top_k must be an integer >= 0 (0: no limit), got {top_k!r}")


def _draw(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of ``p`` (B, C), by inverting each row's cumulative distribution.

    ``u`` is in (0, total], so a zero-probability token (a flat step of the cdf) is never drawn.
    """
    B, C = p.shape
    cdf = np.cumsum(p, axis=1)
    u = (1.0 - rng.random(B)) * cdf[:, -1]
    return np.array([min(int(np.searchsorted(cdf[b], u[b], side="left")), C - 1) for b in range(B)])


def _rng(rng=None, seed=None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(seed if rng is None else rng)


@dataclass
class Generation:
    """One generated sentence (word level) or passage (char level).

    ``ids``: the generated token ids (without SENTENCE_END). ``prefix``: the ids of the prime's part of
    the sentence (or line) that was continued. ``logprob``: log p(ids [+ SENTENCE_END] | prime) under
    the model's unscaled probabilities. ``ended``: SENTENCE_END was drawn (always False at char level).
    ``tokens``: prefix + generated tokens as strings (None without a vocabulary). ``text``: the
    completed sentence: tokens joined by spaces (word level), characters joined (char level), or ids
    joined by spaces without a vocabulary. Iterating gives the words, as the tutorial's list did.
    """

    ids: list
    logprob: float
    ended: bool
    prefix: list = field(default_factory=list)
    tokens: list | None = None
    text: str = ""

    def __iter__(self):
        """Iterates like the tutorial's ``generate_sentence`` result: the sentence's words (token ids as
        strings without a vocabulary), without SENTENCE_START/SENTENCE_END."""
        if self.tokens is not None:
            return iter(self.tokens)
        return iter([str(i) for i in self.prefix + self.ids])

    def __len__(self) -> int:
        return len(self.prefix) + len(self.ids)

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "ids": list(self.ids),
            "logprob": self.logprob,
            "ended": self.ended,
            "prefix_ids": list(self.prefix),
            "tokens": self.tokens,
        }


@dataclass(frozen=True)
class TokenEvent:
    """One token of a :class:`GenerationStream`, as soon as it is drawn.

    ``row``: which of the n samples; ``id``: the token id; ``logprob``: its log-probability under the
    model (unscaled: temperature and top-k change the draw, never this number); ``end``: the token is
    SENTENCE_END (the row is finished; it is not part of the text); ``token``: the token's text (None
    without a vocabulary).
    """

    row: int
    id: int
    logprob: float
    end: bool = False
    token: str | None = None

    def to_json(self) -> dict:
        return {"row": self.row, "id": self.id, "token": self.token, "logprob": self.logprob, "end": self.end}


class GenerationStream:
    """Sampling or greedy decoding, one token at a time: iterate to get :class:`TokenEvent` s as they are
    drawn (for each step, the live rows in row order); :func:`generate` is this stream run to the end.

    Takes :func:`generate`'s arguments. The arguments are checked and the prime is fed when the stream is
    made (so errors come before the first token); ``prefix`` (ids), ``prefix_tokens`` and
    ``prefix_text`` (the part of the prime's sentence or line being continued) are known from then on.
    :meth:`generations` renders the samples so far at any time (rows not finished have
    ``ended=False``); ``results`` holds them once the stream is exhausted. A stream can be iterated once.
    """

    def __init__(
        self,
        model,
        vocab=None,
        n: int = 1,
        rng=None,
        *,
        seed=None,
        temperature: float = 1.0,
        top_k: int = 0,
        min_length: int = 0,
        max_length: int | None = None,
        mode: str = "sample",
        prime=None,
        allow_unk: bool = False,
        ids: SpecialIds | None = None,
        prime_chunk: int = PRIME_CHUNK,
    ):
        if mode not in ("sample", "greedy"):
            raise ConfigError(f"unknown mode {mode!r} for generate (sample or greedy; beam: beam_search)")
        _check_sampling(temperature, top_k)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"the number of samples must be a positive integer, got {n!r}")
        self.model, self.vocab, self.n = model, vocab, int(n)
        self.temperature, self.top_k, self.mode, self.min_length = temperature, top_k, mode, min_length
        self.special = special = ids or special_ids(model, vocab)
        self.word, self.max_length, prefix, self._base, self._logp0, self._states = start_decoding(
            model, vocab, special, prime, min_length, max_length, prime_chunk
        )
        self.prefix = list(prefix)
        self.prefix_tokens, self.prefix_text = render(self.prefix, vocab, special)
        self._rng = _rng(rng, seed)
        self._forbidden = np.zeros(model.config.vocab_size, bool)
        if special.unk is not None and not allow_unk:
            self._forbidden[special.unk] = True
        if self.word:
            self._forbidden[special.start] = True
        self._out = [[] for _ in range(self.n)]
        self._lps = np.zeros(self.n)
        self._ended = np.zeros(self.n, bool)
        self._started = False
        self.results: list | None = None

    def generations(self) -> list:
        """The samples so far as :class:`Generation` objects."""
        out = []
        for r in range(self.n):
            tokens, text = render(self.prefix + self._out[r], self.vocab, self.special)
            out.append(
                Generation(
                    list(self._out[r]),
                    float(self._lps[r]),
                    bool(self._ended[r]),
                    list(self.prefix),
                    tokens,
                    text,
                )
            )
        return out

    def _event(self, row, tok, lp, end=False) -> TokenEvent:
        text = None
        if self.vocab is not None and not end:
            text = self.vocab.index_to_word[tok]
        return TokenEvent(int(row), int(tok), float(lp), end, text)

    def __iter__(self):
        if self._started:
            raise ConfigError("a generation stream can be iterated only once")
        self._started = True
        return self._run()

    def _run(self):
        model, special, word, n = self.model, self.special, self.word, self.n
        forbidden, out, lps, ended = self._forbidden, self._out, self._lps, self._ended
        step = model.step_function(n)
        logp = np.repeat(self._logp0[None], n, axis=0)
        states = [np.repeat(np.asarray(s), n, axis=1) for s in self._states]
        live = np.ones(n, bool)
        rows = np.arange(n)
        while live.any():
            length = self._base + len(out[int(np.argmax(live))])  # every live row has the same length
            forb = forbidden  # (C,): every live row has the same length, so one mask serves them all
            if word and length < self.min_length:
                forb = forbidden.copy()
                forb[special.end] = True
            if self.mode == "greedy":
                z = np.where(forb, -np.inf, logp)
                if np.any(np.all(np.isneginf(z), axis=1)):
                    raise ConfigError("every token is forbidden here (check min_length and the vocabulary)")
                nxt = np.argmax(z, axis=1)
            else:
                nxt = _draw(adjust_distribution(logp, self.temperature, self.top_k, forb), self._rng)
            events = []
            if word:
                stop = live & (nxt == special.end)
                lps[stop] += logp[rows[stop], special.end]
                ended |= stop
                live &= ~stop
                events = [
                    self._event(r, special.end, logp[r, special.end], True) for r in np.flatnonzero(stop)
                ]
            if length >= self.max_length:  # the token after the last allowed word was not END: cut off
                yield from events
                break
            for r in np.flatnonzero(live):
                out[r].append(int(nxt[r]))
            lps[live] += logp[rows[live], nxt[live]]
            events += [self._event(r, nxt[r], logp[r, nxt[r]]) for r in np.flatnonzero(live)]
            events.sort(key=lambda e: e.row)
            yield from events
            if not live.any() or (not word and len(out[0]) >= self.max_length):
                break  # (char level: the distribution after the last character is not needed)
            feed = np.where(live, nxt, special.end if word else nxt).astype(np.int32)
            res = step(feed, *states)
            logp = np.asarray(res[0], dtype=np.float64)
            states = list(res[1:])
        self.results = self.generations()


def generate(
    model,
    vocab=None,
    n: int = 1,
    rng=None,
    *,
    seed=None,
    temperature: float = 1.0,
    top_k: int = 0,
    min_length: int = 0,
    max_length: int | None = None,
    mode: str = "sample",
    prime=None,
    allow_unk: bool = False,
    ids: SpecialIds | None = None,
    prime_chunk: int = PRIME_CHUNK,
) -> list:
    """``n`` sentences (word level) or passages (char level), generated together as one batch of n rows.

    Args:
        model: a unidirectional :class:`~rnnlm.models.lm.LanguageModel`.
        vocab: its :class:`~rnnlm.data.vocab.Vocabulary` (None: the tutorial's id layout, see
            :data:`TUTORIAL_START_ID`; texts are then ids).
        rng / seed: a ``numpy.random.Generator`` or a seed (same seed, same n: same output).
        temperature, top_k: see the module docstring (sampling only).
        min_length, max_length: in words (word level); max_length is the number of characters to
            generate at char level (default 100 words / 200 characters).
        mode: ``sample`` or ``greedy`` (argmax; temperature and top_k do not matter). For beam search
            see :func:`beam_search`.
        prime: text (tokenized on whitespace; use :func:`encode_prime` for a corpus's tokenizer) or
            token ids. At word level generation continues the prime's last sentence.
        allow_unk: let the unknown token be emitted.
        ids: the special token ids (default: :func:`special_ids`).
        prime_chunk: see :func:`prime_state`.

    Returns a list of :class:`Generation`. :class:`GenerationStream` gives the same tokens one by one.
    """
    stream = GenerationStream(
        model,
        vocab,
        n,
        rng,
        seed=seed,
        temperature=temperature,
        top_k=top_k,
        min_length=min_length,
        max_length=max_length,
        mode=mode,
        prime=prime,
        allow_unk=allow_unk,
        ids=ids,
        prime_chunk=prime_chunk,
    )
    for _ in stream:
        pass
    return stream.results


def generate_sentence(model, vocab=None, rng=None, **kwargs) -> Generation:
    """One sentence (or char-level passage): :func:`generate` with ``n=1``; same keyword arguments."""
    return generate(model, vocab, 1, rng, **kwargs)[0]
