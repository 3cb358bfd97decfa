"""Fill-in-the-blank with a bidirectional model: the distribution of the word at the blank given the
forward state before it and the backward state after it (:func:`fill`, :func:`fill_distribution`).
"""

from __future__ import annotations

import re

import numpy as np

from rnnlm.data.batching import bucket_length, pad_columns
from rnnlm.errors import ConfigError

#: The blank of a fill-in-the-blank query: a token of three or more underscores.
BLANK = "___"


def fill_distribution(model, sentence, position: int) -> np.ndarray:
    """log p(w at ``position`` | the rest) (C,) float32 for an encoded sentence ``[START, ..., END]``;
    ``1 <= position <= len(sentence) - 2``. The token at ``position`` itself is never looked at."""
    if not model.config.bidirectional:
        raise ConfigError("fill-in-the-blank needs a bidirectional model (rnnlm train --task fill)")
    s = np.asarray(sentence, dtype=np.int32).reshape(-1)
    if not 1 <= position <= len(s) - 2:
        raise ConfigError(f"the blank must be inside the sentence (position 1..{len(s) - 2}), got {position}")
    L = bucket_length(len(s)) if model.static else len(s)
    x, mask = pad_columns([s], L)  # padding keeps the state: the backward scan starts at the sentence's END
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
    from rnnlm.data import Corpus, Vocabulary

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
    # "___" of any length >= 3, also glued to punctuation ("___."), becomes one separate token.
    return re.sub(r"_{3,}", f" {BLANK} ", text)
