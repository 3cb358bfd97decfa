"""Generation, scoring and perplexity for a :class:`~rnnlm.model.LanguageModel`.

Generation is incremental: :meth:`LanguageModel.step_function` compiles one step
``step(tokens (B,), *states) -> [logp (B, C), *new_states]`` and every function here advances the
hidden state ``s_t`` one token per call, so the cost per token does not depend on how many tokens
came before. A prime is fed once; the state after it is carried into generation, never recomputed.

Decoding (:func:`generate_sentence`, :func:`generate`, :func:`beam_search`)
    The tutorial's rule at word level: start from SENTENCE_START, draw until SENTENCE_END, never emit
    UNKNOWN_TOKEN (its probability is removed and the rest renormalised, which is what the tutorial's
    "draw again while it is UNKNOWN_TOKEN" loop amounts to). SENTENCE_START is never emitted either.
    ``min_length``: SENTENCE_END is not allowed before the sentence has that many words.
    ``max_length``: a sentence has at most that many words; if the token drawn after the last allowed
    word is not SENTENCE_END the sentence is returned cut off (``ended=False``).
    At char level there are no start/end tokens: ``max_length`` characters are generated after the
    prime (default prime: a newline, i.e. the start of a line).

Temperature and top-k (sampling only)
    The next-token distribution is ``p_T(w) ∝ p(w)^(1/T)``: ``T < 1`` makes it sharper (towards greedy
    decoding as ``T → 0``), ``T > 1`` flatter (towards uniform). ``top_k = k > 0`` keeps only the k most
    probable allowed tokens. Neither ever affects scoring: every log-probability reported here
    (``Generation.logprob``, beam scores, :func:`sentence_logprob`, :func:`perplexity`) is the model's
    unscaled probability.

Perplexity (defined once, here)
    ``exp(mean negative log-likelihood over every predicted token)``: at word level the tokens after
    SENTENCE_START, i.e. every word *and* SENTENCE_END, but not SENTENCE_START itself (it is given, not
    predicted). Out-of-vocabulary words map to the unknown token and are scored as that token; their
    count is reported beside the perplexity. At char level the text is scored as one stream (every
    character after the first, the state carried across lines, as char-rnn does).

Fill-in-the-blank (:func:`fill`) needs a bidirectional model: the distribution of the word at the
blank given the forward state before it and the backward state after it.

Shapes: token ids are int32; states are lists of (layers, B, H) float32 arrays (the LSTM has two);
``logp`` rows are (C,) log-probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .errors import ConfigError

__all__ = [
    "BLANK",
    "MODES",
    "Generation",
    "Hypothesis",
    "PerplexityResult",
    "SentenceScores",
    "SpecialIds",
    "adjust_distribution",
    "beam_search",
    "encode_prime",
    "fill",
    "fill_distribution",
    "generate",
    "generate_sentence",
    "perplexity",
    "prime_state",
    "sentence_logprob",
    "special_ids",
    "stream_logprob",
]

MODES = ("sample", "greedy", "beam")
#: The blank of a fill-in-the-blank query: a token of three or more underscores.
BLANK = "___"
#: The tutorial's ``trained-model-theano.npz`` has no vocabulary. Its ids follow the tutorial's
#: layout: the unknown token is last (``index_to_word.append(unknown_token)``), and SENTENCE_START /
#: SENTENCE_END, the most frequent tokens (one each per sentence), are ids 0 and 1. Which is which is
#: read off the model itself: id 0 is never predicted (p < 4e-5 after any input) and id 1 is what
#: follows "." with p ≈ 0.96, so 0 is SENTENCE_START and 1 is SENTENCE_END.
TUTORIAL_START_ID = 0
TUTORIAL_END_ID = 1
#: Primes longer than this are fed through the model's compiled ``evaluate`` in chunks of this
#: many tokens (one call per chunk) instead of one step call per token.
PRIME_CHUNK = 128
#: Default maximum length: words at word level, characters at char level.
DEFAULT_MAX_WORDS = 100
DEFAULT_MAX_CHARS = 200


# --------------------------------------------------------------------------------------------------
# special tokens and primes
# --------------------------------------------------------------------------------------------------


class SpecialIds(NamedTuple):
    """Ids of SENTENCE_START / SENTENCE_END (None at char level) and of the unknown token."""

    start: int | None
    end: int | None
    unk: int | None

    @property
    def level(self) -> str:
        return "word" if self.start is not None else "char"


def special_ids(model, vocab=None, start=None, end=None, unk=None) -> SpecialIds:
    """The special token ids of ``vocab``, or of the tutorial's layout when there is no vocabulary.

    A vocabulary without SENTENCE_START/SENTENCE_END is a char-level one. Explicit ``start``/``end``/
    ``unk`` override what the vocabulary says (``-1`` means "none").
    """
    C = model.config.vocab_size
    if vocab is not None:
        if len(vocab) != C:
            raise ConfigError(f"the vocabulary has {len(vocab)} tokens but the model has {C} outputs")
        ids = SpecialIds(vocab.start_index, vocab.end_index, vocab.unk_index)
    else:
        ids = SpecialIds(TUTORIAL_START_ID, TUTORIAL_END_ID, C - 1)
    given = (start, end, unk)
    ids = SpecialIds(*(g if g is not None else have for g, have in zip(given, ids, strict=True)))
    ids = SpecialIds(*(None if (i is not None and i < 0) else i for i in ids))
    for name, i in zip(ids._fields, ids, strict=True):
        if i is not None and not 0 <= i < C:
            raise ConfigError(f"{name} id {i} is out of range for a model with {C} outputs")
    if (ids.start is None) != (ids.end is None):
        raise ConfigError("give both a start and an end token, or neither (char level)")
    return ids


def encode_prime(text: str, vocab, settings: dict | None = None, splitter=None) -> tuple[np.ndarray, int]:
    """Encode a prime with the corpus's vocabulary and tokenization: ``(ids (n,) int32, n_oov)``.

    Word level (the vocabulary has SENTENCE_START): every sentence of ``text`` is wrapped as in
    training, ``[START, w1, ..., wn, END]``, the sentences are concatenated and the last END is
    dropped, so generation continues the last sentence; an empty prime is ``[START]``. Char level:
    the characters of ``text`` exactly (lowercased if the corpus was).

    ``settings``/``splitter`` are the corpus settings and Punkt parameters saved with a corpus or a
    checkpoint (see :class:`rnnlm.corpus.Corpus`); without them words are split on whitespace.
    """
    from .corpus import Corpus

    settings = dict(settings or {})
    if vocab.start_index is None:  # char level
        if settings.get("lowercase"):
            text = text.lower()
        chars = list(text)
        n_oov = sum(1 for ch in chars if ch not in vocab.word_to_index)
        return vocab.encode(chars), n_oov
    settings.setdefault("format", "lines")
    settings.setdefault("tokenizer", "whitespace")
    settings["level"] = "word"
    corpus = Corpus(vocab, [], "word", settings=settings, splitter=splitter)
    encoded = corpus.encode(text) if text.strip() else None
    if encoded is None or not encoded.sentences:
        return np.array([vocab.start_index], np.int32), 0
    ids = np.concatenate(encoded.sentences)[:-1].astype(np.int32)
    return ids, encoded.n_oov


def _prime_ids(model, vocab, special: SpecialIds, prime) -> np.ndarray:
    """The tokens to feed before generating: (n >= 1,) int32."""
    if isinstance(prime, str):
        if vocab is None:  # no vocabulary: a prime is a list of ids
            try:
                prime = [int(t) for t in prime.split()]
            except ValueError:
                raise ConfigError("this model has no vocabulary: give the prime as token ids") from None
        else:
            prime = encode_prime(prime, vocab)[0]
    ids = np.asarray([] if prime is None else prime, dtype=np.int64).reshape(-1)
    C = model.config.vocab_size
    if len(ids) and (ids.min() < 0 or ids.max() >= C):
        raise ConfigError(f"prime token ids must be in [0, {C})")
    if special.level == "word":
        if not len(ids) or ids[0] != special.start:
            ids = np.concatenate([[special.start], ids])
    elif not len(ids):
        if vocab is not None and "\n" in vocab.word_to_index:
            ids = np.array([vocab.word_to_index["\n"]])  # the start of a line
        else:
            ids = np.array([0])
    return ids.astype(np.int32)


def _sentence_prefix(ids: np.ndarray, special: SpecialIds, vocab) -> list[int]:
    """The prime's part of the sentence (word level: after the last START) or line (char level)
    that generation continues."""
    ids = list(map(int, ids))
    if special.level == "word":
        last = max(i for i, t in enumerate(ids) if t == special.start)
        return ids[last + 1 :]
    nl = vocab.word_to_index.get("\n") if vocab is not None else None
    if nl is None:
        return ids
    cut = max((i for i, t in enumerate(ids) if t == nl), default=-1)
    return ids[cut + 1 :]


def prime_state(model, tokens, states=None, chunk: int = PRIME_CHUNK):
    """Feed ``tokens`` (n >= 1,) through the model with batch size 1.

    Returns ``(logp (C,) float32, states)``: the next-token log-probabilities after the last token and
    the states after it (lists of (layers, 1, H)). All tokens but the last go through the compiled
    ``evaluate`` in chunks of ``chunk`` tokens (padded and masked: padding keeps the state) when there
    are at least ``chunk`` of them, else through the step function one token at a time; the last
    token always goes through the step function, which also yields its distribution.
    """
    tokens = np.asarray(tokens, dtype=np.int32).reshape(-1)
    if not len(tokens):
        raise ConfigError("a prime needs at least one token")
    states = model.initial_state(1) if states is None else list(states)
    step = model.step_function(1)
    head = tokens[:-1]
    if chunk and len(head) >= chunk:
        for i in range(0, len(head), chunk):
            piece = head[i : i + chunk]
            L = chunk if model.static else len(piece)  # one compiled shape under JAX
            x = np.zeros((L, 1), np.int32)
            mask = np.zeros((L, 1), np.float32)
            x[: len(piece), 0] = piece
            mask[: len(piece), 0] = 1
            states = model.evaluate(x, x, mask, states)[3]
    else:
        for t in head:
            states = list(step(np.array([t], np.int32), *states)[1:])
    out = step(tokens[-1:], *states)
    return np.asarray(out[0])[0], list(out[1:])


# --------------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------------


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


def _render(ids, vocab, special: SpecialIds) -> tuple[list | None, str]:
    if vocab is None:
        return None, " ".join(str(i) for i in ids)
    tokens = vocab.decode(ids) if len(ids) else []
    return tokens, ("".join(tokens) if special.level == "char" else " ".join(tokens))


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
        model: a unidirectional :class:`~rnnlm.model.LanguageModel`.
        vocab: its :class:`~rnnlm.corpus.Vocabulary` (None: the tutorial's id layout, see
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

    Returns a list of :class:`Generation`.
    """
    if mode not in ("sample", "greedy"):
        raise ConfigError(f"unknown mode {mode!r} for generate (sample or greedy; beam: beam_search)")
    _check_sampling(temperature, top_k)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"the number of samples must be a positive integer, got {n!r}")
    special = ids or special_ids(model, vocab)
    word, max_length, prefix, base, logp0, states = _start(model, vocab, special, prime, min_length,
                                                           max_length, prime_chunk)
    rng = _rng(rng, seed)
    C = model.config.vocab_size

    forbidden = np.zeros(C, bool)
    if special.unk is not None and not allow_unk:
        forbidden[special.unk] = True
    if word:
        forbidden[special.start] = True
    step = model.step_function(n)
    logp = np.repeat(logp0[None], n, axis=0)
    states = [np.repeat(np.asarray(s), n, axis=1) for s in states]
    out = [[] for _ in range(n)]
    lps = np.zeros(n)
    ended = np.zeros(n, bool)
    live = np.ones(n, bool)
    rows = np.arange(n)
    while live.any():
        length = base + len(out[int(np.argmax(live))])  # every live row has the same length
        forb = forbidden  # (C,): every live row has the same length, so one mask serves them all
        if word and length < min_length:
            forb = forbidden.copy()
            forb[special.end] = True
        if mode == "greedy":
            z = np.where(forb, -np.inf, logp)
            if np.any(np.all(np.isneginf(z), axis=1)):
                raise ConfigError("every token is forbidden here (check min_length and the vocabulary)")
            nxt = np.argmax(z, axis=1)
        else:
            nxt = _draw(adjust_distribution(logp, temperature, top_k, forb), rng)
        if word:
            stop = live & (nxt == special.end)
            lps[stop] += logp[rows[stop], special.end]
            ended |= stop
            live &= ~stop
        if length >= max_length:  # the token after the last allowed word was not END: cut off
            break
        for r in np.flatnonzero(live):
            out[r].append(int(nxt[r]))
        lps[live] += logp[rows[live], nxt[live]]
        if not live.any() or (not word and len(out[0]) >= max_length):
            break  # (char level: the distribution after the last character is not needed)
        feed = np.where(live, nxt, special.end if word else nxt).astype(np.int32)
        res = step(feed, *states)
        logp = np.asarray(res[0], dtype=np.float64)
        states = list(res[1:])

    result = []
    for r in range(n):
        tokens, text = _render(prefix + out[r], vocab, special)
        result.append(Generation(out[r], float(lps[r]), bool(ended[r]), list(prefix), tokens, text))
    return result


