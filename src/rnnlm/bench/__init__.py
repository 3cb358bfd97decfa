"""Benchmarks: the NumPy reference, the compiled graphs, PyTorch, the GEMM roofline.

Every benchmark runs in one process and returns a JSON-ready dict: timings in milliseconds
(median and minimum of ``repeat`` synchronised runs, :mod:`~rnnlm.bench.timing`), the rates
derived from them, and :func:`~rnnlm.bench.machine.machine_info` (CPU, load average, BLAS kernel,
engine, versions), so that no number is read without its context.  Candidates that cannot run
here (a missing optional library or device) are listed under ``skipped`` with the reason; those
that raise, under ``failed`` with the error (:class:`~rnnlm.bench.candidates.Candidates`).

- :mod:`~rnnlm.bench.sgd_step`: the tutorial's SGD step, NumPy vs the compiled graphs (issue 3).
- :mod:`~rnnlm.bench.train`: a batched training step, rnnlm vs PyTorch vs the GEMM roofline
  (:mod:`~rnnlm.bench.roofline`; issue 4).
- :mod:`~rnnlm.bench.generate`: incremental generation (issue 10) and part 4's GRU (issue 5).
- :mod:`~rnnlm.bench.report`: the results as text.

Shapes follow the library: batches are time-major, ``x``, ``y`` and ``mask`` are (L, B).
"""

from rnnlm.bench.candidates import Candidates
from rnnlm.bench.char import CHAR_PRESET, CHAR_TORCH_TARGET, bench_char, char_flops
from rnnlm.bench.generate import PART4, bench_generate, bench_gru_part4
from rnnlm.bench.machine import (
    blas_kernels,
    busy_warning,
    cpu_model,
    default_linkers,
    finish,
    load_average,
    load_now,
    machine_info,
    optional_module,
    others_busy,
    process_age,
)
from rnnlm.bench.report import failures, print_report
from rnnlm.bench.roofline import gemm_roofline, output_gemm_flops, words_per_second
from rnnlm.bench.sgd_step import SGD_TARGET_SPEEDUP, bench_sgd_step, tutorial_sgd_graph
from rnnlm.bench.shipped import SHIPPED_TARGETS, bench_shipped
from rnnlm.bench.timing import block, compare, error_line, summarize, time_calls, time_loop
from rnnlm.bench.train import (
    CELLS,
    ROOFLINE_TARGET,
    TORCH_TARGET_RATIO,
    bench_train,
    random_batch,
    rnnlm_train_candidate,
    torch_train_candidate,
)

__all__ = [
    "SHIPPED_TARGETS",
    "bench_shipped",
    "CHAR_PRESET",
    "CHAR_TORCH_TARGET",
    "bench_char",
    "char_flops",
    "CELLS",
    "PART4",
    "ROOFLINE_TARGET",
    "SGD_TARGET_SPEEDUP",
    "TORCH_TARGET_RATIO",
    "Candidates",
    "bench_generate",
    "bench_gru_part4",
    "bench_sgd_step",
    "bench_train",
    "blas_kernels",
    "block",
    "busy_warning",
    "compare",
    "cpu_model",
    "default_linkers",
    "error_line",
    "failures",
    "finish",
    "gemm_roofline",
    "load_average",
    "load_now",
    "others_busy",
    "machine_info",
    "optional_module",
    "output_gemm_flops",
    "print_report",
    "process_age",
    "random_batch",
    "rnnlm_train_candidate",
    "summarize",
    "time_calls",
    "time_loop",
    "torch_train_candidate",
    "tutorial_sgd_graph",
    "words_per_second",
]
