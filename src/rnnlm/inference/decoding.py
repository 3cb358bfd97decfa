"""What every decoder shares: the special token ids, the prime, and the state after it.

Generation is incremental: :meth:`~rnnlm.models.lm.LanguageModel.step_function` compiles one step
``step(tokens (B,), *states) -> [logp (B, C), *new_states]`` and the decoders advance the hidden state
``s_t`` one token per call, so the cost per token does not depend on how many tokens came before. A
prime is fed once (:func:`prime_state`); the state after it is carried into generation, never recomputed.

The tutorial's rule at word level: start from SENTENCE_START, draw until SENTENCE_END, never emit
UNKNOWN_TOKEN (its probability is removed and the rest renormalised, which is what the tutorial's "draw
again while it is UNKNOWN_TOKEN" loop amounts to). SENTENCE_START is never emitted either. ``min_length``:
SENTENCE_END is not allowed before the sentence has that many words. ``max_length``: a sentence has at
most that many words; if the token drawn after the last allowed word is not SENTENCE_END the sentence is
returned cut off (``ended=False``). At char level there are no start/end tokens: ``max_length`` characters
are generated after the prime (default prime: a newline, i.e. the start of a line).

Shapes: token ids are int32; states are lists of (layers, B, H) float32 arrays (the LSTM has two);
``logp`` rows are (C,) log-probabilities.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnnlm.data.batching import pad_columns
from rnnlm.errors import ConfigError

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
    checkpoint (see :class:`rnnlm.data.corpus.Corpus`); without them words are split on whitespace.
    """
    from rnnlm.data import Corpus

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


def prime_ids(model, vocab, special: SpecialIds, prime) -> np.ndarray:
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


def sentence_prefix(ids: np.ndarray, special: SpecialIds, vocab) -> list[int]:
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
            x, mask = pad_columns([piece], L)
            states = model.evaluate(x, x, mask, states)[3]
    else:
        for t in head:
            states = list(step(np.array([t], np.int32), *states)[1:])
    out = step(tokens[-1:], *states)
    return np.asarray(out[0])[0], list(out[1:])


def render(ids, vocab, special: SpecialIds) -> tuple[list | None, str]:
    if vocab is None:
        return None, " ".join(str(i) for i in ids)
    tokens = vocab.decode(ids) if len(ids) else []
    return tokens, ("".join(tokens) if special.level == "char" else " ".join(tokens))


def start_decoding(model, vocab, special, prime, min_length, max_length, prime_chunk):
    """Shared start of sampling and beam search: length defaults and checks, the prime fed once.

    Returns ``(word, max_length, prefix, base, logp0, states)``: whether the model is word level,
    the resolved length limit, the prime's part of the current sentence, its length (word level),
    and log p(next token) (C,) with the states after the prime.
    """
    word = special.level == "word"
    if max_length is None:
        max_length = DEFAULT_MAX_WORDS if word else DEFAULT_MAX_CHARS
    check_lengths(min_length, max_length)
    fed = prime_ids(model, vocab, special, prime)
    prefix = sentence_prefix(fed, special, vocab)
    logp0, states = prime_state(model, fed, chunk=prime_chunk)
    return word, max_length, prefix, (len(prefix) if word else 0), logp0, states


def check_lengths(min_length, max_length):
    for name, v in (("min_length", min_length), ("max_length", max_length)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ConfigError(f"{name} must be an integer >= 0, got {v!r}")
    if max_length < 1:
        raise ConfigError(f"max_length must be at least 1, got {max_length}")
    if min_length > max_length:
        raise ConfigError(f"min_length ({min_length}) is larger than max_length ({max_length})")
