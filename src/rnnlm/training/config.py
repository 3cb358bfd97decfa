"""Training settings (:class:`TrainConfig`) and durations (:func:`parse_duration`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rnnlm.errors import ConfigError


@dataclass
class TrainConfig:
    """Training settings (everything but the model's shape)."""

    optimizer: str = "adam"
    lr: float | None = None
    clip: float = 5.0
    epochs: int = 10
    time_budget: float | None = None  # seconds
    max_steps: int | None = None  # stop (and checkpoint) after this many steps in this run
    batch_size: int = 32
    max_length: int = 64  # sentence batching: longest sequence
    bptt: int = 32  # stream batching: chunk length
    batching: str = "auto"  # auto | sentences | stream
    valid_every: int = 0  # also validate every N steps (0: once per epoch)
    save_every: int = 0  # also checkpoint every N steps
    anneal: float = 0.5  # multiply lr by this when validation does not improve (1: never)
    patience: int = 0  # early stop after this many evaluations without improvement (0: never)
    on_nan: str = "recover"  # recover | stop
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")
        if self.bptt < 1:
            raise ConfigError(f"bptt must be positive, got {self.bptt}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ConfigError(f"time budget must be positive, got {self.time_budget}")
        if self.on_nan not in ("recover", "stop"):
            raise ConfigError(f"on_nan must be recover or stop, got {self.on_nan!r}")
        if self.batching not in ("auto", "sentences", "stream"):
            raise ConfigError(f"batching must be auto, sentences or stream, got {self.batching!r}")
        if not 0 < self.anneal <= 1:
            raise ConfigError(f"anneal factor must be in (0, 1], got {self.anneal}")

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
