"""``rnnlm bench quality``: held-out quality of rnnlm's defaults against the yardsticks, in one process.

For each corpus: ``rnnlm train`` with its defaults and a time budget (nothing else set), the interpolated
Kneser–Ney n-grams of orders 2–5 and a unigram on the same training split, the RNN + KN mixture, and --
when PyTorch is installed -- PyTorch's usual recipe (:mod:`rnnlm.bench.torch_peer`) on the same split for
the same budget. Every number is nats per predicted token and perplexity on the same held-out tokens.

Corpora are ``NAME`` or ``NAME:LEVEL`` (``reddit``, ``tinyshakespeare:char``, ``tinyshakespeare:word``, or
a file). Character level holds out the last 10% of the text (char-rnn's split, scored as one stream);
word level holds out 5% for validation and scores the 5% test split sentence by sentence.
"""

from __future__ import annotations

import math
import tempfile
import time

from rnnlm.errors import ConfigError


def _spec(spec: str) -> tuple[str, str]:
    name, _, level = spec.partition(":")
    level = level or ("char" if name == "tinyshakespeare" else "word")
    if level not in ("word", "char"):
        raise ConfigError(f"corpus {spec!r}: the level must be word or char")
    return name, level


def _entry(nll: float, tokens: int, **extra) -> dict:
    return {"nll": nll, "perplexity": math.exp(min(nll, 700.0)), "tokens": tokens, **extra}


def quality_one(
    spec: str, budget_s: float, torch: bool = True, seed: int = 0, progress: bool = False
) -> dict:
    """One corpus: every candidate's held-out score (see the module docstring)."""
    from rnnlm.data import prepare
    from rnnlm.inference.interpolation import interpolated, token_logprobs
    from rnnlm.models.ngram import KneserNey, Unigram
    from rnnlm.training.api import train
    from rnnlm.training.config import TrainConfig

    name, level = _spec(spec)
    corpus = prepare(name, level=level, progress=False)
    char = level == "char"
    fractions = (
        {"valid_fraction": 0.1, "test_fraction": 0.0}
        if char
        else {"valid_fraction": 0.05, "test_fraction": 0.05}
    )
    held = "valid" if char else "test"
    with tempfile.TemporaryDirectory() as out:
        t0 = time.monotonic()
        result = train(
            corpus, out, config=TrainConfig(time_budget=budget_s, seed=seed), progress=progress, **fractions
        )
        wall = time.monotonic() - t0
        corpus = result.corpus  # with the training vocabulary (words seen once in training folded)
        splits, model, st = result.splits, result.model, result.state
        heldout = splits[held]
        seqs = heldout.stream() if char else heldout.sentences
        V, start = len(corpus.vocab), (None if char else corpus.vocab.start_index)
        train_seqs = splits["train"].stream() if char else splits["train"].sentences
        ngram = KneserNey.load(f"{out}/ngram.npz")
        lp_rnn, lp_kn = token_logprobs(model, ngram, [seqs] if char else seqs, level)
        lam = st.get("interpolation", {}).get("lambda", 0.5)
    n = len(lp_rnn)
    mix = interpolated(lp_rnn, lp_kn, lam)
    rows = {
        "rnnlm": _entry(
            -lp_rnn.sum() / n,
            n,
            stopped=st["stopped"],
            steps=st["global_step"],
            epochs=st["epoch"],
            train_s=round(st["elapsed"], 1),
            compile_s=st.get("compile_s"),
            wall_s=round(wall, 1),
            model=model.config.to_dict(),
            parameters=model.n_parameters(),
        )
    }
    for order in (2, 3, 4, 5):
        kn = KneserNey(order).fit(train_seqs, V, stream=char, start_id=start)
        lp, k = kn.score(seqs, stream=char)
        rows[f"kn{order}"] = _entry(-lp / k, k)
    uni = Unigram().fit(train_seqs, V, stream=char, start_id=start)
    lp, k = uni.score(seqs, stream=char)
    rows["unigram"] = _entry(-lp / k, k)
    rows[f"rnnlm+kn{ngram.order}"] = _entry(mix["nll"], n, **{"lambda": lam})
    if torch:
        from rnnlm.bench import torch_peer

        if torch_peer.available():
            if char:
                res = torch_peer.train_char(train_seqs, seqs, V, budget_s, seed=seed)
            else:
                res = torch_peer.train_word(
                    splits["train"].sentences, splits["valid"].sentences, seqs, V, budget_s, seed=seed
                )
            rows["torch"] = _entry(res.pop("nll"), res.pop("tokens"), **res)
        else:
            rows["torch"] = {"skipped": "PyTorch is not installed (pip install -e '.[torch]')"}
    return {
        "corpus": spec,
        "level": level,
        "held_out": held,
        "budget_s": budget_s,
        "vocab_size": V,
        "train_tokens": splits["train"].n_tokens,
        "results": rows,
    }


def bench_quality(
    corpora=("reddit", "tinyshakespeare:char", "tinyshakespeare:word"),
    budget_s: float = 300.0,
    torch: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """:func:`quality_one` for every corpus, with the machine it ran on."""
    from rnnlm.bench.machine import finish, load_now

    load_before = load_now()
    out = {
        "benchmark": "quality",
        "budget_s": budget_s,
        "corpora": [
            quality_one(spec, budget_s, torch=torch, seed=seed, progress=progress) for spec in corpora
        ],
    }
    return finish(out, load_before)
