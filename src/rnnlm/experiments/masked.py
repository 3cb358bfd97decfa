"""Top-1 masked-word prediction: what a model guesses for each inner word of a sentence, its
accuracy, and the unigram baseline that guesses without any context."""

from __future__ import annotations

import numpy as np

from rnnlm.data.batching import pad_columns
from rnnlm.errors import ConfigError

__all__ = ["masked_word_accuracy", "masked_word_predictions", "unigram_baseline"]


def _top1(model, x, mask, banned):
    """(L-2, B) top-1 guesses for the word at t = 1..L-2 (row t-1), never one of ``banned``.

    :meth:`~rnnlm.models.lm.LanguageModel.distribution` gives, for the bidirectional model, row t-1 =
    p(w_t | both sides); for a left-to-right model row t-1 = p(w_t | w_<t).  Neither sees w_t.
    """
    logp = np.array(model.distribution(x, mask)[: x.shape[0] - 2])  # writable copy
    if banned:
        logp[..., list(banned)] = -np.inf
    return np.argmax(logp, axis=-1).astype(np.int32)


def _banned_ids(vocab):
    return tuple(sorted({i for i in (vocab.start_index, vocab.end_index, vocab.unk_index) if i is not None}))


def masked_word_predictions(model, sentences, banned=(), batch_size=32, lengths=(16, 32, 64)) -> list:
    """Top-1 guess for every inner word of every sentence, as if that word alone were masked.

    ``sentences``: int32 arrays ``[START, w1, ..., wn, END]`` (n >= 1) no longer than
    ``max(lengths)``.  Returns one (n,) int32 array per sentence: entry t-1 is the guess for w_t,
    never one of ``banned``.  A bidirectional model sees both sides of w_t, a left-to-right model
    only its left side; neither sees w_t itself.  Sentences are padded to the smallest of
    ``lengths`` that fits (under JAX one compiled function per length).
    """
    lengths = tuple(sorted(int(n) for n in lengths))
    seqs = [np.asarray(s, np.int32).reshape(-1) for s in sentences]
    for s in seqs:
        if len(s) < 3:
            raise ConfigError("every sentence needs at least one word between START and END")
        if len(s) > lengths[-1]:
            raise ConfigError(f"sentence of {len(s)} tokens is longer than the longest length {lengths[-1]}")
    out = [None] * len(seqs)
    groups = {}
    for i, s in enumerate(seqs):
        groups.setdefault(next(n for n in lengths if n >= len(s)), []).append(i)
    for L, idx in sorted(groups.items()):
        for k in range(0, len(idx), batch_size):
            part = idx[k: k + batch_size]
            B = batch_size if model.static else len(part)
            x, mask = pad_columns([seqs[i] for i in part], L, B)
            pred = _top1(model, x, mask, tuple(banned))
            for b, i in enumerate(part):
                out[i] = pred[: len(seqs[i]) - 2, b].copy()
    return out


def masked_word_accuracy(model, sentences, vocab, batch_size=32, lengths=(16, 32, 64)) -> dict:
    """Top-1 masked-word accuracy over every in-vocabulary inner word of ``sentences``.

    Guesses exclude SENTENCE_START, SENTENCE_END and the unknown token; words that are the unknown
    token are not scored (a guess cannot match them).  Returns ``{"accuracy", "correct",
    "positions", "sentences"}``.
    """
    banned = _banned_ids(vocab)
    preds = masked_word_predictions(model, sentences, banned, batch_size, lengths)
    correct = positions = 0
    for s, p in zip(sentences, preds, strict=True):
        target = np.asarray(s, np.int32)[1:-1]
        scored = target != vocab.unk_index
        correct += int(np.sum((p == target) & scored))
        positions += int(np.sum(scored))
    return {"accuracy": correct / positions if positions else float("nan"), "correct": correct,
            "positions": positions, "sentences": len(preds)}


def unigram_baseline(train_sentences, test_sentences, vocab) -> dict:
    """Accuracy of always guessing the most frequent training word (what masked-word accuracy
    is worth without any context), scored like :func:`masked_word_accuracy`."""
    banned = _banned_ids(vocab)
    counts = np.bincount(np.concatenate([np.asarray(s, np.int64) for s in train_sentences]),
                         minlength=len(vocab)).astype(np.float64)
    counts[list(banned)] = -1
    guess = int(np.argmax(counts))
    targets = np.concatenate([np.asarray(s, np.int64)[1:-1] for s in test_sentences])
    scored = targets != vocab.unk_index
    correct = int(np.sum((targets == guess) & scored))
    positions = int(np.sum(scored))
    accuracy = correct / positions if positions else float("nan")
    return {"word": vocab.index_to_word[guess], "accuracy": accuracy, "correct": correct,
            "positions": positions}
