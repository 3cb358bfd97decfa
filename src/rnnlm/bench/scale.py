"""Past one device and past RAM, measured (issue 17): words/s of the data-parallel train step on 1, 2 and 4
devices, and the peak memory of ``rnnlm data prepare`` and of ``rnnlm train`` on a generated 100M-token
corpus read from its memory map. ``scripts/bench_scale.py`` runs each in a fresh process; results:
docs/benchmarks.md.

Every memory figure comes from the measured process itself (``VmHWM``, the kernel's peak resident set, read
from /proc at its end, and the largest anonymous and file-backed resident sets sampled every 0.1 s while
it ran): ``getrusage`` of a child reports its parent's peak when that was higher. File-backed pages are
the memory map's: the kernel reclaims them under pressure (they are the page cache), anonymous ones
it cannot.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

#: The generated corpus: Zipf-distributed words over this many types, 5 to 45 words a sentence.
WORD_TYPES = 20_000
ZIPF = 1.05


def generate(path, n_tokens: int, seed: int = 0) -> dict:
    """A deterministic corpus of about ``n_tokens`` words, one sentence a line (``--format lines``)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, WORD_TYPES + 1) ** ZIPF
    cdf = np.cumsum(p / p.sum())
    words = [f"w{i}".encode() for i in range(WORD_TYPES)]
    done = lines = 0
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        while done < n_tokens:
            lengths = rng.integers(5, 46, 100_000)
            ids = np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum()))), WORD_TYPES - 1).tolist()
            ends = np.cumsum(lengths).tolist()
            start, out = 0, []
            for end in ends:
                out.append(b" ".join([words[i] for i in ids[start:end]]))
                start = end
            f.write(b"\n".join(out) + b"\n")
            done, lines = done + int(lengths.sum()), lines + len(lengths)
    os.replace(tmp, path)
    return {"tokens": done, "lines": lines, "bytes": path.stat().st_size}


# -- memory of this process -------------------------------------------------------------------------------
def status() -> dict:
    """This process's ``VmHWM`` (peak resident set), ``VmRSS``, ``RssAnon`` and ``RssFile``, in MiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


class Memory:
    """``with Memory() as m: ...`` -- then ``m.report()``: peak RSS (``VmHWM``) at the end, RSS at the start,
    and the largest anonymous and file-backed resident sets sampled every 0.1 s in between."""

    def __enter__(self):
        self.base, self.peaks, self.running = status()["VmRSS"], {"RssAnon": 0.0, "RssFile": 0.0}, True
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            now = status()
            for k in self.peaks:
                self.peaks[k] = max(self.peaks[k], now.get(k, 0.0))
            time.sleep(0.1)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.seconds, end = time.monotonic() - self.t0, status()
        for k in self.peaks:
            self.peaks[k] = max(self.peaks[k], end.get(k, 0.0))
        self.peak = end["VmHWM"]

    def report(self) -> dict:
        return {
            "seconds": round(self.seconds, 1),
            "peak_rss_mb": round(self.peak, 1),
            "base_rss_mb": round(self.base, 1),
            "max_anon_mb": round(self.peaks["RssAnon"], 1),
            "max_file_mb": round(self.peaks["RssFile"], 1),
        }


# -- words/s by device count ------------------------------------------------------------------------------
def speed(counts=(1, 2, 4), cell="gru", hidden=128, vocab=8000, batch=64, length=32, steps=10) -> dict:
    """Words/s of the train step (synchronised: the loss is read back every step) on one device without a
    mesh (``None``) and data-parallel on each of ``counts`` devices, in this process (which must see
    ``max(counts)`` devices); and what XLA's partitioner put into the 4-device step."""
    import re

    from rnnlm import devices, engine
    from rnnlm.models.lm import LanguageModel, ModelConfig
    from rnnlm.training.optim import make_optimizer

    cfg = ModelConfig(vocab_size=vocab, hidden_dim=hidden, cell=cell, embedding_dim=hidden)
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, vocab, (length, batch)).astype(np.int32) for _ in range(2))
    mask = np.ones((length, batch), np.float32)
    out, losses = {}, {}
    for n in (None, *counts):
        model = LanguageModel(cfg, seed=0, linker="jax")
        model.set_optimizer(make_optimizer("adam", 1e-3, clip=5.0))
        model.place(devices.placement(n, batch))
        t0 = time.perf_counter()
        losses[str(n)] = float(model.train_step(x, y, mask)[0])  # compiles
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(steps):
            float(model.train_step(x, y, mask)[0])
        dt = (time.perf_counter() - t0) / steps
        out["1 (no mesh)" if n is None else str(n)] = {
            "ms_per_step": round(dt * 1e3, 1),
            "words_per_s": round(batch * length / dt),
            "compile_s": round(compile_s, 1),
        }
        if n == max(counts):
            pl = model.placement
            placed = [pl.from_local(a, 1) for a in (x, y, mask, *model.initial_state(batch))]
            hlo = engine.jax_hlo(model.graph("train", (length, batch)), *placed)
            ops = re.findall(r"\b(all-reduce|all-gather|reduce-scatter|all-to-all)(?:-start)?\(", hlo)
            out["partitioned"] = {  # what each device computes, from the shapes in the compiled step
                "collectives": {k: ops.count(k) for k in sorted(set(ops))},
                "output_layer_rows_per_device": length * batch // n
                if f"f32[{length * batch // n},{vocab}]" in hlo
                and f"f32[{length * batch},{vocab}]" not in hlo
                else length * batch,
                "recurrence_columns_per_device": batch // n
                if f"f32[{batch // n},{hidden}]" in hlo
                else batch,
            }
    first = losses["None"]
    out["first_loss_rel_diff"] = max(abs(v - first) / abs(first) for v in losses.values())
    return out
