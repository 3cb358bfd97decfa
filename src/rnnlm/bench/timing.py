"""Synchronised timing.

JAX and CUDA PyTorch dispatch asynchronously, so a clock read right after the call measures only
the dispatch.  :func:`time_calls` calls ``sync`` on each result *inside* the timed region; the
default, :func:`block`, waits on every array it finds in the result.  rnnlm's compiled functions
also update shared parameters, so the rnnlm candidates return those too.

Several libraries in one process: OpenBLAS, OpenMP (PyTorch) and XLA's thread pool each keep
worker threads that spin for a while after a parallel region.  :func:`compare` therefore times
candidates in blocks (one untimed call first in each block) and rotates the blocks over a few
rounds, so that neither spinning neighbours nor the drift of a shared machine's load falls on
one candidate alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

__all__ = ["block", "compare", "error_line", "summarize", "time_calls", "time_loop"]


def block(obj):
    """Wait until every array in ``obj`` (nested lists/tuples/dicts) is computed; returns ``obj``.

    JAX arrays have ``block_until_ready``; CUDA tensors of PyTorch are waited for with
    ``torch.cuda.synchronize``.  NumPy arrays and Python numbers are already ready.
    """
    if isinstance(obj, (list, tuple)):
        for item in obj:
            block(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            block(item)
    elif hasattr(obj, "block_until_ready"):
        obj.block_until_ready()
    elif type(obj).__module__.startswith("torch") and getattr(obj, "is_cuda", False):
        import torch

        torch.cuda.synchronize(obj.device)
    return obj


def summarize(seconds) -> dict:
    """Run times in seconds -> ``{median_ms, min_ms, mean_ms, runs}`` (``runs`` in ms)."""
    ms = [1e3 * s for s in seconds]
    if not ms:
        raise ValueError("no timed runs")
    return {"median_ms": float(np.median(ms)), "min_ms": float(min(ms)),
            "mean_ms": float(np.mean(ms)), "runs": len(ms)}


def time_calls(fn: Callable, repeat: int = 10, warmup: int = 1, sync: Callable = block) -> dict:
    """Time ``repeat`` calls of ``fn()``, each until ``sync(result)`` returns; :func:`summarize`."""
    for _ in range(warmup):
        sync(fn())
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - t0)
    return summarize(times)


def time_loop(fn: Callable, steps: int = 10, loops: int = 3, sync: Callable = block) -> dict:
    """Per-call time of ``steps`` back-to-back calls that block only on the *last* result.

    This is a training loop that does not read the loss every step: with asynchronous dispatch
    (JAX, CUDA) the host prepares step n+1 while the device runs step n, so per-call overheads
    hide behind the computation.  Each call must depend on the previous one (a train step
    updates the parameters the next reads), so the last result is ready only when all are.
    Returns :func:`summarize` of the per-call times of ``loops`` loops.
    """
    sync(fn())
    per_call = []
    for _ in range(max(1, loops)):
        t0 = time.perf_counter()
        result = None
        for _ in range(max(1, steps)):
            result = fn()
        sync(result)
        per_call.append((time.perf_counter() - t0) / max(1, steps))
    return summarize(per_call)


def compare(candidates: dict, repeat: int = 10, rounds: int = 2, sync: Callable = block,
            failed: dict | None = None) -> dict:
    """Time several candidates (name -> zero-argument callable) against each other.

    Each round gives every candidate one block of ``ceil(repeat / rounds)`` timed calls after
    one untimed call (see the module docstring for why).  Returns name -> :func:`summarize`.
    With a ``failed`` dict, a candidate that raises is recorded there (name -> :func:`error_line`)
    and left out of the rest of the rounds and of the result; without one, the error propagates.
    """
    rounds = max(1, min(rounds, repeat))
    per_block = max(1, math.ceil(repeat / rounds))
    live = dict(candidates)
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in list(live.items()):
            try:
                sync(fn())
                for _ in range(per_block):
                    t0 = time.perf_counter()
                    sync(fn())
                    times[name].append(time.perf_counter() - t0)
            except Exception as e:
                if failed is None:
                    raise
                failed[name] = error_line(e)
                del live[name], times[name]
    return {name: summarize(t) for name, t in times.items()}


def error_line(e: BaseException) -> str:
    """``"Type: first line of the message"`` (at most 200 characters of it) for a report; an error from a
    child process (:mod:`rnnlm.bench.child`) keeps the line it had there."""
    if getattr(e, "line", None):
        return e.line
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__
