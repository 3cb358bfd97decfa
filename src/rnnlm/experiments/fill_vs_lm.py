"""Part 1's bidirectional RNN as a fill-in-the-blank model against a left-to-right language model:
:func:`fill_vs_lm`.

Both models have the same size (same cell, hidden and embedding sizes, layers), are trained for
the same wall time, and are scored by top-1 masked-word accuracy on held-out sentences: for the
word ``w_t`` of a sentence, the bidirectional model predicts from ``w_<t`` and ``w_>t``, the
language model from ``w_<t`` only (argmax of ``p(w | w_<t)``).
"""

from __future__ import annotations

import numpy as np

from rnnlm.errors import ConfigError
from rnnlm.experiments.common import (
    StepClock,
    bucket_lengths,
    check_budget,
    check_positive,
    load_corpus,
    runtime_info,
)
from rnnlm.experiments.masked import masked_word_accuracy, unigram_baseline

__all__ = ["fill_vs_lm"]


def fill_vs_lm(
    corpus="tinyshakespeare",
    time_budget=60.0,
    hidden=128,
    *,
    cell="gru",
    layers=1,
    embedding=64,
    vocab_size=4000,
    optimizer="adam",
    lr=0.002,
    clip=5.0,
    batch_size=32,
    max_length=32,
    buckets=(16, 32),
    test=None,
    test_fraction=0.1,
    max_test_sentences=2000,
    max_steps=None,
    lm_hidden=None,
    seed=0,
    linker=None,
    progress=False,
) -> dict:
    """Train a bidirectional fill model and a left-to-right LM of the same size for the same
    training time, then compare their top-1 masked-word accuracy on held-out sentences.

    Args:
        corpus: a :class:`~rnnlm.data.corpus.Corpus` or a name/path for :func:`rnnlm.data.corpus.prepare`
            (word level, ``vocab_size``).
        time_budget: seconds of training steps *per model* (compilation excluded); the two models
            take steps in turn, the one with less training time so far first, so a change in
            machine load affects both alike.  None: stop by ``max_steps`` only.
        hidden, cell, layers, embedding: the size of both models (per direction for the
            bidirectional one, which therefore has about twice the recurrent parameters).
        optimizer, lr, clip, batch_size: training, the same for both.
        max_length, buckets: training sentences are padded to a bucket; the bidirectional model
            reads sentences cut to ``max_length`` tokens, the LM pieces of at most that length.
            Test sentences longer than ``max_length`` are not scored (by either model).
        test: held-out sentences (a Corpus or a list of int32 arrays) sharing ``corpus``'s
            vocabulary; default: a ``test_fraction`` split of ``corpus`` (seeded).
        max_test_sentences: score at most this many (the first ones).
        max_steps: also stop each model after this many steps.
        lm_hidden: the LM's hidden size if not ``hidden`` (e.g. to match the fill model's parameter
            count instead of its layer sizes).

    Returns ``{"fill": {...}, "lm": {...}, "margin", "unigram_baseline", "settings", "corpus",
    "runtime"}``; each model's
    dict holds ``accuracy``, ``correct``, ``positions``, ``parameters``, ``final_train_loss`` (mean of
    its last 50 step losses) and its ``timing``.
    """
    from rnnlm import engine
    from rnnlm.data import Corpus
    from rnnlm.models.lm import LanguageModel, ModelConfig
    from rnnlm.training.config import TrainConfig
    from rnnlm.training.optim import make_optimizer

    check_budget(time_budget, max_steps)
    for name, v in (
        ("hidden", hidden),
        ("batch_size", batch_size),
        ("max_length", max_length),
        ("max_test_sentences", max_test_sentences),
    ):
        check_positive(name, v)
    if max_length < 3:
        raise ConfigError(f"max_length must be at least 3 (START, a word, END), got {max_length}")
    data = load_corpus(corpus, vocab_size=vocab_size)
    if data.vocab.start_index is None:
        raise ConfigError("fill-vs-lm needs a word-level corpus (SENTENCE_START/END)")
    if test is None:
        parts = data.split(valid=0.0, test=test_fraction, seed=seed)
        train, test_sents = parts["train"], parts["test"].sentences
    else:
        train = data
        test_sents = test.sentences if isinstance(test, Corpus) else list(test)
    test_sents = [np.asarray(s, np.int32) for s in test_sents if 3 <= len(s) <= max_length]
    test_sents = test_sents[:max_test_sentences]
    if not test_sents:
        raise ConfigError(f"no held-out sentence of 3..{max_length} tokens to score")
    buckets = bucket_lengths(buckets, max_length)
    linker = linker or engine.default_linker()
    runners = {}
    for name, bidir in (("fill", True), ("lm", False)):
        size = hidden if bidir or not lm_hidden else lm_hidden
        cfg = ModelConfig(
            vocab_size=len(data.vocab),
            hidden_dim=size,
            cell=cell,
            layers=layers,
            embedding_dim=embedding,
            bidirectional=bidir,
        )
        model = LanguageModel(cfg, seed=seed, linker=linker)
        model.set_optimizer(make_optimizer(optimizer, lr, clip=clip))
        runners[name] = StepClock(
            model,
            train,
            TrainConfig(
                optimizer=optimizer,
                lr=lr,
                clip=clip,
                batch_size=batch_size,
                max_length=max_length,
                buckets=buckets,
                batching="sentences",
                schedule="constant",
                seed=seed,
            ),
        )

    def finished(r):
        return (time_budget is not None and r.clock >= time_budget) or (
            max_steps is not None and r.steps >= max_steps
        )

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=time_budget or max_steps,
            unit="s" if time_budget else "step",
            leave=False,
            desc="fill vs lm",
            dynamic_ncols=True,
        )
    while True:
        live = [r for r in runners.values() if not finished(r)]
        if not live:
            break
        min(live, key=lambda r: r.clock).step()  # the one behind goes next: equal training time
        if bar is not None:
            lag = min(runners.values(), key=lambda r: r.clock if time_budget else r.steps)
            bar.n = round(lag.clock, 1) if time_budget else lag.steps
            bar.set_postfix({k: f"{np.mean(r.losses[-50:]):.3f}" for k, r in runners.items()})
            bar.refresh()
    if bar is not None:
        bar.close()
    result = {}
    for name, r in runners.items():
        acc = masked_word_accuracy(r.model, test_sents, data.vocab, batch_size, buckets)
        result[name] = {
            **acc,
            "parameters": r.model.n_parameters(),
            "final_train_loss": round(float(np.mean(r.losses[-50:])), 5),
            "timing": r.timing(),
        }
    result["margin"] = result["fill"]["accuracy"] - result["lm"]["accuracy"]
    result["unigram_baseline"] = unigram_baseline(train.sentences, test_sents, data.vocab)
    result["settings"] = {
        "cell": cell,
        "layers": layers,
        "hidden": hidden,
        "lm_hidden": lm_hidden or hidden,
        "embedding": embedding,
        "optimizer": optimizer,
        "lr": lr,
        "clip": clip,
        "batch_size": batch_size,
        "max_length": max_length,
        "buckets": list(buckets),
        "time_budget_s": time_budget,
        "max_steps": max_steps,
        "seed": seed,
    }
    result["corpus"] = {
        "train_sentences": len(train),
        "test_sentences_scored": len(test_sents),
        "vocab_size": len(data.vocab),
        "source": str(data.stats.get("source")),
    }
    result["runtime"] = runtime_info(runners["fill"].model)
    return result
