"""The tutorial's part 4 reproduced: :func:`reproduce_part4`.

Part 4's model and training: a two-layer GRU (embedding 48, hidden 128, the ``hard_sigmoid``
gate of the tutorial's code, output bias), RMSProp (decay 0.9, eps 1e-6, lr 0.001), vocabulary
2000, full BPTT, sentences containing "http" dropped, one sentence per step (the tutorial's
``sgd_step(x, y, learning_rate, decay)``), trained on the reddit comments for a time budget.
Returns the loss curve, generated sentences and the time of one training step.
"""

from __future__ import annotations

import math

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

__all__ = ["PART4", "reproduce_part4"]

#: The tutorial's part 4 settings (model, optimizer, data).
PART4 = {
    "cell": "gru", "embedding_dim": 48, "hidden_dim": 128, "layers": 2, "gate": "hard_sigmoid",
    "output_bias": True, "bptt_truncate": -1,
    "optimizer": "rmsprop", "lr": 0.001, "decay": 0.9, "eps": 1e-6,
    "vocab_size": 2000, "drop_containing": "http", "batch_size": 1,
}


def _mean_loss(model, sentences, batch_size):
    """Mean negative log-likelihood per predicted token over ``sentences`` (the one scoring path)."""
    from rnnlm.inference.scoring import perplexity

    return perplexity(model, sentences, batch_size=batch_size).nll


def _generate(model, vocab, rng, max_words):
    """One sampled sentence as a list of words (the tutorial's rule: from SENTENCE_START until
    SENTENCE_END, never UNKNOWN_TOKEN), by :func:`rnnlm.inference.sampling.generate_sentence`."""
    from rnnlm.inference.sampling import generate_sentence

    special = {vocab.index_to_word[vocab.start_index], vocab.index_to_word[vocab.end_index]}
    g = generate_sentence(model, vocab, rng=rng, max_length=max_words)
    return [w for w in (g.tokens or vocab.decode(g.ids)) if w not in special]


