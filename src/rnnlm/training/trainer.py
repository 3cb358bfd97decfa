"""The training loop: batches, optimizer steps, validation, schedule, checkpoints, progress.

:class:`Trainer` is the one loop of rnnlm (the CLI, :func:`rnnlm.train` and the experiments all run
it) on a :class:`~rnnlm.models.lm.LanguageModel`:

- a learning-rate schedule over the whole run (:mod:`rnnlm.training.schedules`: warm-up and cosine
  decay over the time budget or the epochs for Adam/RMSProp, newbob for SGD);
- when to stop (:class:`~rnnlm.training.config.TrainConfig`): the time budget, the epochs, validation
  that stopped improving (patience, or newbob's convergence test), a learning rate below its floor --
  the state's ``stopped`` names the reason;
- validation perplexity at the end of every epoch and every few seconds of training, the best
  checkpoint kept as ``best.npz``, the latest as ``checkpoint.npz`` (atomic writes);
- locked dropout: one mask per sequence and layer, drawn from ``(seed, epoch, step)``;
- NaN/Inf in the loss or gradient norm is caught after the step that produced it: the last good
  parameters are restored and the learning rate curve halved (``on_nan='recover'``), or training stops
  (``'stop'``); a non-finite checkpoint is never written;
- one tqdm bar for the whole run (epoch, loss, perplexity, best validation perplexity, learning rate,
  tokens/s), a JSON-lines log and a loss-curve PNG beside the checkpoint; Ctrl-C saves a resumable
  checkpoint and returns normally;
- exact resume: batch order and dropout masks are pure functions of ``(seed, epoch, step)``, and the
  checkpoint holds parameters, optimizer state, schedule state, position and carried hidden state, so an
  interrupted and resumed run ends with the same parameters as an uninterrupted one (runs whose schedule
  follows the clock -- a time budget -- are as exact as the clock);
- data parallelism (``devices``, JAX linker, :mod:`rnnlm.devices`): every batch split along its batch axis
  over the devices, parameters and optimizer state replicated; the same batches and masks whatever the
  device count, so the results are the same to float32 round-off and checkpoints are interchangeable.
  Under several processes each reads only its columns of every batch, process 0 alone writes files and
  shows progress, and decisions taken on the clock (or a Ctrl-C) follow process 0's clock on every process.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from rnnlm.data.batching import sentence_batches, stream_batches
from rnnlm.devices import placement as make_placement
from rnnlm.errors import CheckpointError, ConfigError, RnnlmError
from rnnlm.fileio import remove_stale_temps
from rnnlm.inference.scoring import perplexity_of, sentence_token_logprobs, stream_token_logprobs
from rnnlm.training.checkpoint import read_checkpoint, save_checkpoint
from rnnlm.training.config import TrainConfig
from rnnlm.training.optim import DEFAULT_LR, make_optimizer
from rnnlm.training.records import Meter, RunRecords, progress_bar
from rnnlm.training.schedules import WarmupDecay, make_schedule

#: Train records in log.jsonl: one every this many steps (and at the end of every epoch).
LOG_EVERY = 50


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

    def __init__(self, model, train, valid=None, config=None, out_dir=None, corpus=None, progress=True):
        self.model, self.train_corpus, self.valid_corpus = model, train, valid
        self.cfg = cfg = (config or TrainConfig()).resolved(getattr(train, "level", "word"))
        if cfg.devices is not None:  # data parallel over a device mesh (checks the linker and batch size)
            model.place(make_placement(cfg.devices, cfg.batch_size, model.linker))
        self.placement = pl = model.placement
        self.writer = pl is None or pl.writer  # only process 0 writes files and shows progress
        multi = pl is not None and pl.process_count > 1
        self._cols = pl.columns(cfg.batch_size) if multi else None  # this process's columns of a batch
        self._clock0 = time.monotonic()
        self.out = Path(out_dir) if out_dir and self.writer else None
        self.corpus = corpus if corpus is not None else train
        self.progress = progress and self.writer
        peak = cfg.lr if cfg.lr is not None else DEFAULT_LR.get(cfg.optimizer, 0.001)
        if model.optimizer is None:
            model.set_optimizer(
                make_optimizer(cfg.optimizer, peak, clip=cfg.clip, weight_decay=cfg.weight_decay)
            )
        self.schedule = make_schedule(
            cfg.schedule,
            model.optimizer.name,
            peak,
            floor=cfg.lr_floor,
            warmup=cfg.warmup,
            min_improvement=cfg.min_improvement,
            anneal=cfg.anneal,
            patience=cfg.stop_patience,
        )
        self._best_params = None  # a host copy of the best-validated parameters (annealing returns to them)
        mode = cfg.batching
        if mode == "auto":  # the fill model reads whole sentences both ways, at either level
            char = getattr(train, "level", "word") == "char"
            mode = "stream" if char and not model.config.bidirectional else "sentences"
        if model.config.bidirectional and mode == "stream":
            raise ConfigError("the bidirectional fill model trains on sentences, not a stream")
        self.batching = mode
        self.state = {
            "epoch": 0,
            "step_in_epoch": 0,
            "global_step": 0,
            "best_valid": None,
            "bad_evals": 0,
            "words": 0,
            "elapsed": 0.0,
            "history": [],
            "stopped": None,
            "schedule": self.schedule.to_json(),
            "baselines": None,
        }
        self.records = RunRecords(self.out, self.state)  # log.jsonl and loss.png
        self.states = None  # carried hidden state (stream batching)
        self._good = None  # last known-good (params, opt state) for NaN recovery
        self._steps_per_epoch = None
        self._epoch_cache = None  # (epoch, its batches)
        self._interrupted = False  # set by the first Ctrl-C during fit

    # -- batches ------------------------------------------------------------------------------
    def _batches(self, corpus, epoch, shuffle=True, whole=False, columns=None):
        """Training batches, made lazily from the corpus's ids (a memory map for a mapped corpus);
        ``whole=True`` (evaluation) never cuts a sentence into pieces, so every token is scored with its
        full left context (the perplexity definition). ``columns``: only these columns of every batch."""
        c = self.cfg
        segments = corpus.segments()
        if self.batching == "stream":
            return stream_batches(segments, c.batch_size, c.bptt, columns=columns)
        max_length = c.max_length
        if whole:
            longest = int(segments.lengths.max(initial=2))
            while max_length < longest:
                max_length *= 2  # a few extra bucket shapes at most
        buckets = c.buckets if not whole else None  # scoring: every sentence whole, default buckets
        return sentence_batches(
            segments,
            c.batch_size,
            max_length,
            buckets=buckets,
            shuffle=shuffle,
            seed=c.seed,
            epoch=epoch,
            fill=self.model.config.bidirectional,
            columns=columns,
        )

    def _dropout(self, batch_size, epoch, step) -> tuple:
        """The step's locked-dropout masks (see :meth:`LanguageModel.dropout_shapes`): one Bernoulli mask
        per sequence and layer, scaled by 1/keep, a pure function of ``(seed, epoch, step)``."""
        cfgm = self.model.config
        shapes = self.model.dropout_shapes(batch_size)
        if not shapes:
            return ()
        rng = np.random.default_rng([self.cfg.seed, epoch, step, 7])
        keeps = [1.0 - cfgm.dropout] * (len(shapes) - (cfgm.embed_dropout > 0))
        if cfgm.embed_dropout > 0:
            keeps.append(1.0 - cfgm.embed_dropout)
        return tuple(
            (rng.random(s) < k).astype(np.float32) / np.float32(k) for s, k in zip(shapes, keeps, strict=True)
        )

    # -- evaluation ---------------------------------------------------------------------------
    def token_logprobs(self, corpus, model=None, stream: bool | None = None) -> np.ndarray:
        """log p of every predicted token of ``corpus`` under ``model`` (default: the one being trained; no
        dropout), by the one scoring path (:mod:`rnnlm.inference.scoring`): sentences from
        SENTENCE_START; a stream (``stream``, default: when training batches a stream) in ``batch_size``
        parallel tracks, each warmed up on the 256 tokens before it."""
        model = model or self.model
        if stream is None:
            stream = self.batching == "stream"
        if stream:
            return stream_token_logprobs(model, corpus.stream(), tracks=self.cfg.batch_size, warmup=256)
        return np.concatenate(
            [np.zeros(0), *sentence_token_logprobs(model, corpus.sentences, self.cfg.batch_size)]
        )

    def evaluate(self, corpus) -> dict:
        """Mean NLL per predicted token and perplexity over a corpus (no dropout)."""
        if self.model.config.bidirectional:  # the fill model: every inner word of every sentence
            total, count = 0.0, 0.0
            for x, y, mask in self._batches(corpus, 0, shuffle=False, whole=True):
                loss_sum, ntok, _, _ = self.model.evaluate(x, y, mask)
                total, count = total + loss_sum, count + ntok
        else:
            lp = self.token_logprobs(corpus)
            total, count = -float(lp.sum()), float(len(lp))
        return {
            "loss": total / max(count, 1.0),
            "perplexity": perplexity_of(total, count),
            "tokens": int(count),
        }

    # -- checkpoints --------------------------------------------------------------------------
    def _host_states(self):
        """The carried hidden state (stream batching) as NumPy arrays of the whole batch: gathered from every
        process under several (a collective: every process saves at the same points)."""
        if self.batching != "stream" or self.states is None:
            return None
        pl = self.placement
        return [np.asarray(s) if pl is None else pl.to_host(s) for s in self.states]

    def _save(self, name):
        states = self._host_states()
        if self.out is None:
            return None
        st = dict(self.state)
        st["schedule"] = self.schedule.to_json()
        st["train_config"] = self.cfg.to_dict()
        st["batching"] = self.batching
        return save_checkpoint(
            self.out / name,
            self.model,
            corpus=self.corpus,
            train_state=st,
            states=states,
        )

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
            raise CheckpointError(
                f"{path}: was trained with the {saved} optimizer, this run uses {opt.name} "
                f"(resume with --optimizer {saved})"
            )
        if ck["opt"]:  # a checkpoint without optimizer state starts a fresh optimizer
            for k, v in opt.get_state().items():
                if k not in ck["opt"]:
                    raise CheckpointError(f"{path}: optimizer state {k} is missing")
                if np.shape(ck["opt"][k]) != np.shape(v):
                    raise CheckpointError(
                        f"{path}: optimizer state {k} has shape {np.shape(ck['opt'][k])}, "
                        f"expected {np.shape(v)}"
                    )
        states = ck.get("states") or None
        if states is not None and self.batching == "stream":
            want = self.model.initial_state(self.cfg.batch_size)
            shapes_differ = any(np.shape(a) != np.shape(b) for a, b in zip(states, want, strict=False))
            if len(states) != len(want) or shapes_differ:
                raise CheckpointError(
                    f"{path}: carried hidden state has shapes "
                    f"{[np.shape(a) for a in states]}, expected {[np.shape(b) for b in want]} "
                    f"(same --batch-size and model as the interrupted run?)"
                )
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
        if isinstance(st.get("schedule"), dict):
            self.schedule.load(st["schedule"])
        if states is not None and self._cols is not None:  # this process carries its columns only
            states = [np.asarray(s)[:, self._cols] for s in states]
        self.states = states
        return self

    def log(self, record: dict) -> None:
        """Append ``record`` (with the time) to the history and to log.jsonl."""
        self.records.log(record)

    # -- the loop -----------------------------------------------------------------------------
    @property
    def best_params(self) -> dict | None:
        """A host copy of the best-validated parameters (None before the first validation)."""
        return self._best_params

    @property
    def steps_per_epoch(self) -> int | None:
        """Batches in an epoch (known once the first epoch's batches are made)."""
        return self._steps_per_epoch

    def fraction_done(self) -> float:
        """How much of the run's horizon is done, in [0, 1]: the time budget's share, else the steps of
        all epochs' (0 while the number of steps per epoch is not yet known)."""
        cfg, st = self.cfg, self.state
        if cfg.time_budget:
            return min(st["elapsed"] / cfg.time_budget, 1.0)
        cap = cfg.epoch_cap
        if not cap or not self._steps_per_epoch:
            return 0.0
        return min(st["global_step"] / (cap * self._steps_per_epoch), 1.0)

    def _now(self) -> float:
        """``time.monotonic()``; under several processes, process 0's clock on every process, and a Ctrl-C
        on any process counts on all (a collective: every process calls it at the same points of :meth:`fit`,
        so every decision taken on the clock is the same everywhere)."""
        pl = self.placement
        if pl is None or pl.process_count == 1:
            return time.monotonic()
        every = pl.agree([time.monotonic() - self._clock0, float(self._interrupted)])
        self._interrupted = bool(every[:, 1].max())
        return float(every[0, 0])

    def _remember_good(self):
        self._good = (self.model.get_params(), self.model.optimizer.get_state())

    def _recover(self):
        if self.cfg.on_nan == "stop" or self._good is None:
            raise NonFiniteError("loss or gradient became NaN/Inf; stopped (no checkpoint written for it)")
        self.model.set_params(self._good[0])
        self.model.optimizer.set_state(self._good[1])
        self.schedule.halve()
        lr = self.schedule.rate(self.fraction_done())
        self.model.optimizer.learning_rate = lr
        self.states = None
        self.log({"event": "nan", "step": self.state["global_step"], "lr": lr})

    def _validate(self) -> str | None:
        """Score the validation split, keep ``best.npz``, tell the schedule; returns a stop reason or None."""
        if self.valid_corpus is None or not len(self.valid_corpus):
            return None
        res = self.evaluate(self.valid_corpus)
        st = self.state
        improved = st["best_valid"] is None or res["loss"] < st["best_valid"]
        if improved:
            st["best_valid"], st["bad_evals"] = res["loss"], 0
            self._best_params = self.model.get_params()
            self._save("best.npz")
        else:
            st["bad_evals"] += 1
        reason = self.schedule.validated(res["loss"], self.fraction_done())
        st["schedule"] = self.schedule.to_json()
        if self.schedule.just_annealed and self._best_params is not None:
            self.model.set_params(self._best_params)  # anneal from the best point, not the overfitted one
            self.log({"event": "anneal", "step": st["global_step"], "elapsed": round(st["elapsed"], 2)})
        lr = self.schedule.rate(self.fraction_done())
        self.model.optimizer.learning_rate = lr
        self.log(
            {
                "event": "valid",
                "step": st["global_step"],
                "epoch": st["epoch"],
                "elapsed": round(st["elapsed"], 2),
                "valid_loss": res["loss"],
                "valid_ppl": res["perplexity"],
                "lr": lr,
                "improved": improved,
            }
        )
        self.records.plot()
        patience = 0 if isinstance(self.schedule, WarmupDecay) else self.cfg.stop_patience  # (decays: theirs)
        if reason is None and patience and st["bad_evals"] >= patience:
            reason = "early_stopping"
        if reason is None and self.schedule.below_floor(self.fraction_done()):
            reason = "lr_floor"  # no step is taken below the floor
        return reason

    def compile(self, batches) -> float:
        """Compile, before the clock starts, every function the run will call: the training step for each
        batch shape and the scoring function for each validation shape (a time budget is then spent
        learning, not compiling). The training calls see an all-zero mask and the parameters and optimizer
        state are restored afterwards, so nothing is learned here. Returns the seconds it took."""
        from rnnlm.data.batching import bucket_length

        t0, model = time.monotonic(), self.model
        known = getattr(batches, "shapes", None)  # lazy batches know their shapes without being made
        shapes = sorted(known() if known else {tuple(x.shape) for x, _, _ in batches})
        params, opt = model.get_params(), model.optimizer.get_state()
        for L, B in shapes:
            z = np.zeros((L, B), np.int32)
            drops = [np.ones(s, np.float32) for s in model.dropout_shapes(B)]
            model.train_step(z, z, np.zeros((L, B), np.float32), None, drops)
        model.set_params(params)
        model.optimizer.set_state(opt)
        valid = self.valid_corpus
        if valid is not None and len(valid) and not model.config.bidirectional:
            B = self.cfg.batch_size
            if self.batching == "stream":
                lengths = {256 if model.static else 0}
            else:
                lengths = (
                    {bucket_length(max(len(q) - 1, 1)) for q in valid.sentences} if model.static else set()
                )
            for L in sorted(lengths - {0}):
                z = np.zeros((L, B), np.int32)
                model.evaluate(z, z, np.zeros((L, B), np.float32), model.initial_state(B))
        return time.monotonic() - t0

    def _catch_ctrl_c(self):
        """Turn the first Ctrl-C into a flag the loop checks after every step (a KeyboardInterrupt raised
        inside a compiled call or a garbage-collection callback can be swallowed there); a second Ctrl-C
        interrupts at once. Returns the function that restores the previous handler."""
        import signal
        import threading

        self._interrupted = False
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_sigint(signum, frame):
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True

        previous = signal.signal(signal.SIGINT, on_sigint)
        return lambda: signal.signal(signal.SIGINT, previous)

    def _epoch_batches(self) -> list:
        """The current epoch's batches (made once per epoch: their order is a function of seed and epoch)."""
        epoch = self.state["epoch"]
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            self._epoch_cache = (epoch, self._batches(self.train_corpus, epoch, columns=self._cols))
            self._steps_per_epoch = len(self._epoch_cache[1])
        return self._epoch_cache[1]

    def step(self) -> dict:
        """One optimizer step on the next training batch, at the schedule's rate; the epoch advances after
        its last batch. A NaN/Inf loss is handled as ``on_nan`` says (the step then counts for nothing).

        Returns ``{"loss_sum", "ntok", "grad_norm", "lr", "seconds", "finite", "epoch_done", "shape"}``;
        ``seconds`` is the step alone (synchronised: the loss is read back), ``shape`` the batch's (L, B).
        """
        st, model = self.state, self.model
        batches = self._epoch_batches()
        i = st["step_in_epoch"]
        if i == 0 and self.batching == "stream":
            self.states = None
        lr = self.schedule.rate(self.fraction_done())
        model.optimizer.learning_rate = lr
        x, y, mask = batches[i]
        if self._cols is None:
            drops = self._dropout(x.shape[1], st["epoch"], i)
        else:  # the masks of the whole batch, then this process's columns: the same whatever the split
            drops = tuple(d[self._cols] for d in self._dropout(self.cfg.batch_size, st["epoch"], i))
        states = self.states if self.batching == "stream" else None
        t0 = time.perf_counter()
        loss_sum, ntok, gnorm, new_states = model.train_step(x, y, mask, states, drops)
        loss_sum, ntok, gnorm = float(loss_sum), float(ntok), float(gnorm)
        seconds = time.perf_counter() - t0
        finite = math.isfinite(loss_sum) and math.isfinite(gnorm)
        if finite:
            if self.batching == "stream":
                self.states = new_states
            st["global_step"] += 1
            st["words"] += int(ntok)
        else:
            self._recover()
        st["step_in_epoch"] = i + 1
        done = st["step_in_epoch"] >= len(batches)
        if done:
            st["epoch"] += 1
            st["step_in_epoch"] = 0
        return {
            "loss_sum": loss_sum,
            "ntok": ntok,
            "grad_norm": gnorm,
            "lr": lr,
            "seconds": seconds,
            "finite": finite,
            "epoch_done": done,
            "shape": tuple(x.shape),
        }

    def _begin(self):
        """Before the first step of a :meth:`fit`: folders, stale temporaries, compilation (not timed)."""
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            for name in ("checkpoint.npz", "best.npz", "loss.png", "corpus.npz"):
                remove_stale_temps(self.out, name)  # left by a run killed mid-write
            self.records.repair()
        batches = self._epoch_batches()
        if self.model.static:  # one compiled function per shape: all compiled before the clock starts
            self.state["compile_s"] = round(self.compile(batches), 2)
            self.log(
                {"event": "compile", "seconds": self.state["compile_s"], "step": self.state["global_step"]}
            )
        if self._interrupted:
            raise KeyboardInterrupt

    def fit(self, callback=None) -> dict:
        """Train until a stop rule fires (see :class:`TrainConfig`), or Ctrl-C. Returns the training state:
        ``history``, ``best_valid``, ``stopped`` (``time_budget``, ``epochs``, ``early_stopping``,
        ``converged``, ``lr_floor``, ``max_steps`` or ``interrupted``), steps, words, elapsed seconds.
        ``callback(trainer)`` is called after every step."""
        cfg, st = self.cfg, self.state
        elapsed0, steps_this_run, stop, bar = st["elapsed"], 0, None, None
        last_valid_step = st["global_step"]
        cap, budget = cfg.epoch_cap, cfg.time_budget
        t_start = self._now()
        restore = self._catch_ctrl_c()
        try:
            self._begin()
            t_start = last_valid = self._now()
            self._remember_good()
            bar = progress_bar(self.cfg, self.state, self._steps_per_epoch, self.progress)
            meter = Meter()
            while stop is None:
                if cap is not None and st["epoch"] >= cap:
                    stop = "epochs"
                    break
                epoch = st["epoch"]
                r = self.step()
                now = self._now()
                if self._interrupted:
                    raise KeyboardInterrupt
                if r["finite"]:
                    steps_this_run += 1
                    before, st["elapsed"] = st["elapsed"], elapsed0 + now - t_start
                    meter.add(r)
                    bar.set_postfix_str(meter.describe(epoch, st["best_valid"], r["lr"], now), refresh=False)
                    bar.update(round(min(st["elapsed"], budget) - min(before, budget), 3) if budget else 1)
                    if st["global_step"] % LOG_EVERY == 0 or r["epoch_done"]:
                        self.log(
                            {
                                "event": "train",
                                "step": st["global_step"],
                                "epoch": epoch,
                                "elapsed": round(st["elapsed"], 2),
                                **meter.record(now, r),
                            }
                        )
                    if callback is not None:
                        callback(self)
                # Validate every finished epoch -- under a budget, not more often than a fifth of the
                # validation interval (a small corpus's epochs take a fraction of a second, and patience
                # counts evaluations).
                recent = budget is not None and time.monotonic() - last_valid < cfg.validation_interval / 5
                if r["epoch_done"] and not recent:
                    stop = self._validate()
                    last_valid, last_valid_step = self._now(), st["global_step"]
                    self._remember_good()
                if not r["finite"] or stop is not None:
                    pass
                elif cfg.max_steps is not None and steps_this_run >= cfg.max_steps:
                    stop = "max_steps"
                elif budget is not None and st["elapsed"] >= budget:
                    stop = "time_budget"
                elif (cfg.valid_every and st["global_step"] % cfg.valid_every == 0) or (
                    now - last_valid >= cfg.validation_interval
                ):
                    stop = self._validate()
                    last_valid, last_valid_step = self._now(), st["global_step"]
                if (
                    r["epoch_done"]
                    or stop is not None
                    or (cfg.save_every and st["global_step"] % cfg.save_every == 0)
                ):
                    if cfg.save_every and st["global_step"] % cfg.save_every == 0:
                        self._remember_good()
                    self._save("checkpoint.npz")
            if stop == "time_budget" and last_valid_step != st["global_step"]:
                self._validate()  # what the budget bought gets a validation score and best.npz
                self._save("checkpoint.npz")
        except KeyboardInterrupt:
            stop = "interrupted"
            self._save("checkpoint.npz")
        finally:
            restore()
            if bar is not None:
                bar.close()
        st["elapsed"] = elapsed0 + self._now() - t_start
        st["stopped"] = stop
        best = perplexity_of(st["best_valid"], 1) if st["best_valid"] is not None else None
        self.log(
            {
                "event": "stop",
                "step": st["global_step"],
                "reason": stop,
                "elapsed": round(st["elapsed"], 2),
                "best_valid_ppl": best,
            }
        )
        return st
