"""The yardsticks a trained model is judged against: an interpolated Kneser–Ney n-gram and a unigram,
trained on the same training split and scored on the same held-out splits with the one perplexity.

Word level: KN order 3 (the classic trigram), sentences scored from SENTENCE_START. Character level: KN
order 5 (a trigram of characters is no yardstick), the split scored as one stream.
"""

from __future__ import annotations

import numpy as np

from rnnlm.inference.scoring import perplexity_of
from rnnlm.models.ngram import KneserNey, Unigram

#: KN order by level.
DEFAULT_ORDER = {"word": 3, "char": 5}


def _data(corpus):
    """``(sequences, stream)`` as the n-gram models take them."""
    if corpus.level == "char":
        return corpus.stream(), True
    return corpus.sentences, False


def fit_baselines(train, order: int | None = None) -> dict:
    """``{"kn": KneserNey, "unigram": Unigram}`` fitted on ``train`` (a prepared corpus split)."""
    order = order or DEFAULT_ORDER[train.level]
    seqs, stream = _data(train)
    V, start = len(train.vocab), (None if stream else train.vocab.start_index)
    models = {
        "kn": KneserNey(order).fit(seqs, V, stream=stream, start_id=start),
        "unigram": Unigram().fit(seqs, V, stream=stream, start_id=start),
    }
    meta = {k: v for k, v in train.metadata().items() if k != "stats"}  # vocabulary and tokenization
    for m in models.values():
        m.corpus_meta = meta
    return models


def score_baselines(models: dict, corpus) -> dict:
    """Perplexity of each baseline on ``corpus``: ``{"kn": ..., "unigram": ..., "tokens": n}``."""
    seqs, stream = _data(corpus)
    out = {}
    for name, m in models.items():
        logprob, n = m.score(seqs, stream=stream)
        out[name], out["tokens"] = perplexity_of(-logprob, n), n
    return out


def baselines(train, splits: dict, order: int | None = None) -> tuple[dict, dict]:
    """Fit on ``train`` and score every non-empty split in ``splits`` (name -> corpus).

    Returns ``(models, report)``; ``report`` = ``{"kn_order": n, "valid": {"kn", "unigram", "tokens"},
    "test": {...}}`` -- what ``rnnlm train`` prints, logs and stores in checkpoints.
    """
    models = fit_baselines(train, order)
    report = {"kn_order": models["kn"].order}
    for name, corpus in splits.items():
        if corpus is not None and len(corpus):
            report[name] = score_baselines(models, corpus)
    return models, report


def describe(report: dict | None, split: str = "valid", mixture: dict | None = None) -> str:
    """``KN-3 180.20, unigram 620.90; RNN+KN-3 150.10 at λ=0.71`` for one split of a :func:`baselines`
    report and of an :func:`interpolation` ('' when absent)."""
    if not report or split not in report:
        return ""
    r = report[split]
    text = f"KN-{report['kn_order']} {r['kn']:.2f}, unigram {r['unigram']:.2f}"
    if mixture and split in mixture:
        text += (
            f"; RNN+KN-{report['kn_order']} {mixture[split]['interpolated']:.2f} at λ={mixture['lambda']:.2f}"
        )
    return text


def interpolation(trainer, model, ngram, splits: dict) -> dict:
    """The RNN ``model`` mixed with the n-gram (:mod:`rnnlm.inference.interpolation`): λ tuned on the
    validation split, then every split scored at that λ. ``{"lambda", "valid": {...}, "test": {...}}``."""
    from rnnlm.inference.interpolation import interpolated, tune_lambda

    def both(corpus):
        seqs, stream = _data(corpus)
        lp_ngram = np.concatenate([np.zeros(0), *ngram.token_logprobs(seqs, stream=stream)])
        # whatever the training batches were: characters as one stream, words sentence by sentence
        return trainer.token_logprobs(corpus, model, stream=stream), lp_ngram

    valid = both(splits["valid"])
    lam = tune_lambda(*valid)
    out = {"lambda": lam, "valid": interpolated(*valid, lam)}
    if splits.get("test") is not None and len(splits["test"]):
        out["test"] = interpolated(*both(splits["test"]), lam)
    return out
