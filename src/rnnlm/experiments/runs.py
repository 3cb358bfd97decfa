"""Experiments from the tutorial's part 4 and part 1, as functions that return plain dicts.

:func:`reproduce_part4`
    Part 4's model and training: a two-layer GRU (embedding 48, hidden 128, the ``hard_sigmoid``
    gate of the tutorial's code, output bias), RMSProp (decay 0.9, eps 1e-6, lr 0.001), vocabulary
    2000, full BPTT, sentences containing "http" dropped, one sentence per step (the tutorial's
    ``sgd_step(x, y, learning_rate, decay)``), trained on the reddit comments for a time budget.
    Returns the loss curve, generated sentences and the time of one training step.

:func:`fill_vs_lm`
    Part 1's bidirectional RNN as a fill-in-the-blank model against a left-to-right language model
    of the same size (same cell, hidden and embedding sizes, layers), both trained for the same
    wall time, scored by top-1 masked-word accuracy on held-out sentences: for the word ``w_t`` of
    a sentence, the bidirectional model predicts from ``w_<t`` and ``w_>t``, the language model
    from ``w_<t`` only (argmax of ``p(w | w_<t)``).

Timing: a budget counts training steps only.  The first step on each new batch shape compiles
the graph (under the JAX linker once per padded length; seconds each) and is reported as
``compile_s`` instead, and evaluation pauses the clock, so the two models of :func:`fill_vs_lm`
get the same amount of *training* time whatever their compile times.  Step times are
synchronised: each step's loss is read back before the clock stops (JAX dispatches
asynchronously).

Shapes follow :mod:`rnnlm.models.lm`: batches are time-major ``x``, ``mask`` (L, B).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from rnnlm.bench.speed import cpu_model
from rnnlm.data.batching import pad_columns
from rnnlm.errors import ConfigError

__all__ = [
    "PART4",
    "fill_vs_lm",
    "masked_word_accuracy",
    "masked_word_predictions",
    "reproduce_part4",
    "unigram_baseline",
]

#: The tutorial's part 4 settings (model, optimizer, data).
PART4 = {
    "cell": "gru", "embedding_dim": 48, "hidden_dim": 128, "layers": 2, "gate": "hard_sigmoid",
    "output_bias": True, "bptt_truncate": -1,
    "optimizer": "rmsprop", "lr": 0.001, "decay": 0.9, "eps": 1e-6,
    "vocab_size": 2000, "drop_containing": "http", "batch_size": 1,
}


# --------------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------------
def _check_budget(time_budget, max_steps):
    if time_budget is None and max_steps is None:
        raise ConfigError("give a time budget or a step limit (max_steps)")
    if time_budget is not None and not float(time_budget) > 0:
        raise ConfigError(f"time budget must be positive, got {time_budget}")
    if max_steps is not None and (isinstance(max_steps, bool) or int(max_steps) < 1):
        raise ConfigError(f"max_steps must be a positive integer, got {max_steps}")


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _buckets(buckets, max_length) -> tuple:
    """The padded lengths to use: the given ones up to ``max_length``, and ``max_length`` itself."""
    return tuple(sorted({int(b) for b in (buckets or ()) if 3 <= int(b) <= max_length} | {int(max_length)}))


def _load_corpus(corpus, **prepare_kwargs):
    from rnnlm.data import Corpus, prepare

    if isinstance(corpus, Corpus):
        return corpus
    return prepare(corpus, level="word", **prepare_kwargs)


def _runtime(model) -> dict:
    from rnnlm import engine

    info = {**engine.describe(), "linker": model.linker, "cpu": cpu_model(), "cpu_count": os.cpu_count()}
    if model.linker == "jax":
        import jax

        dev = jax.devices()[0]
        info["device"] = f"{dev.platform}:{getattr(dev, 'device_kind', '')}".rstrip(":")
    else:
        info["device"] = "cpu"
    return info


class _Runner:
    """One model's training: endless shuffled epochs of sentence batches, a step clock that
    excludes compilation, and the per-step record."""

    def __init__(self, model, corpus, batch_size, max_length, buckets, seed, fill):
        from rnnlm.data.batching import sentence_batches

        self.model, self.corpus = model, corpus
        self._batches = lambda epoch: sentence_batches(
            corpus.sentences, batch_size, max_length, buckets=buckets, shuffle=True, seed=seed,
            epoch=epoch, fill=fill)
        self.epoch, self.queue, self.epoch_len = 0, [], 1
        self.clock = 0.0  # seconds of training steps, compilation excluded
        self.compile_s = 0.0
        self.steps = 0
        self.tokens = 0
        self.losses = []  # mean loss per token of each step's batch (before its update)
        self.step_s = []  # (L, seconds) of every step that did not compile
        self._shapes = set()

    def step(self):
        if not self.queue:
            self.queue = list(self._batches(self.epoch))
            self.epoch_len = len(self.queue)
            self.epoch += 1
        x, y, mask = self.queue.pop(0)
        key = x.shape if self.model.static else None  # one compiled function per shape under JAX
        t0 = time.perf_counter()
        loss_sum, ntok, _, _ = self.model.train_step(x, y, mask)
        loss_sum, ntok = float(loss_sum), float(ntok)  # synchronises (JAX is asynchronous)
        dt = time.perf_counter() - t0
        if key in self._shapes:
            self.clock += dt
            self.step_s.append((x.shape[0], dt))
        else:
            self._shapes.add(key)
            self.compile_s += dt
        if not math.isfinite(loss_sum):
            raise ConfigError(f"training diverged (loss {loss_sum}) at step {self.steps + 1}; "
                              "lower the learning rate")
        self.steps += 1
        self.tokens += int(ntok)
        self.losses.append(loss_sum / max(ntok, 1.0))

    def timing(self) -> dict:
        times = np.array([s for _, s in self.step_s]) if self.step_s else np.zeros(0)
        by_len = {}
        for L, s in self.step_s:
            by_len.setdefault(int(L), []).append(s)
        return {
            "steps": self.steps,
            "epochs": round(self.epoch - len(self.queue) / self.epoch_len, 3) if self.steps else 0.0,
            "train_s": round(self.clock, 3),
            "compile_s": round(self.compile_s, 3),
            "ms_per_step": round(1e3 * float(np.median(times)), 3) if len(times) else None,
            "ms_per_step_mean": round(1e3 * float(times.mean()), 3) if len(times) else None,
            "ms_per_step_by_length": {L: round(1e3 * float(np.median(v)), 3)
                                      for L, v in sorted(by_len.items())},
            "tokens_per_s": round(self.tokens / self.clock, 1) if self.clock > 0 else None,
        }


def _mean_loss(model, sentences, batch_size):
    """Mean negative log-likelihood per predicted token over ``sentences`` (the one scoring path)."""
    from rnnlm.inference.scoring import perplexity

    return perplexity(model, sentences, batch_size=batch_size).nll


def _generate(model, vocab, rng, max_words):
    """One sampled sentence as a list of words (the tutorial's rule: from SENTENCE_START until
    SENTENCE_END, never UNKNOWN_TOKEN).  Uses :func:`rnnlm.inference.generate_sentence` when present."""
    try:
        from rnnlm.inference.sampling import generate_sentence
    except ImportError:
        generate_sentence = None
    special = {vocab.index_to_word[vocab.start_index], vocab.index_to_word[vocab.end_index]}
    if generate_sentence is not None:
        g = generate_sentence(model, vocab, rng=rng, max_length=max_words)
        return [w for w in (g.tokens or vocab.decode(g.ids)) if w not in special]
    # Minimal fallback: a loop over the compiled one-token step.
    step = model.step_function(1)
    states = model.initial_state(1)
    token, words = vocab.start_index, []
    banned = [vocab.start_index, vocab.unk_index]
    for _ in range(max_words):
        out = step(np.array([token], np.int32), *states)
        logp, states = np.asarray(out[0], np.float64)[0], list(out[1:])
        logp[banned] = -np.inf
        p = np.exp(logp - logp.max())
        token = int(rng.choice(len(p), p=p / p.sum()))
        if token == vocab.end_index:
            break
        words.append(vocab.index_to_word[token])
    return words


# --------------------------------------------------------------------------------------------------
# part 4
# --------------------------------------------------------------------------------------------------
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
    from rnnlm.training.optim import RMSProp

    _check_budget(time_budget, max_steps)
    for name, v in (("batch_size", batch_size), ("max_length", max_length),
                    ("eval_sentences", eval_sentences), ("evaluations", evaluations)):
        _positive(name, v)
    data = _load_corpus(corpus, vocab_size=vocab_size, drop_containing=PART4["drop_containing"])
    if data.vocab.start_index is None:
        raise ConfigError("part 4 needs a word-level corpus")
    if len(data) < 2:
        raise ConfigError(f"corpus has only {len(data)} sentences")
    buckets = _buckets(buckets, max_length)
    linker = linker or engine.default_linker()
    cfg = ModelConfig(vocab_size=len(data.vocab), hidden_dim=hidden, cell="gru", layers=layers,
                      embedding_dim=embedding, gate=gate, output_bias=True, bptt_truncate=-1)
    model = LanguageModel(cfg, seed=seed, linker=linker)
    model.set_optimizer(RMSProp(lr, decay=PART4["decay"], eps=PART4["eps"]))  # no clipping, as in part 4
    runner = _Runner(model, data, batch_size, max_length, buckets, seed, fill=False)
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
        "runtime": _runtime(model),
    }


# --------------------------------------------------------------------------------------------------
# masked-word prediction
# --------------------------------------------------------------------------------------------------
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
    for s, p in zip(sentences, preds):
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


# --------------------------------------------------------------------------------------------------
# bidirectional fill model vs left-to-right language model
# --------------------------------------------------------------------------------------------------
def fill_vs_lm(corpus="tinyshakespeare", time_budget=60.0, hidden=128, *, cell="gru", layers=1,
               embedding=64, vocab_size=4000, optimizer="adam", lr=0.002, clip=5.0, batch_size=32,
               max_length=32, buckets=(16, 32), test=None, test_fraction=0.1, max_test_sentences=2000,
               max_steps=None, lm_hidden=None, seed=0, linker=None, progress=False) -> dict:
    """Train a bidirectional fill model and a left-to-right LM of the same size for the same
    training time, then compare their top-1 masked-word accuracy on held-out sentences.

    Args:
        corpus: a :class:`~rnnlm.data.corpus.Corpus` or a name/path for :func:`rnnlm.data.prepare`
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
    from rnnlm.training.optim import make_optimizer

    _check_budget(time_budget, max_steps)
    for name, v in (("hidden", hidden), ("batch_size", batch_size), ("max_length", max_length),
                    ("max_test_sentences", max_test_sentences)):
        _positive(name, v)
    if max_length < 3:
        raise ConfigError(f"max_length must be at least 3 (START, a word, END), got {max_length}")
    data = _load_corpus(corpus, vocab_size=vocab_size)
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
    buckets = _buckets(buckets, max_length)
    linker = linker or engine.default_linker()
    runners = {}
    for name, bidir in (("fill", True), ("lm", False)):
        size = hidden if bidir or not lm_hidden else lm_hidden
        cfg = ModelConfig(vocab_size=len(data.vocab), hidden_dim=size, cell=cell, layers=layers,
                          embedding_dim=embedding, bidirectional=bidir)
        model = LanguageModel(cfg, seed=seed, linker=linker)
        model.set_optimizer(make_optimizer(optimizer, lr, clip=clip))
        runners[name] = _Runner(model, train, batch_size, max_length, buckets, seed, fill=bidir)

    def finished(r):
        return ((time_budget is not None and r.clock >= time_budget)
                or (max_steps is not None and r.steps >= max_steps))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=time_budget or max_steps, unit="s" if time_budget else "step", leave=False,
                   desc="fill vs lm", dynamic_ncols=True)
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
        result[name] = {**acc, "parameters": r.model.n_parameters(),
                        "final_train_loss": round(float(np.mean(r.losses[-50:])), 5),
                        "timing": r.timing()}
    result["margin"] = result["fill"]["accuracy"] - result["lm"]["accuracy"]
    result["unigram_baseline"] = unigram_baseline(train.sentences, test_sents, data.vocab)
    result["settings"] = {"cell": cell, "layers": layers, "hidden": hidden, "lm_hidden": lm_hidden or hidden,
                          "embedding": embedding,
                          "optimizer": optimizer, "lr": lr, "clip": clip, "batch_size": batch_size,
                          "max_length": max_length, "buckets": list(buckets), "time_budget_s": time_budget,
                          "max_steps": max_steps, "seed": seed}
    result["corpus"] = {"train_sentences": len(train), "test_sentences_scored": len(test_sents),
                        "vocab_size": len(data.vocab), "source": str(data.stats.get("source"))}
    result["runtime"] = _runtime(runners["fill"].model)
    return result
