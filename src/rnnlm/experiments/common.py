"""What the experiments share: argument checks, the corpus, the runtime description, and a step clock
around rnnlm's one training loop (:class:`StepClock`).

Timing: a budget counts training steps only.  The first step on each new batch shape compiles
the graph (under the JAX linker once per padded length; seconds each) and is reported as
``compile_s`` instead, and evaluation pauses the clock, so the two models of
:func:`~rnnlm.experiments.fill_vs_lm.fill_vs_lm` get the same amount of *training* time whatever
their compile times.  Step times are synchronised: each step's loss is read back before the clock
stops (JAX dispatches asynchronously).

Shapes follow :mod:`rnnlm.models.lm`: batches are time-major ``x``, ``mask`` (L, B).
"""

from __future__ import annotations

import os

import numpy as np

from rnnlm.bench.machine import cpu_model
from rnnlm.errors import ConfigError

__all__ = ["StepClock", "bucket_lengths", "check_budget", "check_positive", "load_corpus", "runtime_info"]


def check_budget(time_budget, max_steps):
    """Refuse a run without a limit, a non-positive time budget or step limit."""
    if time_budget is None and max_steps is None:
        raise ConfigError("give a time budget or a step limit (max_steps)")
    if time_budget is not None and not float(time_budget) > 0:
        raise ConfigError(f"time budget must be positive, got {time_budget}")
    if max_steps is not None and (isinstance(max_steps, bool) or int(max_steps) < 1):
        raise ConfigError(f"max_steps must be a positive integer, got {max_steps}")


def check_positive(name, value):
    """Refuse ``value`` unless it is a positive integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def bucket_lengths(buckets, max_length) -> tuple:
    """The padded lengths to use: the given ones up to ``max_length``, and ``max_length`` itself."""
    return tuple(sorted({int(b) for b in (buckets or ()) if 3 <= int(b) <= max_length} | {int(max_length)}))


def load_corpus(corpus, **prepare_kwargs):
    """A Corpus as it is, or a name/path prepared at word level with ``prepare_kwargs``."""
    from rnnlm.data import Corpus, prepare

    if isinstance(corpus, Corpus):
        return corpus
    return prepare(corpus, level="word", **prepare_kwargs)


def runtime_info(model) -> dict:
    """Engine, linker, CPU and device a model ran on (reported with every experiment)."""
    from rnnlm import engine

    info = {**engine.describe(), "linker": model.linker, "cpu": cpu_model(), "cpu_count": os.cpu_count()}
    if model.linker == "jax":
        import jax

        dev = jax.devices()[0]
        info["device"] = f"{dev.platform}:{getattr(dev, 'device_kind', '')}".rstrip(":")
    else:
        info["device"] = "cpu"
    return info


class StepClock:
    """One model's training, driven step by step through :meth:`Trainer.step
    <rnnlm.training.trainer.Trainer.step>` (rnnlm's one training loop), with a clock that counts training
    steps only: the first step on each batch shape compiles the graph and is counted as ``compile_s``.

    ``config`` is the :class:`~rnnlm.training.config.TrainConfig` (a constant schedule: the experiments
    reproduce fixed-rate recipes); the model keeps the optimizer it was given.
    """

    def __init__(self, model, corpus, config):
        from rnnlm.training.trainer import Trainer

        self.model = model
        self.trainer = Trainer(model, corpus, None, config, progress=False)
        self.clock = 0.0  # seconds of training steps, compilation excluded
        self.compile_s = 0.0
        self.steps = 0
        self.tokens = 0
        self.losses = []  # mean loss per token of each step's batch (before its update)
        self.step_s = []  # (L, seconds) of every step that did not compile
        self._shapes = set()

    @property
    def epochs(self) -> float:
        st, per = self.trainer.state, self.trainer.steps_per_epoch or 1
        return round(st["epoch"] + st["step_in_epoch"] / per, 3) if self.steps else 0.0

    def step(self) -> None:
        r = self.trainer.step()
        key = r["shape"] if self.model.static else None  # one compiled function per shape under JAX
        if key in self._shapes:
            self.clock += r["seconds"]
            self.step_s.append((r["shape"][0], r["seconds"]))
        else:
            self._shapes.add(key)
            self.compile_s += r["seconds"]
        if not r["finite"]:
            raise ConfigError(
                f"training diverged (loss {r['loss_sum']}) at step {self.steps + 1}; lower the learning rate"
            )
        self.steps += 1
        self.tokens += int(r["ntok"])
        self.losses.append(r["loss_sum"] / max(r["ntok"], 1.0))

    def timing(self) -> dict:
        times = np.array([s for _, s in self.step_s]) if self.step_s else np.zeros(0)
        by_len = {}
        for L, s in self.step_s:
            by_len.setdefault(int(L), []).append(s)
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "train_s": round(self.clock, 3),
            "compile_s": round(self.compile_s, 3),
            "ms_per_step": round(1e3 * float(np.median(times)), 3) if len(times) else None,
            "ms_per_step_mean": round(1e3 * float(times.mean()), 3) if len(times) else None,
            "ms_per_step_by_length": {
                L: round(1e3 * float(np.median(v)), 3) for L, v in sorted(by_len.items())
            },
            "tokens_per_s": round(self.tokens / self.clock, 1) if self.clock > 0 else None,
        }
