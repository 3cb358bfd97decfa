"""The yardsticks a trained model is judged against: an interpolated Kneser–Ney n-gram and a unigram,
trained on the same training split and scored on the same held-out splits with the one perplexity.

Word level: KN order 3 (the classic trigram), sentences scored from SENTENCE_START. Character level: KN
order 5 (a trigram of characters is no yardstick), the split scored as one stream.
"""

from __future__ import annotations

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
    return {"kn": KneserNey(order).fit(seqs, V, stream=stream, start_id=start),
            "unigram": Unigram().fit(seqs, V, stream=stream, start_id=start)}


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


def describe(report: dict | None, split: str = "valid") -> str:
    """``KN-3 180.2, unigram 620.9`` for one split of a :func:`baselines` report ('' when absent)."""
    if not report or split not in report:
        return ""
    r = report[split]
    return f"KN-{report['kn_order']} {r['kn']:.2f}, unigram {r['unigram']:.2f}"
