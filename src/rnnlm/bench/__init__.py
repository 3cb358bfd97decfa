"""Benchmarks: the NumPy reference, the compiled graphs, PyTorch, the GEMM roofline."""

from rnnlm.bench.speed import *  # noqa: F403  (split into modules with explicit exports next)
