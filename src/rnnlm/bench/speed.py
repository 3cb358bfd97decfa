"""Benchmarks: the tutorial's SGD step, batched training against PyTorch and the GEMM roofline,
incremental generation, and the part-4 GRU step.

Every benchmark runs in one process and returns a JSON-ready dict: timings in milliseconds
(median and minimum of ``repeat`` synchronised runs), the rates derived from them, and
:func:`machine_info` (CPU, load average, BLAS kernel, engine, versions), so that no number is
read without its context.

Timing rule: JAX and CUDA PyTorch dispatch asynchronously, so a clock read right after the call
measures only the dispatch.  :func:`time_calls` calls ``sync`` on each result *inside* the timed
region; the default, :func:`block`, waits on every array it finds in the result.  rnnlm's
compiled functions also update shared parameters, so the rnnlm candidates return those too.

Several libraries in one process: OpenBLAS, OpenMP (PyTorch) and XLA's thread pool each keep
worker threads that spin for a while after a parallel region.  :func:`compare` therefore times
candidates in blocks (one untimed call first in each block) and rotates the blocks over a few
rounds, so that neither spinning neighbours nor the drift of a shared machine's load falls on
one candidate alone.

Shapes follow the library: batches are time-major, ``x``, ``y`` and ``mask`` are (L, B).
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np

from rnnlm.errors import ConfigError

SGD_TARGET_SPEEDUP = 15.0  # issue 3: compiled graph vs the NumPy reference, same process
TORCH_TARGET_RATIO = 2.0  # issue 4, CPU: words/s vs PyTorch
ROOFLINE_TARGET = 0.6  # issue 4, CPU: fraction of the three-GEMM roofline
CELLS = ("rnn", "gru", "lstm")


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------
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


def compare(candidates: dict, repeat: int = 10, rounds: int = 2, sync: Callable = block) -> dict:
    """Time several candidates (name -> zero-argument callable) against each other.

    Each round gives every candidate one block of ``ceil(repeat / rounds)`` timed calls after
    one untimed call (see the module docstring for why).  Returns name -> :func:`summarize`.
    """
    rounds = max(1, min(rounds, repeat))
    per_block = max(1, math.ceil(repeat / rounds))
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            sync(fn())
            for _ in range(per_block):
                t0 = time.perf_counter()
                sync(fn())
                times[name].append(time.perf_counter() - t0)
    return {name: summarize(t) for name, t in times.items()}


# --------------------------------------------------------------------------------------------
# machine and versions
# --------------------------------------------------------------------------------------------
def cpu_model() -> str:
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
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


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
                                           "OMP_NUM_THREADS", "XLA_FLAGS", "RNNLM_ENGINE")
                if k in os.environ},
        "rnnlm": __version__,
        **engine.describe(),
        "c_linker_blas": engine.blas_info() or "none (the engine's C linker links no BLAS)",
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
    """A note when the machine was already loaded (shared CPUs inflate every timing)."""
    load = machine.get("load_average") or []
    cpus = machine.get("cpus_usable") or machine.get("cpus") or 1
    if load and load[0] > 0.5 * cpus:
        return (f"load average {load[0]} on {cpus} CPUs when the benchmark started: other processes "
                "shared the CPUs, absolute timings are inflated (ratios measured in this run are "
                "comparable; numbers from other runs are not)")
    return None


def finish(out: dict, load_before: list) -> dict:
    """Attach :func:`machine_info` (read now, when every library used is loaded), the load
    average before and after, and :func:`busy_warning`."""
    machine = machine_info()
    machine["load_average"] = load_before
    out["machine"] = machine
    out["load_average_before"] = load_before
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


def _jax():
    """``jax`` if importable, else None (it is an optional dependency of the bench)."""
    try:
        import jax
    except ImportError:
        return None
    return jax


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def default_linkers() -> list:
    """``['jax', 'c']`` on PyTensor with JAX installed, else ``['c']`` (Aesara: C only)."""
    from rnnlm import engine

    return ["jax", "c"] if engine.default_linker() == "jax" else ["c"]


# --------------------------------------------------------------------------------------------
# the GEMM roofline
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# the tutorial's SGD step (issue 3)
# --------------------------------------------------------------------------------------------
def tutorial_sgd_graph(rnn, length: int, form: str = "split", linker: str = "jax"):
    """A static-length compiled ``sgd_step(x, y, lr)`` on the shared U, V, W of ``rnn``.

    ``rnn`` is a :class:`rnnlm.models.tutorial.RNN`; ``length`` the sentence length T (static shapes are
    what the JAX linker needs; ``RNN`` declares ``x`` as a vector of unknown length).

    - ``form="static"``: ``RNN``'s fast graph as it is (``U[:, x_t]`` inside the scan,
      ``truncate_gradient``), only with static shapes.
    - ``form="split"``: the faster graph proposed for ``RNN``: the input columns ``U[:, x]``
      gathered once outside the scan; truncation written as two scans, the first ``T-k`` steps
      with their gradient path to U and W disconnected (this is exactly what
      ``truncate_gradient=k`` computes, but PyTensor's JAX backend fails on a truncated scan
      whose sequence needs a gradient); and U updated only in the columns that were used
      (``inc_subtensor``) instead of ``U - lr·dU`` with a dense (H, C) dU.

    Both give the gradients of :meth:`rnnlm.models.reference.RNNNumpy.bptt` with ``truncation="scan"``.
    """
    from rnnlm import engine

    T = engine.T
    U, V, W = rnn.U, rnn.V, rnn.W
    H, k, L = rnn.hidden_dim, rnn.bptt_truncate, int(length)
    f = T.tanh if rnn.activation == "tanh" else (lambda a: T.maximum(a, T.constant(0.0, dtype=engine.floatX)))
    x = engine.tensor("x", "int32", (L,))
    y = engine.tensor("y", "int32", (L,))
    lr = T.scalar("learning_rate", dtype=engine.floatX)
    s0 = T.zeros((H,), dtype=engine.floatX)
    if form == "static":
        def step(x_t, s_prev, U, W):
            return f(U[:, x_t] + T.dot(W, s_prev))

        s = engine.scan(step, sequences=[x], outputs_info=[s0], non_sequences=[U, W],
                        truncate_gradient=k)
    elif form == "split":
        # engine exports no disconnected_grad yet; both engines have it under .gradient
        cut = engine.disconnected_grad
        proj = U.T[x]  # (T, H): U[:, x_t] for every step, one gather
        Wt = W.T

        def step(p_t, s_prev, Wt):
            return f(p_t + T.dot(s_prev, Wt))

        n0 = L - k if 0 <= k < L else 0
        if n0:
            s1 = engine.scan(step, sequences=[cut(proj[:n0])], outputs_info=[s0], non_sequences=[cut(Wt)])
            s2 = engine.scan(step, sequences=[proj[n0:]], outputs_info=[cut(s1[-1])], non_sequences=[Wt])
            s = T.concatenate([s1, s2], axis=0)
        else:
            s = engine.scan(step, sequences=[proj], outputs_info=[s0], non_sequences=[Wt])
    else:
        raise ConfigError(f"unknown graph form {form!r}; choose static or split")
    logp = engine.log_softmax(T.dot(s, V.T), axis=-1)  # (T, C): one GEMM for all steps
    loss = -T.sum(logp[T.arange(L), y])
    if form == "split":
        dproj, dV, dW = engine.grad(loss, [proj, V, W])
        new_U = T.inc_subtensor(U.T[x], -lr * dproj).T  # repeated words accumulate, as in dU
        updates = [(U, new_U), (V, V - lr * dV), (W, W - lr * dW)]
    else:
        dU, dV, dW = engine.grad(loss, [U, V, W])
        updates = [(U, U - lr * dU), (V, V - lr * dV), (W, W - lr * dW)]
    return engine.function([x, y, lr], [], updates=updates, mode=engine.mode_for(linker))


def _hand_jax_tutorial_step(params: dict, bptt_truncate: int, length: int, activation="tanh"):
    """The same SGD step written directly in JAX (not rnnlm: the floor of the XLA backend).

    Truncation as in ``tutorial_sgd_graph(form="split")``.  Returns ``step(x, y, lr)`` that
    updates its own copy of the parameters and returns them (to be blocked on).
    """
    import jax
    import jax.numpy as jnp

    f = jnp.tanh if activation == "tanh" else jax.nn.relu
    L, k = int(length), int(bptt_truncate)
    n0 = L - k if 0 <= k < L else 0
    H = params["W"].shape[0]

    def run(proj, s, Wt):
        def body(s, p_t):
            s = f(p_t + s @ Wt)
            return s, s

        return jax.lax.scan(body, s, proj)

    def loss(proj, V, W, y):
        Wt = W.T
        s_last = jnp.zeros((H,), jnp.float32)
        parts = []
        if n0:
            s_last, s1 = run(jax.lax.stop_gradient(proj[:n0]), s_last, jax.lax.stop_gradient(Wt))
            s_last = jax.lax.stop_gradient(s_last)
            parts.append(s1)
        _, s2 = run(proj[n0:], s_last, Wt)
        S = jnp.concatenate(parts + [s2], axis=0)
        logp = jax.nn.log_softmax(S @ V.T, axis=-1)
        return -jnp.sum(logp[jnp.arange(L), y])

    @jax.jit
    def sgd(p, x, y, lr):
        proj = p["U"].T[x]
        dproj, dV, dW = jax.grad(loss, argnums=(0, 1, 2))(proj, p["V"], p["W"], y)
        return {"U": p["U"].at[:, x].add(-lr * dproj.T), "V": p["V"] - lr * dV, "W": p["W"] - lr * dW}

    state = {"p": {k_: jnp.asarray(np.asarray(v, np.float32)) for k_, v in params.items()}}

    def step(x, y, lr):
        state["p"] = sgd(state["p"], x, y, lr)
        return state["p"]

    step.params = lambda: state["p"]
    return step


def bench_sgd_step(word_dim: int = 8000, hidden_dim: int = 100, bptt_truncate: int = 4,
                   length: int = 45, repeat: int = 10, linkers=None, hand_jax: bool = True,
                   seed: int = 0, learning_rate: float = 0.005) -> dict:
    """The tutorial's experiment: one SGD step on one sentence, NumPy reference vs compiled graph.

    Candidates (those that cannot run here are listed under ``skipped`` with the reason):
    ``numpy`` -- :class:`~rnnlm.models.reference.RNNNumpy` ``sgd_step`` (float64, the tutorial's
    truncated BPTT loop); ``rnn_c`` -- :class:`~rnnlm.models.tutorial.RNN` (fast form) on the C linker,
    as the library ships it; ``rnn_jax_static`` and ``rnn_jax_split`` -- the forms of
    :func:`tutorial_sgd_graph` on the JAX linker; ``hand_jax`` -- the same step written in JAX.
    All start from the same float32-representable weights.  ``speedup`` is numpy's median
    over the candidate's.
    """
    from rnnlm import engine
    from rnnlm.models.reference import RNNNumpy, init_tutorial_params
    from rnnlm.models.tutorial import RNN

    load_before = load_average()
    linkers = default_linkers() if linkers is None else list(linkers)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, word_dim, length).astype(np.int32)
    y = rng.integers(0, word_dim, length).astype(np.int32)
    params = {k: v.astype(np.float32) for k, v in init_tutorial_params(word_dim, hidden_dim, seed=seed).items()}
    lr32 = np.float32(learning_rate)
    cands, info, skipped = {}, {}, {}

    ref = RNNNumpy(word_dim, hidden_dim, bptt_truncate, params=params)
    cands["numpy"] = lambda: ref.sgd_step(x, y, learning_rate)
    info["numpy"] = {"dtype": "float64", "compile_s": 0.0,
                     "what": "reference.RNNNumpy.sgd_step (the tutorial's truncated BPTT loop)"}

    def shared_values(rnn):
        return [p.get_value(borrow=True, return_internal_type=True) for p in (rnn.U, rnn.V, rnn.W)]

    if "c" in linkers:
        t0 = time.perf_counter()
        rnn_c = RNN(word_dim, hidden_dim, bptt_truncate, params=params, fast=True, linker="c")
        rnn_c.sgd_step(x, y, lr32)
        info["rnn_c"] = {"dtype": "float32", "compile_s": time.perf_counter() - t0,
                         "what": "model.RNN(fast=True, linker='c').sgd_step, as shipped"}
        cands["rnn_c"] = lambda: rnn_c.sgd_step(x, y, lr32)
    if "jax" in linkers:
        for form in ("static", "split"):
            name = f"rnn_jax_{form}"
            try:
                t0 = time.perf_counter()
                rnn_j = RNN(word_dim, hidden_dim, bptt_truncate, params=params, fast=True, linker="jax")
                fn = tutorial_sgd_graph(rnn_j, length, form=form, linker="jax")
                block([fn(x, y, lr32), shared_values(rnn_j)])
            except Exception as e:  # noqa: BLE001 - a failing variant is reported, not fatal
                skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                continue
            info[name] = {"dtype": "float32", "compile_s": time.perf_counter() - t0,
                          "what": {"static": "model.RNN's fast graph with a static length, JAX linker",
                                   "split": "gather outside scan, truncation as two scans, sparse U "
                                            "update; JAX linker"}[form]}
            cands[name] = (lambda fn=fn, r=rnn_j: [fn(x, y, lr32), shared_values(r)])
    else:
        why = ("the jax linker was not asked for" if engine.default_linker() == "jax"
               else f"no jax linker here ({engine.name} {engine.version}: C linker only, or JAX not installed)")
        skipped["rnn_jax_static"] = skipped["rnn_jax_split"] = why
    if hand_jax:
        if _jax() is None:
            skipped["hand_jax"] = "jax is not installed"
        else:
            t0 = time.perf_counter()
            hj = _hand_jax_tutorial_step(params, bptt_truncate, length)
            block(hj(x, y, lr32))
            info["hand_jax"] = {"dtype": "float32", "compile_s": time.perf_counter() - t0,
                                "what": "the split graph written directly in JAX (not rnnlm; the XLA floor)"}
            cands["hand_jax"] = lambda: hj(x, y, lr32)

    timings = compare(cands, repeat=repeat)
    base = timings["numpy"]["median_ms"]
    results = {name: {**info[name], **timings[name], "speedup": base / timings[name]["median_ms"]}
               for name in cands}
    rnnlm_names = [n for n in results if n.startswith("rnn_")]
    best = max(rnnlm_names, key=lambda n: results[n]["speedup"]) if rnnlm_names else None
    out = {
        "benchmark": "sgd-step",
        "settings": {"word_dim": word_dim, "hidden_dim": hidden_dim, "bptt_truncate": bptt_truncate,
                     "length": length, "repeat": repeat, "learning_rate": learning_rate, "seed": seed,
                     "linkers": linkers},
        "candidates": results,
        "skipped": skipped,
        "best": best,
        "best_speedup": results[best]["speedup"] if best else None,
        "target_speedup": SGD_TARGET_SPEEDUP,
    }
    return finish(out, load_before)


# --------------------------------------------------------------------------------------------
# batched training (issue 4)
# --------------------------------------------------------------------------------------------
def _random_batch(rng, vocab, steps, batch):
    x = rng.integers(0, vocab, (steps, batch)).astype(np.int32)
    y = rng.integers(0, vocab, (steps, batch)).astype(np.int32)
    return x, y, np.ones((steps, batch), np.float32)


def rnnlm_train_candidate(config, x, y, mask, linker, optimizer="sgd", lr=None, seed=0):
    """Build a LanguageModel, run its first step; returns ``(step_fn, cold_start_s)``.

    ``cold_start_s`` is the wall time from constructing the model to the end of the first
    training step (graph building, rewriting, compilation, first run); the interpreter's and the
    engine's import time come on top (``process_to_first_step_s`` in :func:`bench_train`).  ``step_fn()`` runs one
    ``train_step`` and returns its outputs and the updated shared values, to be blocked on.
    """
    from rnnlm.models.lm import LanguageModel
    from rnnlm.training.optim import make_optimizer

    t0 = time.perf_counter()
    model = LanguageModel(config, seed=seed, linker=linker)
    model.set_optimizer(make_optimizer(optimizer, lr=lr))
    shared = list(model.params.values())

    def step():
        loss_sum, _ntok, gnorm, states = model.train_step(x, y, mask)
        return [loss_sum, gnorm, states, [p.get_value(borrow=True, return_internal_type=True) for p in shared]]

    block(step())
    # a float64 leak under JAX halves the speed: every benchmark reports what the parameters became
    step.param_dtypes = lambda: sorted({str(p.get_value(borrow=True, return_internal_type=True).dtype)
                                        for p in shared})
    return step, time.perf_counter() - t0


def torch_train_candidate(cell, vocab, hidden, x, y, lr, device="cpu", seed=0):
    """PyTorch's version of the same model: nn.Embedding(C, H) → nn.RNN/GRU/LSTM(H, H) →
    nn.Linear(H, C), mean cross-entropy, plain SGD; returns ``(step_fn, first_step_s)``.

    On a GPU, TF32 matmuls are allowed (JAX's default precision for float32 there) and the
    batch is copied to the device once.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if device == "gpu":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        dev = torch.device("cuda")
    else:
        dev = torch.device("cpu")
    rnn_cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            self.rnn = rnn_cls(hidden, hidden)  # time-major (L, B, H), as rnnlm
            self.out = nn.Linear(hidden, vocab)

        def forward(self, x):
            h, _ = self.rnn(self.embed(x))
            return self.out(h.reshape(-1, hidden))

    t0 = time.perf_counter()
    net = Net().to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    xt = torch.as_tensor(x.astype(np.int64), device=dev)
    yt = torch.as_tensor(y.astype(np.int64), device=dev).reshape(-1)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
        return loss  # a CUDA loss is blocked on by block(); every kernel before it is done

    block(step())
    return step, time.perf_counter() - t0


def _hand_jax_train_step(cell, vocab, hidden, x, y, lr, seed=0):
    """The same model and step written directly in JAX (diagnostic: what XLA alone achieves).
    Returns ``(step_fn, first_step_s)``."""
    import jax
    import jax.numpy as jnp

    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    H = hidden
    rng = np.random.default_rng(seed)

    def u(*shape, fan):
        return jnp.asarray(rng.uniform(-1, 1, shape).astype(np.float32) / np.float32(np.sqrt(fan)))

    p = {"E": u(vocab, H, fan=H), "U": u(H, G * H, fan=H), "W": u(H, G * H, fan=H),
         "b": jnp.zeros((G * H,), jnp.float32), "V": u(H, vocab, fan=H), "c": jnp.zeros((vocab,), jnp.float32)}
    L, B = x.shape

    def cell_step(carry, p_t, W):
        if cell == "rnn":
            h = jnp.tanh(p_t + carry @ W)
            return h, h
        if cell == "gru":
            s = carry
            zr = jax.nn.sigmoid(p_t[:, : 2 * H] + s @ W[:, : 2 * H])
            z, r = zr[:, :H], zr[:, H:]
            c = jnp.tanh(p_t[:, 2 * H:] + (s * r) @ W[:, 2 * H:])
            s = (1.0 - z) * c + z * s
            return s, s
        h, c_prev = carry
        a = p_t + h @ W
        i, f, o = jnp.split(jax.nn.sigmoid(a[:, : 3 * H]), 3, axis=1)
        c = f * c_prev + i * jnp.tanh(a[:, 3 * H:])
        h = o * jnp.tanh(c)
        return (h, c), h

    def loss(p, x, y):
        proj = (p["E"][x.reshape(-1)] @ p["U"] + p["b"]).reshape(L, B, G * H)
        zero = jnp.zeros((B, H), jnp.float32)
        init = (zero, zero) if cell == "lstm" else zero
        _, hs = jax.lax.scan(lambda c, p_t: cell_step(c, p_t, p["W"]), init, proj)
        logits = hs.reshape(L * B, H) @ p["V"] + p["c"]
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y.reshape(-1, 1), axis=1))

    @jax.jit
    def sgd(p, x, y):
        value, g = jax.value_and_grad(loss)(p, x, y)
        return {k: p[k] - np.float32(lr) * g[k] for k in p}, value

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    state = {"p": p}

    def step():
        state["p"], value = sgd(state["p"], xj, yj)
        return [state["p"], value]

    t0 = time.perf_counter()
    block(step())
    return step, time.perf_counter() - t0