def reproduce_part4(time_budget=120.0, corpus="reddit", *, max_steps=None, vocab_size=2000, hidden=128,
                    embedding=48, layers=2, gate="hard_sigmoid", lr=0.001, batch_size=1, max_length=64,
                    buckets=(16, 32, 64), eval_sentences=256, evaluations=8, n_sentences=5,
                    max_words=30, seed=0, linker=None, progress=False) -> dict:
    """Train the tutorial's part 4 GRU on reddit comments and generate sentences.

    Args:
        time_budget: seconds of training steps (compilation and evaluation not counted); None to
            stop by ``max_steps`` only.
        corpus: a :class:`~rnnlm.data.corpus.Corpus` or a name/path for :func:`rnnlm.data.prepare`
            (read with ``vocab_size`` and ``drop_containing="http"``).
        max_steps: stop after this many steps (whichever of the two limits comes first).
        vocab_size, hidden, embedding, layers, gate, lr: part 4's values by default (smaller ones
            make a quick check).
        batch_size: sentences per step; 1 is the tutorial's per-sentence step.
        max_length, buckets: sentences longer than ``max_length`` tokens are cut into pieces (a
            handful of reddit sentences); each batch is padded to the smallest bucket that fits
            (under JAX one compiled train function per bucket).
        eval_sentences: size of the fixed training sample the loss is measured on (the tutorial's
            ``calculate_loss`` on training data); ``evaluations``: how many times during training.
        n_sentences, max_words: sentences to generate afterwards and their length limit.
        linker: ``jax``/``c`` (default :func:`rnnlm.engine.default_linker`).

    Returns a dict: ``losses`` (list of ``{"step", "train_s", "loss"}``, the first at step 0),
    ``loss_start``, ``loss_end``, ``sentences`` (list of str), ``timing`` (``ms_per_step``: median
    time of one training step, synchronised; ``ms_per_step_by_length``; ``tokens_per_s``;
    ``compile_s``), ``config``, ``corpus`` (sentences, vocabulary, dropped sentences), ``runtime``.
    """
    from rnnlm import engine
    from rnnlm.models.lm import LanguageModel, ModelConfig
    from rnnlm.training.config import TrainConfig
    from rnnlm.training.optim import RMSProp

    check_budget(time_budget, max_steps)
    for name, v in (("batch_size", batch_size), ("max_length", max_length),
                    ("eval_sentences", eval_sentences), ("evaluations", evaluations)):
        check_positive(name, v)
    data = load_corpus(corpus, vocab_size=vocab_size, drop_containing=PART4["drop_containing"])
    if data.vocab.start_index is None:
        raise ConfigError("part 4 needs a word-level corpus")
    if len(data) < 2:
        raise ConfigError(f"corpus has only {len(data)} sentences")
    buckets = bucket_lengths(buckets, max_length)
    linker = linker or engine.default_linker()
    cfg = ModelConfig(vocab_size=len(data.vocab), hidden_dim=hidden, cell="gru", layers=layers,
                      embedding_dim=embedding, gate=gate, output_bias=True, bptt_truncate=-1)
    model = LanguageModel(cfg, seed=seed, linker=linker)
    model.set_optimizer(RMSProp(lr, decay=PART4["decay"], eps=PART4["eps"]))  # no clipping, as in part 4
    runner = StepClock(model, data, TrainConfig(optimizer="rmsprop", lr=lr, clip=0.0, batch_size=batch_size,
                                                max_length=max_length, buckets=buckets, batching="sentences",
                                                schedule="constant", seed=seed))
    probe = data.sentences[:eval_sentences]

    def evaluate():
        return {"step": runner.steps, "train_s": round(runner.clock, 3),
                "loss": round(_mean_loss(model, probe, 32), 5)}

    losses = [evaluate()]
    every_s = time_budget / evaluations if time_budget else None
    every_steps = max_steps / evaluations if max_steps else None
    next_s, next_step = every_s, every_steps
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=time_budget or max_steps, unit="s" if time_budget else "step", leave=False,
                   desc="part 4 GRU", dynamic_ncols=True)
    while True:
        runner.step()
        if bar is not None:
            bar.n = round(runner.clock, 1) if time_budget else runner.steps
            bar.set_postfix(loss=f"{np.mean(runner.losses[-50:]):.3f}", steps=runner.steps)
            bar.refresh()
        done = ((time_budget is not None and runner.clock >= time_budget)
                or (max_steps is not None and runner.steps >= max_steps))
        due = ((next_s is not None and runner.clock >= next_s)
               or (next_step is not None and runner.steps >= next_step))
        if done or due:
            losses.append(evaluate())
            while next_s is not None and runner.clock >= next_s:
                next_s += every_s
            while next_step is not None and runner.steps >= next_step:
                next_step += every_steps
        if done:
            break
    if bar is not None:
        bar.close()
    rng = np.random.default_rng(seed)
    sentences = [" ".join(_generate(model, data.vocab, rng, max_words)) for _ in range(n_sentences)]
    return {
        "losses": losses,
        "loss_start": losses[0]["loss"],
        "loss_end": losses[-1]["loss"],
        "uniform_loss": round(math.log(cfg.vocab_size), 5),
        "sentences": sentences,
        "timing": runner.timing(),
        "config": {**cfg.to_dict(), "optimizer": "rmsprop", "lr": lr, "decay": PART4["decay"],
                   "eps": PART4["eps"], "clip": 0.0, "batch_size": batch_size, "max_length": max_length,
                   "buckets": list(buckets), "time_budget_s": time_budget, "max_steps": max_steps,
                   "parameters": model.n_parameters(), "seed": seed},
        "corpus": {"sentences": len(data), "vocab_size": len(data.vocab),
                   "dropped_sentences": data.stats.get("dropped_sentences"),
                   "source": str(data.stats.get("source")), "loss_sample": len(probe)},
        "runtime": runtime_info(model),
    }