def generate_sentence(model, vocab=None, rng=None, **kwargs) -> Generation:
    """One sentence (or char-level passage): :func:`generate` with ``n=1``; same keyword arguments."""
    return generate(model, vocab, 1, rng, **kwargs)[0]


def _start(model, vocab, special, prime, min_length, max_length, prime_chunk):
    """Shared start of sampling and beam search: length defaults and checks, the prime fed once.

    Returns ``(word, max_length, prefix, base, logp0, states)``: whether the model is word level,
    the resolved length limit, the prime's part of the current sentence, its length (word level),
    and log p(next token) (C,) with the states after the prime.
    """
    word = special.level == "word"
    if max_length is None:
        max_length = DEFAULT_MAX_WORDS if word else DEFAULT_MAX_CHARS
    _check_lengths(min_length, max_length)
    fed = _prime_ids(model, vocab, special, prime)
    prefix = _sentence_prefix(fed, special, vocab)
    logp0, states = prime_state(model, fed, chunk=prime_chunk)
    return word, max_length, prefix, (len(prefix) if word else 0), logp0, states


def _check_lengths(min_length, max_length):
    for name, v in (("min_length", min_length), ("max_length", max_length)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ConfigError(f"{name} must be an integer >= 0, got {v!r}")
    if max_length < 1:
        raise ConfigError(f"max_length must be at least 1, got {max_length}")
    if min_length > max_length:
        raise ConfigError(f"min_length ({min_length}) is larger than max_length ({max_length})")


# --------------------------------------------------------------------------------------------------
# beam search
# --------------------------------------------------------------------------------------------------


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
    word, max_length, prefix, base, logp0, states0 = _start(model, vocab, special, prime, min_length,
                                                            max_length, prime_chunk)
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
        h.words, h.text = _render(prefix + h.tokens, vocab, special)
    return ranked


# --------------------------------------------------------------------------------------------------
# scoring and perplexity
# --------------------------------------------------------------------------------------------------


class SentenceScores(NamedTuple):
    """``logprob`` (N,) float64: log p(s[1:] | s[0]) per sentence; ``ntok`` (N,) int: predicted tokens."""

    logprob: np.ndarray
    ntok: np.ndarray

    @property
    def perplexity(self) -> np.ndarray:
        """Per-sentence perplexity exp(-logprob / ntok) (nan for a sentence with nothing predicted)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.exp(-self.logprob / np.where(self.ntok > 0, self.ntok, np.nan))


def _bucket(n: int, minimum: int = 8) -> int:
    """Padded length for the static-shape (JAX) linker: the next power of two, at least ``minimum``."""
    return max(minimum, 1 << max(0, int(n) - 1).bit_length())


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
        L = _bucket(longest) if model.static else longest
        B = batch_size if model.static else len(idx)
        x = np.zeros((L, B), np.int32)
        y = np.zeros((L, B), np.int32)
        mask = np.zeros((L, B), np.float32)
        for b, i in enumerate(idx):
            n = ntok[i]
            x[:n, b] = seqs[i][:-1]
            y[:n, b] = seqs[i][1:]
            mask[:n, b] = 1
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
        x = np.zeros((L, 1), np.int32)
        y = np.zeros((L, 1), np.int32)
        mask = np.zeros((L, 1), np.float32)
        x[: len(xs), 0], y[: len(ys), 0], mask[: len(xs), 0] = xs, ys, 1
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

    ``sentences``: an :class:`~rnnlm.corpus.EncodedText` (its OOV and word counts are used) or a list
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
    nll = -logprob / n
    return PerplexityResult(math.exp(nll), nll, logprob, n, len(sentences), int(oov or 0), words, level)


# --------------------------------------------------------------------------------------------------
# fill-in-the-blank (bidirectional models)
# --------------------------------------------------------------------------------------------------

def fill_distribution(model, sentence, position: int) -> np.ndarray:
    """log p(w at ``position`` | the rest) (C,) float32 for an encoded sentence ``[START, ..., END]``;
    ``1 <= position <= len(sentence) - 2``. The token at ``position`` itself is never looked at."""
    if not model.config.bidirectional:
        raise ConfigError("fill-in-the-blank needs a bidirectional model (rnnlm train --task fill)")
    s = np.asarray(sentence, dtype=np.int32).reshape(-1)
    if not 1 <= position <= len(s) - 2:
        raise ConfigError(f"the blank must be inside the sentence (position 1..{len(s) - 2}), got {position}")
    L = _bucket(len(s)) if model.static else len(s)
    x = np.zeros((L, 1), np.int32)
    mask = np.zeros((L, 1), np.float32)
    x[: len(s), 0] = s
    mask[: len(s), 0] = 1  # padding keeps the state: the backward scan starts at the sentence's END
    return model.distribution(x, mask)[position - 1, 0]


def fill(
    model,
    vocab,
    text,
    top_k: int = 5,
    *,
    settings: dict | None = None,
    splitter=None,
    allow_unk: bool = False,
) -> list:
    """The ``top_k`` most probable words for the blank (``___``) in ``text``: list of (word, prob).

    ``text`` is tokenized like the training corpus (``settings``/``splitter`` as in
    :func:`encode_prime`; default: whitespace) and wrapped in SENTENCE_START/SENTENCE_END; the blank
    must be one token of ``text``. Probabilities are the model's, unscaled and not renormalised;
    SENTENCE_START/SENTENCE_END are never proposed, the unknown token only with ``allow_unk``.
    """
    from .corpus import Corpus, Vocabulary

    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ConfigError(f"top_k must be a positive integer, got {top_k!r}")
    if vocab is None or vocab.start_index is None:
        raise ConfigError("fill-in-the-blank needs a word-level model with a vocabulary")
    if not model.config.bidirectional:
        raise ConfigError("fill-in-the-blank needs a bidirectional model (rnnlm train --task fill)")
    C = len(vocab)
    # An extended vocabulary gives the blank its own id C, so it survives tokenization and encoding.
    blank_vocab = Vocabulary([*vocab.index_to_word, BLANK], vocab.unknown_token)
    settings = {"format": "lines", "tokenizer": "whitespace", **dict(settings or {}), "level": "word"}
    corpus = Corpus(blank_vocab, [], "word", settings=settings, splitter=splitter)
    sentences = corpus.encode(_normalise_blank(text)).sentences
    hits = [(i, int(p)) for i, s in enumerate(sentences) for p in np.flatnonzero(s == C)]
    if len(hits) != 1:
        raise ConfigError(f"put exactly one blank ({BLANK}) in the text, found {len(hits)}")
    i, pos = hits[0]
    sentence = sentences[i].copy()
    sentence[pos] = vocab.unk_index  # never read: neither direction has seen the blank
    logp = fill_distribution(model, sentence, pos).astype(np.float64)
    banned = [vocab.start_index, vocab.end_index] + ([] if allow_unk else [vocab.unk_index])
    logp[banned] = -np.inf
    top = np.argsort(-logp, kind="stable")[: min(top_k, C - len(banned))]
    return [(vocab.index_to_word[j], float(np.exp(logp[j]))) for j in top]


def _normalise_blank(text: str) -> str:
    import re

    # "___" of any length >= 3, also glued to punctuation ("___."), becomes one separate token.
    return re.sub(r"_{3,}", f" {BLANK} ", text)
