"""The floor of a training step: the output layer's three GEMMs timed with NumPy; FLOPs and rates."""

from __future__ import annotations

import numpy as np

from rnnlm.bench.timing import compare, time_calls

__all__ = ["gemm_roofline", "output_gemm_flops", "words_per_second"]


def output_gemm_flops(n_rows: int, hidden: int, vocab: int) -> int:
    """FLOPs of the output layer's three GEMMs in one training step (forward + backward).

    With N = B·L rows of top states S (N, H) and output weights V (C, H):
    logits = S Vᵀ, dS = dlogits V, dV = dlogitsᵀ S -- each N·H·C multiply-adds, 2 FLOPs each.
    """
    return 3 * 2 * int(n_rows) * int(hidden) * int(vocab)


def gemm_roofline(n_rows: int, hidden: int, vocab: int, repeat: int = 5, seed: int = 0) -> dict:
    """Time the three output-layer GEMMs with NumPy (float32): the floor of a training step.

    Returns ``{n_rows, hidden, vocab, flops, median_ms, min_ms, gflop_s, each_ms}``;
    ``gflop_s`` is from the median.
    """
    rng = np.random.default_rng(seed)
    S = rng.standard_normal((n_rows, hidden), dtype=np.float32)
    V = rng.standard_normal((vocab, hidden), dtype=np.float32)
    G = rng.standard_normal((n_rows, vocab), dtype=np.float32)
    parts = {
        "logits = S V^T": lambda: S @ V.T,
        "dS = dlogits V": lambda: G @ V,
        "dV = dlogits^T S": lambda: G.T @ S,
    }
    each = compare(parts, repeat=repeat, rounds=1)
    total = time_calls(lambda: [f() for f in parts.values()], repeat=repeat)
    flops = output_gemm_flops(n_rows, hidden, vocab)
    return {"n_rows": int(n_rows), "hidden": int(hidden), "vocab": int(vocab), "flops": flops,
            "median_ms": total["median_ms"], "min_ms": total["min_ms"],
            "gflop_s": flops / (total["median_ms"] / 1e3) / 1e9,
            "each_ms": {k: v["median_ms"] for k, v in each.items()}}


def words_per_second(batch_size: int, steps: int, ms: float) -> float:
    """Predicted words per second of a step that handles ``batch_size`` × ``steps`` tokens."""
    return batch_size * steps / (ms / 1e3)
