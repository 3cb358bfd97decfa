"""The training loop: batches, optimizer steps, validation, schedule, checkpoints, progress.

:class:`Trainer` is the one loop of rnnlm (the CLI, :func:`rnnlm.train` and the experiments all run
it) on a :class:`~rnnlm.models.lm.LanguageModel`:

- validation perplexity every epoch (and every ``valid_every`` steps if asked), the best
  checkpoint kept as ``best.npz``, the latest as ``checkpoint.npz`` (atomic writes);
- learning-rate annealing (halve on a validation plateau: the tutorial's rule), early stopping
  after ``patience`` evaluations without improvement, a time budget as well as epochs;
- NaN/Inf in the loss or gradient norm is caught after the step that produced it: the last
  good parameters are restored and the learning rate halved (``on_nan='recover'``), or training
  stops (``'stop'``); a non-finite checkpoint is never written;
- a tqdm bar (loss, perplexity, words/s, ETA), a JSON-lines log and a loss-curve PNG beside
  the checkpoint; Ctrl-C saves a resumable checkpoint and returns normally;
- exact resume: batch order and dropout masks are pure functions of ``(seed, epoch, step)``,
  and the checkpoint holds parameters, optimizer state, learning rate, position and carried
  hidden state, so an interrupted and resumed run ends with the same parameters as an
  uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from rnnlm.data.batching import sentence_batches, stream_batches
from rnnlm.errors import CheckpointError, ConfigError, RnnlmError
from rnnlm.fileio import atomic_savefig, remove_stale_temps
from rnnlm.inference.scoring import perplexity_of
from rnnlm.training.checkpoint import read_checkpoint, save_checkpoint
from rnnlm.training.config import TrainConfig
from rnnlm.training.optim import make_optimizer


class NonFiniteError(RnnlmError):
    """The loss or gradient became NaN/Inf and ``on_nan='stop'``."""


class Trainer:
    """Train a :class:`~rnnlm.models.lm.LanguageModel` on prepared corpora.

    Args:
        model: the model (its ``optimizer`` is created here unless it has one).
        train, valid: :class:`~rnnlm.data.corpus.Corpus` splits (valid may be None).
        config: :class:`TrainConfig`.
        out_dir: folder for ``checkpoint.npz``, ``best.npz``, ``log.jsonl``, ``loss.png``
            (None: keep nothing on disk).
        corpus: the corpus whose vocabulary and tokenization settings checkpoints store (default:
            ``train``).
        progress: show a tqdm bar.
    """

    def __init__(self, model, train, valid=None, config=None, out_dir=None, corpus=None,
                 progress=True):
        self.model, self.train_corpus, self.valid_corpus = model, train, valid
        self.cfg = config or TrainConfig()
        self.out = Path(out_dir) if out_dir else None
        self.corpus = corpus if corpus is not None else train
        self.progress = progress
        if model.optimizer is None:
            model.set_optimizer(make_optimizer(self.cfg.optimizer, self.cfg.lr, clip=self.cfg.clip))
        cfgm = model.config
        mode = self.cfg.batching
        if mode == "auto":
            mode = "stream" if getattr(train, "level", "word") == "char" else "sentences"
        if cfgm.bidirectional and mode == "stream":
            raise ConfigError("the bidirectional fill model trains on sentences, not a stream")
        self.batching = mode
        self.state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_valid": None,
                      "bad_evals": 0, "words": 0, "elapsed": 0.0, "history": [], "stopped": None}
        self.states = None  # carried hidden state (stream batching)
        self._good = None  # last known-good (params, opt state) for NaN recovery

    # -- batches ------------------------------------------------------------------------------
    def _batches(self, corpus, epoch, shuffle=True, whole=False):
        """Training batches; ``whole=True`` (evaluation) never cuts a sentence into pieces, so
        every token is scored with its full left context (the perplexity definition)."""
        c = self.cfg
        if self.batching == "stream":
            return stream_batches(corpus.stream(), c.batch_size, c.bptt)
        max_length = c.max_length
        if whole:
            longest = max((len(s) for s in corpus.sentences), default=2)
            while max_length < longest:
                max_length *= 2  # a few extra bucket shapes at most
        return sentence_batches(corpus.sentences, c.batch_size, max_length, shuffle=shuffle,
                                seed=c.seed, epoch=epoch, fill=self.model.config.bidirectional)

    def _dropout(self, shape, epoch, step):
        cfgm = self.model.config
        if cfgm.dropout <= 0:
            return ()
        rng = np.random.default_rng([self.cfg.seed, epoch, step, 7])
        keep = 1.0 - cfgm.dropout
        H = cfgm.hidden_dim * len(cfgm.directions)
        return tuple((rng.random((*shape, H)) < keep).astype(np.float32) / np.float32(keep)
                     for _ in range(cfgm.layers))

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, corpus) -> dict:
        """Mean NLL per predicted token and perplexity over a corpus (no dropout)."""
        total, count = 0.0, 0.0
        states = None
        for x, y, mask in self._batches(corpus, 0, shuffle=False, whole=True):
            loss_sum, ntok, _, new_states = self.model.evaluate(x, y, mask, states)
            if self.batching == "stream":
                states = new_states
            total += loss_sum
            count += ntok
        return {"loss": total / max(count, 1.0), "perplexity": perplexity_of(total, count), "tokens": int(count)}

    # -- checkpoints --------------------------------------------------------------------------
    def _save(self, name):
        if self.out is None:
            return None
        st = dict(self.state)
        st["train_config"] = self.cfg.to_dict()
        st["batching"] = self.batching
        return save_checkpoint(self.out / name, self.model, corpus=self.corpus, train_state=st,
                               states=self.states if self.batching == "stream" else None)

    def resume(self, checkpoint):
        """Continue from a checkpoint written by this loop: parameters, optimizer state, position,
        carried state. ``checkpoint``: a path, or what :func:`~rnnlm.training.checkpoint.read_checkpoint`
        returned for it (so the file is read once)."""
        ck = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)
        path = ck["path"]
        if ck["tutorial"]:
            raise ConfigError(f"{path}: the tutorial's model file has no training state to resume")
        opt = self.model.optimizer
        saved = (ck["meta"].get("optimizer") or {}).get("name")
        if saved is not None and saved != opt.name:
            raise CheckpointError(f"{path}: was trained with the {saved} optimizer, this run uses {opt.name} "
                                  f"(resume with --optimizer {saved})")
        if ck["opt"]:  # a checkpoint without optimizer state starts a fresh optimizer
            for k, v in opt.get_state().items():
                if k not in ck["opt"]:
                    raise CheckpointError(f"{path}: optimizer state {k} is missing")
                if np.shape(ck["opt"][k]) != np.shape(v):
                    raise CheckpointError(f"{path}: optimizer state {k} has shape {np.shape(ck['opt'][k])}, "
                                          f"expected {np.shape(v)}")
        states = ck.get("states") or None
        if states is not None and self.batching == "stream":
            want = self.model.initial_state(self.cfg.batch_size)
            if len(states) != len(want) or any(np.shape(a) != np.shape(b) for a, b in zip(states, want)):
                raise CheckpointError(f"{path}: carried hidden state has shapes "
                                      f"{[np.shape(a) for a in states]}, expected {[np.shape(b) for b in want]} "
                                      f"(same --batch-size and model as the interrupted run?)")
        try:
            self.model.set_params(ck["params"])
        except ConfigError as e:
            raise CheckpointError(f"{path}: {e}") from None
        if ck["opt"]:
            opt.set_state(ck["opt"])
        st = ck["meta"].get("train_state") or {}
        for k in self.state:
            if k in st:
                self.state[k] = st[k]
        self.states = states
        return self

    def _repair_log(self):
        """Drop a torn last line of log.jsonl (a run killed mid-write) so every line parses."""
        log = self.out / "log.jsonl"
        if not log.exists():
            return
        with open(log, "r+b") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def _log(self, record):
        record = {"time": round(time.time(), 3), **record}
        self.state["history"].append(record)
        if self.out is None:
            return
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _plot(self):
        if self.out is None:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        hist = self.state["history"]
        tr = [(h["step"], h["train_loss"]) for h in hist if "train_loss" in h]
        va = [(h["step"], h["valid_loss"]) for h in hist if "valid_loss" in h]
        fig, ax = plt.subplots(figsize=(6, 4))
        if tr:
            ax.plot(*zip(*tr), label="train")
        if va:
            ax.plot(*zip(*va), "o-", label="valid")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy per token (nats)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_savefig(fig, self.out / "loss.png", dpi=100)
        plt.close(fig)

    # -- the loop -----------------------------------------------------------------------------
    def _remember_good(self):
        self._good = (self.model.get_params(), self.model.optimizer.get_state())

    def _recover(self):
        opt = self.model.optimizer
        if self.cfg.on_nan == "stop" or self._good is None:
            raise NonFiniteError("loss or gradient became NaN/Inf; stopped (no checkpoint written for it)")
        lr = opt.learning_rate * 0.5
        self.model.set_params(self._good[0])
        opt.set_state(self._good[1])
        opt.learning_rate = lr
        self.states = None
        self._log({"event": "nan", "step": self.state["global_step"], "lr": lr})

    def _validate(self):
        if self.valid_corpus is None or not len(self.valid_corpus):
            return None
        res = self.evaluate(self.valid_corpus)
        st, opt = self.state, self.model.optimizer
        improved = st["best_valid"] is None or res["loss"] < st["best_valid"]
        if improved:
            st["best_valid"], st["bad_evals"] = res["loss"], 0
            self._save("best.npz")
        else:
            st["bad_evals"] += 1
            if self.cfg.anneal < 1:
                opt.learning_rate = opt.learning_rate * self.cfg.anneal
        self._log({"event": "valid", "step": st["global_step"], "epoch": st["epoch"],
                   "valid_loss": res["loss"], "valid_ppl": res["perplexity"],
                   "lr": opt.learning_rate, "improved": improved})
        self._plot()
        return res

    def fit(self, callback=None) -> dict:
        """Run until epochs, the time budget or ``max_steps`` run out (or early stopping,
        or Ctrl-C).  Returns the training state (history, best validation loss, why it stopped)."""
        from tqdm.auto import tqdm

        cfg, st, model = self.cfg, self.state, self.model
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            for name in ("checkpoint.npz", "best.npz", "loss.png", "corpus.npz"):
                remove_stale_temps(self.out, name)  # left by a run killed mid-write
            self._repair_log()
        t_start = time.monotonic()
        elapsed0 = st["elapsed"]
        steps_this_run = 0
        stop = None
        self._remember_good()
        try:
            while st["epoch"] < cfg.epochs and stop is None:
                batches = self._batches(self.train_corpus, st["epoch"])
                first = st["step_in_epoch"]
                if first == 0 and self.batching == "stream":
                    self.states = None
                of = "" if cfg.time_budget else f"/{cfg.epochs}"
                bar = tqdm(total=len(batches), initial=first, disable=not self.progress,
                           desc=f"epoch {st['epoch'] + 1}{of}", unit="batch", leave=False,
                           dynamic_ncols=True)
                t_epoch, words_epoch, loss_acc, tok_acc = time.monotonic(), 0, 0.0, 0.0
                for i in range(first, len(batches)):
                    x, y, mask = batches[i]
                    drops = self._dropout(x.shape, st["epoch"], i)
                    states = self.states if self.batching == "stream" else None
                    loss_sum, ntok, gnorm, new_states = model.train_step(x, y, mask, states, drops)
                    loss_sum, ntok, gnorm = float(loss_sum), float(ntok), float(gnorm)
                    if not (math.isfinite(loss_sum) and math.isfinite(gnorm)):
                        self._recover()
                        continue
                    if self.batching == "stream":
                        self.states = new_states
                    st["step_in_epoch"] = i + 1
                    st["global_step"] += 1
                    st["words"] += int(ntok)
                    steps_this_run += 1
                    words_epoch += ntok
                    loss_acc += loss_sum
                    tok_acc += ntok
                    rate = words_epoch / max(time.monotonic() - t_epoch, 1e-9)
                    mean = loss_acc / max(tok_acc, 1.0)
                    bar.set_postfix(loss=f"{mean:.3f}", ppl=f"{perplexity_of(loss_acc, tok_acc):.1f}",
                                    words_s=f"{rate:,.0f}", lr=f"{model.optimizer.learning_rate:.2g}")
                    bar.update(1)
                    if st["global_step"] % 50 == 0 or i == len(batches) - 1:
                        self._log({"event": "train", "step": st["global_step"], "epoch": st["epoch"],
                                   "train_loss": mean, "words_per_s": rate, "grad_norm": gnorm})
                        loss_acc, tok_acc = 0.0, 0.0
                    if cfg.valid_every and st["global_step"] % cfg.valid_every == 0:
                        self._validate()
                    if cfg.save_every and st["global_step"] % cfg.save_every == 0:
                        self._remember_good()
                        self._save("checkpoint.npz")
                    if callback is not None:
                        callback(self)
                    st["elapsed"] = elapsed0 + time.monotonic() - t_start
                    if cfg.max_steps is not None and steps_this_run >= cfg.max_steps:
                        stop = "max_steps"
                        break
                    if cfg.time_budget is not None and time.monotonic() - t_start >= cfg.time_budget:
                        stop = "time_budget"
                        break
                bar.close()
                if stop == "time_budget":
                    self._validate()  # the budget's result gets a validation score and best.npz
                if stop is None:  # the epoch finished
                    st["epoch"] += 1
                    st["step_in_epoch"] = 0
                    self._validate()
                    self._remember_good()
                    if cfg.patience and st["bad_evals"] >= cfg.patience:
                        stop = "early_stopping"
                self._save("checkpoint.npz")
        except KeyboardInterrupt:
            stop = "interrupted"
            self._save("checkpoint.npz")
        st["elapsed"] = elapsed0 + time.monotonic() - t_start
        st["stopped"] = stop or "epochs"
        self._log({"event": "stop", "step": st["global_step"], "reason": st["stopped"]})
        return st