def bench_train(cells=CELLS, vocab_size: int = 8000, hidden_dim: int = 128, batch_size: int = 64,
                steps: int = 32, linkers=None, device: str = "cpu", torch: bool = True,
                hand_jax: bool = True, roofline: bool = True, repeat: int = 10, seed: int = 0,
                learning_rate: float = 0.005) -> dict:
    """One training step (full softmax, SGD, float32) of rnnlm vs PyTorch vs the GEMM roofline.

    Both models have an embedding of size H (``embedding_dim=hidden_dim`` in rnnlm), so they do
    the same work.  Per cell, name -> timing of one synchronised step (``median_ms``...),
    ``words_per_s``, ``cold_start_s``, and ``loop_ms`` (per step in a loop that blocks only on
    its last step, :func:`time_loop`); for each rnnlm candidate ``vs_torch`` (its words/s over
    PyTorch's), ``vs_torch_loop`` (the same from ``loop_ms``) and ``vs_roofline`` (roofline
    time over its time).  ``device="gpu"`` runs JAX and PyTorch
    on the GPU (the C linker and the NumPy roofline are CPU-only and skipped).
    """
    from rnnlm import engine
    from rnnlm.models.lm import ModelConfig

    cells = list(cells)
    for c in cells:
        if c not in CELLS:
            raise ConfigError(f"unknown cell {c!r}; choose from {', '.join(CELLS)}")
    platform_used = engine.select_device(device)
    linkers = default_linkers() if linkers is None else list(linkers)
    skipped = {}
    if platform_used == "gpu":
        if "c" in linkers:
            skipped["rnnlm_c"] = "the C linker runs on the CPU only"
        linkers = [lk for lk in linkers if lk != "c"]
        if not linkers:
            raise ConfigError("--device gpu needs the jax linker")
    torch_mod = _torch() if torch else None
    if torch and torch_mod is None:
        skipped["torch"] = "PyTorch is not installed (optional: pip install 'rnnlm[torch]')"
    if device == "gpu" and torch_mod is not None and not torch_mod.cuda.is_available():
        skipped["torch"] = "PyTorch sees no CUDA device"
        torch_mod = None
    if hand_jax and _jax() is None:
        skipped["hand_jax"] = "jax is not installed"
        hand_jax = False
    load_before = load_average()
    rng = np.random.default_rng(seed)
    x, y, mask = _random_batch(rng, vocab_size, steps, batch_size)
    words = batch_size * steps

    roof = None
    if roofline and platform_used == "cpu":
        roof = gemm_roofline(batch_size * steps, hidden_dim, vocab_size, repeat=max(3, repeat // 2), seed=seed)
    elif roofline:
        skipped["roofline"] = "the NumPy GEMM roofline is measured on the CPU only"

    per_cell = {}
    first_step_at = None
    for cell in cells:
        cfg = ModelConfig(vocab_size=vocab_size, hidden_dim=hidden_dim, cell=cell, embedding_dim=hidden_dim)
        cands, meta = {}, {}
        for linker in linkers:
            fn, cold = rnnlm_train_candidate(cfg, x, y, mask, linker, lr=learning_rate, seed=seed)
            if first_step_at is None:
                first_step_at = process_age()  # interpreter, imports, graph, compile, first step
            cands[f"rnnlm_{linker}"] = fn
            meta[f"rnnlm_{linker}"] = {"cold_start_s": cold, "what": f"LanguageModel.train_step, {linker} linker"}
        if torch_mod is not None:
            fn, first = torch_train_candidate(cell, vocab_size, hidden_dim, x, y, learning_rate, device=platform_used,
                                              seed=seed)
            cands["torch"] = fn
            meta["torch"] = {"cold_start_s": first, "what": f"PyTorch {torch_mod.__version__} eager, "
                                                           f"nn.{cell.upper() if cell != 'rnn' else 'RNN'}"}
        if hand_jax:
            fn, first = _hand_jax_train_step(cell, vocab_size, hidden_dim, x, y, learning_rate, seed=seed)
            cands["hand_jax"] = fn
            meta["hand_jax"] = {"cold_start_s": first, "what": "the same model written directly in JAX "
                                                              "(not rnnlm; the XLA floor)"}
        timings = compare(cands, repeat=repeat)
        loops = {name: time_loop(fn, steps=repeat) for name, fn in cands.items()}
        for name, fn in cands.items():
            if hasattr(fn, "param_dtypes"):
                meta[name]["param_dtypes"] = fn.param_dtypes()
        res = {}
        for name, t in timings.items():
            res[name] = {**meta[name], **t, "words_per_s": words_per_second(batch_size, steps, t["median_ms"]),
                         "loop_ms": loops[name]["median_ms"]}
        for name, r in res.items():
            if name.startswith("rnnlm_"):
                if "torch" in res:
                    r["vs_torch"] = r["words_per_s"] / res["torch"]["words_per_s"]
                    r["vs_torch_loop"] = res["torch"]["loop_ms"] / r["loop_ms"]
                if roof is not None:
                    r["vs_roofline"] = roof["median_ms"] / r["median_ms"]
        per_cell[cell] = res

    out = {
        "benchmark": "train",
        "settings": {"cells": cells, "vocab_size": vocab_size, "hidden_dim": hidden_dim,
                     "embedding_dim": hidden_dim, "batch_size": batch_size, "steps": steps,
                     "words_per_step": words, "optimizer": "sgd", "learning_rate": learning_rate,
                     "dtype": "float32", "softmax": "full", "repeat": repeat, "seed": seed,
                     "device": platform_used, "linkers": linkers},
        "cells": per_cell,
        "roofline": roof,
        "skipped": skipped,
        "targets": ({"vs_torch": TORCH_TARGET_RATIO, "vs_roofline": ROOFLINE_TARGET}
                    if platform_used == "cpu" else {"vs_torch": 1.0}),
        "process_to_first_step_s": first_step_at,
    }
    return finish(out, load_before)


# --------------------------------------------------------------------------------------------
# incremental generation (issue 10)
# --------------------------------------------------------------------------------------------
def _sample_rows(rng, logp):
    """One token per row of ``logp`` (B, C), drawn from exp(logp) by inverse CDF."""
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random((p.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf < u).sum(axis=1), p.shape[1] - 1).astype(np.int32)


def bench_generate(vocab_size: int = 8000, hidden_dim: int = 128, cell: str = "rnn", layers: int = 1,
                   batch_sizes=(1, 64), tokens: int = 500, window: int = 50, linker=None,
                   seed: int = 0) -> dict:
    """Tokens per second of incremental generation with ``LanguageModel.step_function``.

    Each token: the compiled step (one token for every row, state in, log-probabilities and
    new state out, to the host) and sampling from the distribution in NumPy.  ``first_ms`` /
    ``last_ms``: median time per token over tokens 1..window and (tokens-window+1)..tokens;
    their ratio near 1 shows the cost per token does not grow with the position.
    """
    from rnnlm import engine
    from rnnlm.models.lm import LanguageModel, ModelConfig

    if tokens < 2 * window:
        raise ConfigError(f"--tokens ({tokens}) must be at least twice --window ({window})")
    linker = linker or engine.default_linker()
    load_before = load_average()
    cfg = ModelConfig(vocab_size=vocab_size, hidden_dim=hidden_dim, cell=cell, layers=layers)
    model = LanguageModel(cfg, seed=seed, linker=linker)
    rng = np.random.default_rng(seed)
    results = {}
    for B in batch_sizes:
        t0 = time.perf_counter()
        step = model.step_function(int(B))
        states = model.initial_state(int(B))
        tok = np.zeros(int(B), np.int32)
        out = step(tok, *states)
        np.asarray(out[0])
        compile_s = time.perf_counter() - t0
        states = model.initial_state(int(B))
        tok = np.zeros(int(B), np.int32)
        per_token, step_only = [], []
        t_start = time.perf_counter()
        for _ in range(tokens):
            t0 = time.perf_counter()
            out = step(tok, *states)
            logp = np.asarray(out[0])  # the host needs it to sample: this also synchronises
            t1 = time.perf_counter()
            tok = _sample_rows(rng, logp)
            states = out[1:]
            t2 = time.perf_counter()
            step_only.append(t1 - t0)
            per_token.append(t2 - t0)
        total = time.perf_counter() - t_start
        first = summarize(per_token[:window])
        last = summarize(per_token[-window:])
        results[str(B)] = {
            "batch_size": int(B), "tokens": tokens, "total_s": total,
            "tokens_per_s": int(B) * tokens / total, "steps_per_s": tokens / total,
            "ms_per_token": summarize(per_token)["median_ms"],
            "step_ms": summarize(step_only)["median_ms"],
            "first_ms": first["median_ms"], "last_ms": last["median_ms"],
            "last_over_first": last["median_ms"] / first["median_ms"],
            "compile_s": compile_s,
        }
    out = {
        "benchmark": "generate",
        "settings": {"vocab_size": vocab_size, "hidden_dim": hidden_dim, "cell": cell, "layers": layers,
                     "tokens": tokens, "window": window, "linker": linker, "seed": seed,
                     "sampling": "inverse CDF in NumPy, every token"},
        "batches": results,
    }
    return finish(out, load_before)


# --------------------------------------------------------------------------------------------
# part 4's GRU (issue 5)
# --------------------------------------------------------------------------------------------
PART4 = {"vocab_size": 2000, "hidden_dim": 128, "cell": "gru", "layers": 2, "embedding_dim": 48,
         "gate": "hard_sigmoid", "output_bias": True}


def bench_gru_part4(batch_sizes=(1, 64), length: int = 32, repeat: int = 10, linkers=None,
                    seed: int = 0, config: dict | None = None) -> dict:
    """Training-step time of the tutorial's part-4 model (2-layer GRU, embedding 48, hidden 128,
    vocabulary 2000, hard-sigmoid gates, RMSProp decay 0.9, eps 1e-6, lr 0.001, full BPTT) on one
    sentence (batch 1, as the tutorial trained it) and on a sentence batch."""
    from rnnlm.models.lm import ModelConfig

    load_before = load_average()
    linkers = [default_linkers()[0]] if linkers is None else list(linkers)
    cfg = ModelConfig(**{**PART4, **(config or {})})
    rng = np.random.default_rng(seed)
    results = {}
    for B in batch_sizes:
        x, y, mask = _random_batch(rng, cfg.vocab_size, length, int(B))
        cands, meta = {}, {}
        for linker in linkers:
            fn, cold = rnnlm_train_candidate(cfg, x, y, mask, linker, optimizer="rmsprop", lr=0.001, seed=seed)
            cands[linker] = fn
            meta[linker] = {"cold_start_s": cold}
        timings = compare(cands, repeat=repeat)
        for linker, fn in cands.items():
            meta[linker]["param_dtypes"] = fn.param_dtypes()
        for linker, t in timings.items():
            results[f"{linker}_b{B}"] = {"linker": linker, "batch_size": int(B), "length": length, **meta[linker],
                                         **t, "words_per_s": words_per_second(int(B), length, t["median_ms"])}
    out = {
        "benchmark": "gru-part4",
        "settings": {**cfg.to_dict(), "optimizer": "rmsprop", "learning_rate": 0.001, "decay": 0.9,
                     "eps": 1e-6, "length": length, "batch_sizes": [int(b) for b in batch_sizes],
                     "repeat": repeat, "seed": seed, "linkers": linkers},
        "runs": results,
    }
    return finish(out, load_before)
