"""What a training run writes beside its checkpoints: log.jsonl (one JSON record per line: train, valid,
baselines, compile, stop...), loss.png (the loss curve), the progress bar and the meter behind it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rnnlm.fileio import atomic_savefig
from rnnlm.inference.scoring import perplexity_of


class RunRecords:
    """The run's history (``state["history"]`` of the trainer: a resumed run's list replaces it) and its
    files in ``out`` (None: memory only)."""

    def __init__(self, out: Path | None, state: dict):
        self.out, self.state = out, state

    @property
    def history(self) -> list:
        return self.state["history"]

    def repair(self) -> None:
        """Drop a torn last line of log.jsonl (a run killed mid-write) so every line parses."""
        log = self.out / "log.jsonl"
        if not log.exists():
            return
        with open(log, "r+b") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def log(self, record: dict) -> None:
        """Append ``record`` (with the time) to the history and to log.jsonl."""
        record = {"time": round(time.time(), 3), **record}
        self.history.append(record)
        if self.out is None:
            return
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def plot(self) -> None:
        if self.out is None:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        hist = self.history
        tr = [(h["step"], h["train_loss"]) for h in hist if "train_loss" in h]
        va = [(h["step"], h["valid_loss"]) for h in hist if "valid_loss" in h]
        fig, ax = plt.subplots(figsize=(6, 4))
        if tr:
            ax.plot(*zip(*tr, strict=True), label="train")
        if va:
            ax.plot(*zip(*va, strict=True), "o-", label="valid")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy per token (nats)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_savefig(fig, self.out / "loss.png", dpi=100)
        plt.close(fig)


class Meter:
    """Running training loss and tokens/s between log records (what the bar and log.jsonl show)."""

    def __init__(self):
        self.t0, self.words, self.loss, self.tokens = time.monotonic(), 0.0, 0.0, 0.0

    def add(self, r: dict) -> None:
        self.words += r["ntok"]
        self.loss += r["loss_sum"]
        self.tokens += r["ntok"]

    def describe(self, epoch: int, best_valid, lr: float, now: float) -> str:
        mean = self.loss / max(self.tokens, 1.0)
        best = perplexity_of(best_valid, 1) if best_valid is not None else float("nan")
        return (
            f"epoch {epoch + 1} loss {mean:.3f} ppl {perplexity_of(self.loss, self.tokens):.1f} "
            f"val {best:.1f} "
            f"lr {lr:.2g} {self.words / max(now - self.t0, 1e-9):,.0f} tok/s"
        )

    def record(self, now: float, r: dict) -> dict:
        """The log fields, then a fresh start for the next interval."""
        out = {
            "train_loss": self.loss / max(self.tokens, 1.0),
            "lr": r["lr"],
            "words_per_s": self.words / max(now - self.t0, 1e-9),
            "grad_norm": r["grad_norm"],
        }
        self.t0, self.words, self.loss, self.tokens = now, 0.0, 0.0, 0.0
        return out


def progress_bar(cfg, state: dict, steps_per_epoch: int, enabled: bool = True):
    """The run's one tqdm bar: seconds of the time budget when there is one (``cfg.time_budget``), else
    steps of the epoch cap; it starts where ``state`` (a resumed run's) left off."""
    from tqdm.auto import tqdm

    if cfg.time_budget:
        return tqdm(
            total=round(cfg.time_budget, 1),
            initial=round(min(state["elapsed"], cfg.time_budget), 1),
            unit="s",
            disable=not enabled,
            dynamic_ncols=True,
            desc="train",
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}",
        )
    return tqdm(
        total=(cfg.epoch_cap or 1) * steps_per_epoch,
        initial=state["global_step"],
        unit="step",
        disable=not enabled,
        dynamic_ncols=True,
        desc="train",
    )
