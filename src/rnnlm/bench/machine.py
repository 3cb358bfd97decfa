"""The context of every number: CPU, load, BLAS kernel, engine, versions; optional libraries."""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time

import numpy as np

__all__ = ["blas_kernels", "busy_warning", "cpu_model", "default_linkers", "finish", "load_average",
           "load_now", "machine_info", "optional_module", "others_busy", "process_age"]


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo; elsewhere what :mod:`platform` reports)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_kernels() -> list:
    """The BLAS libraries loaded in this process and the kernel each chose (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    out = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        out.append({"library": lib.get("internal_api"), "version": lib.get("version"),
                    "kernel": lib.get("architecture"), "threads": lib.get("num_threads"),
                    "file": os.path.basename(lib.get("filepath") or "")})
    return out


def load_average() -> list:
    """The 1, 5 and 15-minute load averages, rounded (empty where the OS keeps none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


def others_busy(seconds: float = 0.3) -> float | None:
    """The share of all CPUs that other processes keep busy, measured over the next ``seconds`` (the
    system's CPU time from /proc/stat less this process's own); None where there is no /proc/stat.
    Unlike the load average, it does not still count a benchmark that ended a minute ago."""
    def sample():
        with open("/proc/stat", encoding="ascii") as f:
            # user nice system idle iowait irq softirq steal
            ticks = [int(v) for v in f.readline().split()[1:9]]
        return sum(ticks), ticks[3] + ticks[4], sum(os.times()[:2])

    try:
        total0, idle0, own0 = sample()
        time.sleep(seconds)
        total1, idle1, own1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    if total <= 0:
        return None
    busy = (total - (idle1 - idle0)) - (own1 - own0) * os.sysconf("SC_CLK_TCK")
    return round(min(1.0, max(0.0, busy / total)), 3)


def load_now() -> dict:
    """What a benchmark records before it starts: the load averages and :func:`others_busy`."""
    return {"load_average": load_average(), "others_busy": others_busy()}


def machine_info() -> dict:
    """CPU, cores, load, BLAS kernel, engine and library versions (only those already loaded,
    so asking does not import PyTorch or JAX)."""
    from rnnlm import __version__, engine

    info = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_kernels(),
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                           "OMP_NUM_THREADS", "XLA_FLAGS", "RNNLM_ENGINE",
                                           "RNNLM_FUSED_LAYERS", "RNNLM_MALLOC", "MKL_THREADING_LAYER",
                                           "KMP_BLOCKTIME")
                if k in os.environ},
        "rnnlm": __version__,
        **engine.describe(),
        "c_linker_blas": engine.blas_info() or "none (the engine's C linker links no BLAS)",
        "graph_ops": graph_ops(),
        "malloc": engine.malloc_configured or "system defaults",
        "openblas_idle": engine.openblas_configured
        or f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset')} (the user's)",
    }
    if "jax" in sys.modules:
        jax = sys.modules["jax"]
        info["jax"] = jax.__version__
        try:
            info["jax_devices"] = [str(d) for d in jax.devices()]
        except RuntimeError:  # pragma: no cover
            pass
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def busy_warning(machine: dict) -> str | None:
    """A note when other processes kept the CPUs busy as the benchmark started (shared CPUs inflate
    every timing): judged by ``others_busy`` (more than a quarter of all CPUs) where it was measured,
    else by the 1-minute load average (more than half the CPUs)."""
    cpus = machine.get("cpus_usable") or machine.get("cpus") or 1
    busy, load = machine.get("others_busy"), machine.get("load_average") or []
    if busy is not None:
        if busy <= 0.25:
            return None
        what = f"other processes kept {busy:.0%} of the {cpus} CPUs busy"
    elif load and load[0] > 0.5 * cpus:
        what = f"load average {load[0]} on {cpus} CPUs"
    else:
        return None
    return (f"{what} when the benchmark started: they shared the CPUs, so every timing is inflated and even "
            "ratios measured in this run are unreliable (candidates with more BLAS threads suffer more); "
            "measure on a quiet machine")


def graph_ops() -> dict:
    """Which of rnnlm's own graph ops the models use here (:mod:`rnnlm.engine_ops`): a whole recurrent
    layer as one node, the output layer with its loss as one chunked node, the tutorial's SGD step's
    output layer and V's step as one node (``fused_sgd``), the output kernel's bf16 products on AMX
    (``dnnl_bf16_amx``), and oneDNN's LSTM kernel for
    full LSTM batches on the C linker (``dnnl_lstm``; ``dnnl_lstm_why_not`` says why not) and on the JAX
    linker (``dnnl_lstm_jax``: the library was built with XLA's FFI headers and JAX runs on a CPU), with the
    cells whose layer is rnnlm's own in that library, per precision (``own_layers``: ``{"fp32": [...], "bf16":
    [...]}``, :func:`.dnnl.own_layer`)."""
    from rnnlm import engine_ops

    ops = {"fused_layers": engine_ops.available(), "fused_output": engine_ops.fused_output(),
           "fused_sgd": engine_ops.fused_sgd(), "dnnl_lstm": engine_ops.dnnl_lstm("c"),
           "dnnl_lstm_jax": engine_ops.dnnl_lstm("jax"),
           "dnnl_bf16_amx": engine_ops.fused_output() and engine_ops.dnnl.bf16_amx()}
    ops["own_layers"] = {
        p: [c for c in ("gru", "lstm") if ops["dnnl_lstm"] and engine_ops.dnnl.own_layer(c, p)]
        for p in ("fp32", "bf16")}
    if engine_ops.fused_output() and not ops["dnnl_lstm"]:  # (both off with RNNLM_FUSED_LAYERS=off)
        ops["dnnl_lstm_why_not"] = engine_ops.dnnl.why_not()
    return ops


def finish(out: dict, load_before: dict) -> dict:
    """Attach :func:`machine_info` (read now, when every library used is loaded), the load before
    (:func:`load_now`, taken as the benchmark started) and after, and :func:`busy_warning`."""
    machine = machine_info()
    machine["load_average"], machine["others_busy"] = load_before["load_average"], load_before["others_busy"]
    out["machine"] = machine
    out["load_average_before"] = load_before["load_average"]
    out["load_average_after"] = load_average()
    note = busy_warning(machine)
    if note:
        out["warning"] = note
    return out


def process_age() -> float | None:
    """Seconds since this process started (Linux), else None: the cold start as a user sees it."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):  # pragma: no cover - not Linux
        return None


def optional_module(name: str):
    """The module ``name`` if it can be imported, else None (JAX and PyTorch are optional
    dependencies of the bench)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def default_linkers() -> list:
    """``['jax', 'c']`` on PyTensor with JAX installed, else ``['c']`` (Aesara: C only)."""
    from rnnlm import engine

    return ["jax", "c"] if engine.default_linker() == "jax" else ["c"]
