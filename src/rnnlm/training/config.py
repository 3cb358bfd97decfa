"""Training settings (:class:`TrainConfig`) and durations (:func:`parse_duration`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rnnlm.errors import ConfigError
from rnnlm.training.schedules import SCHEDULES

#: Epochs when neither ``epochs`` nor ``time_budget`` is given.
DEFAULT_EPOCHS = 10


@dataclass
class TrainConfig:
    """Training settings (everything but the model's shape).

    When training stops: with a ``time_budget`` and no ``epochs`` there is no epoch cap -- training ends
    when the budget is spent, when validation has stopped improving (``patience`` evaluations in a row,
    or the newbob schedule's convergence test), or when the learning rate falls below its floor, whichever
    comes first; the state's ``stopped`` says which. Without either, ``epochs`` defaults to
    :data:`DEFAULT_EPOCHS`. The schedule (:mod:`rnnlm.training.schedules`) spans that horizon: the time
    budget, else every step of every epoch.

    Validation runs at the end of every epoch (under a budget, at most every fifth of the interval below),
    every ``valid_every`` steps if set, and every ``valid_every_s`` seconds (default: a twentieth of the
    budget, between 10 s and 5 min; without a budget every 5 min), so a long epoch cannot hide a plateau.
    ``patience`` (default 6 for the decays) then counts evaluations: a decay anneals after that many without
    a new best and stops after that many more (see :class:`~rnnlm.training.schedules.WarmupDecay`).

    ``devices``: train data-parallel over this many devices (an int, or ``"all"``; JAX linker only): each
    batch is split along its batch axis, so ``batch_size`` must divide by it (None: one device).
    """

    optimizer: str = "adam"
    lr: float | None = None  # peak learning rate (default: sgd 0.5, adam 0.002, rmsprop 0.001)
    clip: float = 5.0
    epochs: int | None = None  # None: no cap with a time budget, else DEFAULT_EPOCHS
    time_budget: float | None = None  # seconds of training (validations included), over all resumed runs
    max_steps: int | None = None  # stop (and checkpoint) after this many steps in this run
    batch_size: int | None = None  # sequences per batch (None: 64 at char level, 32 at word level)
    max_length: int = 64  # sentence batching: longest sequence
    buckets: tuple | None = None  # sentence batching: padded lengths (None: 8, 16, 32, ... max_length)
    bptt: int | None = None  # stream batching: chunk length (None: 64 at char level, 32 otherwise)
    batching: str = "auto"  # auto | sentences | stream
    valid_every: int = 0  # also validate every N steps (0: never by count)
    valid_every_s: float | None = None  # also validate every this many seconds (None: auto, see above)
    save_every: int = 0  # also checkpoint every N steps
    schedule: str = "auto"  # auto (sgd: newbob, else cosine) | cosine | linear | newbob | plateau | constant
    warmup: float = 0.02  # warm-up share of the horizon (cosine, linear)
    lr_floor: float | None = None  # final rate / stop rate as a fraction of the peak (None: the schedule's)
    min_improvement: float = 0.003  # newbob: relative validation improvement that counts
    anneal: float = 0.5  # plateau schedule: multiply lr by this when validation does not improve
    patience: int | None = None  # stop after this many evaluations without a new best (None: auto, 0: never)
    weight_decay: float = 0.0  # decoupled (AdamW-style) weight decay per unit of learning rate
    precision: str = "fp32"  # fp32 | bf16: bfloat16 matrix products, float32 accumulation (jax linker)
    on_nan: str = "recover"  # recover | stop
    seed: int = 0
    devices: int | str | None = None  # data parallel over N devices, or "all" (None: one device)

    def __post_init__(self):
        if self.epochs is not None and self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")
        if self.bptt is not None and self.bptt < 1:
            raise ConfigError(f"bptt must be positive, got {self.bptt}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError(f"time budget must be positive, got {self.time_budget}")
        if self.valid_every_s is not None and not self.valid_every_s > 0:
            raise ConfigError(f"validation interval must be positive, got {self.valid_every_s}")
        if self.on_nan not in ("recover", "stop"):
            raise ConfigError(f"on_nan must be recover or stop, got {self.on_nan!r}")
        if self.batching not in ("auto", "sentences", "stream"):
            raise ConfigError(f"batching must be auto, sentences or stream, got {self.batching!r}")
        if not 0 < self.anneal <= 1:
            raise ConfigError(f"anneal factor must be in (0, 1], got {self.anneal}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warm-up must be a fraction in [0, 1), got {self.warmup}")
        if self.lr_floor is not None and not 0 <= self.lr_floor < 1:
            raise ConfigError(
                f"learning-rate floor must be a fraction in [0, 1) of the peak, got {self.lr_floor}"
            )
        if self.patience is not None and self.patience < 0:
            raise ConfigError(f"patience must be >= 0, got {self.patience}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.devices is not None:
            text = str(self.devices).strip().lower()
            if isinstance(self.devices, bool) or not (text == "all" or (text.isdigit() and int(text) >= 1)):
                raise ConfigError(f"devices must be a positive integer or 'all', got {self.devices!r}")
            self.devices = "all" if text == "all" else int(text)

    @property
    def epoch_cap(self) -> int | None:
        """The epochs to run: ``epochs``, else none with a time budget, else :data:`DEFAULT_EPOCHS`."""
        if self.epochs is not None:
            return self.epochs
        return None if self.time_budget else DEFAULT_EPOCHS

    @property
    def validation_interval(self) -> float:
        """Seconds between time-based validations (see the class docstring)."""
        if self.valid_every_s is not None:
            return self.valid_every_s
        if self.time_budget:
            return min(max(self.time_budget / 20.0, 10.0), 300.0)
        return 300.0

    @property
    def stop_patience(self) -> int:
        """Evaluations without a new best before stopping (auto: 6 for the decaying schedules, which
        validate about 20 times per budget; never for the others, whose own rules stop them)."""
        if self.patience is not None:
            return self.patience
        return 6 if self.schedule in ("auto", "cosine", "linear") and self.optimizer != "sgd" else 0

    def resolved(self, level: str) -> TrainConfig:
        """A copy with the level's defaults filled in (batch size and chunk length: char-rnn's and PyTorch's
        64 × 64 for characters, 32 sentences or 32-token chunks for words)."""
        char = level == "char"
        return dataclasses.replace(
            self, batch_size=self.batch_size or (64 if char else 32), bptt=self.bptt or (64 if char else 32)
        )

    def to_dict(self):
        return dataclasses.asdict(self)


def parse_duration(text) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h`` -> seconds."""
    s = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if s and s[-1] in units:
            value = float(s[:-1]) * units[s[-1]]
        else:
            value = float(s)
    except ValueError:
        raise ConfigError(f"bad duration {text!r}; use e.g. 90s, 10m or 1.5h") from None
    if not value > 0:
        raise ConfigError(f"duration must be positive, got {text!r}")
    return value
