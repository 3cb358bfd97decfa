"""Batched training (issue 4): one training step of rnnlm against PyTorch, the same model written
directly in JAX, and the GEMM roofline.  Shapes follow the library: batches are time-major,
``x``, ``y`` and ``mask`` are (L, B)."""

from __future__ import annotations

import importlib
import time

import numpy as np

from rnnlm.bench.candidates import Candidates
from rnnlm.bench.child import in_child
from rnnlm.bench.machine import default_linkers, finish, load_now, optional_module, process_age
from rnnlm.bench.roofline import gemm_roofline, words_per_second
from rnnlm.bench.timing import block
from rnnlm.errors import ConfigError

__all__ = ["CELLS", "ROOFLINE_TARGET", "TORCH_TARGET_RATIO", "bench_train", "precision_ratios",
           "precision_runs", "random_batch", "rnnlm_train_candidate", "torch_autocast",
           "torch_train_candidate"]


TORCH_TARGET_RATIO = 2.0  # issue 4, CPU: words/s vs PyTorch


ROOFLINE_TARGET = 0.6  # issue 4, CPU: fraction of the three-GEMM roofline


CELLS = ("rnn", "gru", "lstm")


def random_batch(rng, vocab, steps, batch):
    """A random time-major batch ``(x, y, mask)``, each (steps, batch): int32 ids, a mask of ones."""
    x = rng.integers(0, vocab, (steps, batch)).astype(np.int32)
    y = rng.integers(0, vocab, (steps, batch)).astype(np.int32)
    return x, y, np.ones((steps, batch), np.float32)


def precision_runs(precisions, linkers, skipped: dict) -> list:
    """``[(precision, tag, linkers)]``: each precision's candidate-name suffix (``""`` or ``"_bf16"``) and the
    rnnlm linkers that run it (bf16: jax only; the others are noted in ``skipped``)."""
    runs = []
    for precision in precisions:
        tag = "" if precision == "fp32" else f"_{precision}"
        ok = [lk for lk in linkers if precision == "fp32" or lk == "jax"]
        skipped.update({f"rnnlm_{lk}{tag}": f"{precision} runs on the jax linker only"
                        for lk in linkers if lk not in ok})
        runs.append((precision, tag, ok))
    return runs


def precision_ratios(res: dict, rate: str, targets: dict, bf16_targets: dict | None = None) -> None:
    """Add to every ``rnnlm_*`` entry of ``res`` (name -> timing with a ``rate`` key, higher is faster)
    ``vs_torch`` (over the PyTorch candidate of its precision: ``torch`` or ``torch_bf16``), for a bf16
    entry also ``vs_torch_fp32`` and ``vs_fp32`` (over the same linker at fp32), and ``meets_targets``
    (ratio -> reached; ``targets`` at fp32, ``bf16_targets`` -- default the same -- at bf16)."""
    for name, r in res.items():
        if not name.startswith("rnnlm_"):
            continue
        low = name.endswith("_bf16")
        tag = "_bf16" if low else ""
        if f"torch{tag}" in res:
            r["vs_torch"] = r[rate] / res[f"torch{tag}"][rate]
        if low and "torch" in res:
            r["vs_torch_fp32"] = r[rate] / res["torch"][rate]
        if low and name[: -len(tag)] in res:
            r["vs_fp32"] = r[rate] / res[name[: -len(tag)]][rate]
        want = {**targets, **(bf16_targets or {})} if low else targets
        r["meets_targets"] = {k: bool(r[k] >= v) for k, v in want.items() if k in r}


def rnnlm_train_candidate(config, x, y, mask, linker, optimizer="sgd", lr=None, seed=0, clip=0.0,
                          precision="fp32"):
    """Build a LanguageModel, run its first step; returns ``(step_fn, cold_start_s)``.

    ``cold_start_s`` is the wall time from constructing the model to the end of the first
    training step (graph building, rewriting, compilation, first run); the interpreter's and the
    engine's import time come on top (``process_to_first_step_s`` in :func:`bench_train`).
    ``step_fn()`` runs one ``train_step`` and returns its outputs and the updated shared values,
    to be blocked on.
    """
    from rnnlm.models.lm import LanguageModel
    from rnnlm.training.optim import make_optimizer

    t0 = time.perf_counter()
    model = LanguageModel(config, seed=seed, linker=linker, precision=precision)
    model.set_optimizer(make_optimizer(optimizer, lr=lr, clip=clip))
    shared = list(model.params.values())

    def step():
        loss_sum, _ntok, gnorm, states = model.train_step(x, y, mask)
        values = [p.get_value(borrow=True, return_internal_type=True) for p in shared]
        return [loss_sum, gnorm, states, values]

    block(step())
    # a float64 leak under JAX halves the speed: every benchmark reports what the parameters became
    step.param_dtypes = lambda: sorted({str(p.get_value(borrow=True, return_internal_type=True).dtype)
                                        for p in shared})
    return step, time.perf_counter() - t0


def torch_autocast(torch, precision, device="cpu"):
    """The context the forward pass runs in: ``torch.autocast`` to bfloat16 for ``precision="bf16"``
    (PyTorch's mixed precision: bf16 matmuls, float32 weights), else nothing."""
    import contextlib

    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda" if device == "gpu" else "cpu", dtype=torch.bfloat16)


TORCH_CANDIDATE = "rnnlm.bench.train:torch_train_candidate"  # built where it runs, so named, not passed


def _here(maker: str, *args, **kwargs):
    """:func:`rnnlm.bench.child.in_child`'s call, in this process."""
    module, name = maker.split(":")
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


def torch_train_candidate(cell, vocab, hidden, x, y, lr, device="cpu", seed=0, precision="fp32"):
    """PyTorch's version of the same model: nn.Embedding(C, H) → nn.RNN/GRU/LSTM(H, H) →
    nn.Linear(H, C), mean cross-entropy, plain SGD; returns ``(step_fn, first_step_s)``.

    On a GPU, TF32 matmuls are allowed (JAX's default precision for float32 there) and the
    batch is copied to the device once. ``precision="bf16"``: the forward pass under autocast.
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
        with torch_autocast(torch, precision, device):
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
         "b": jnp.zeros((G * H,), jnp.float32), "V": u(H, vocab, fan=H),
         "c": jnp.zeros((vocab,), jnp.float32)}
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
                learning_rate: float = 0.005, precisions=("fp32",)) -> dict:
    """One training step (full softmax, SGD, float32) of rnnlm vs PyTorch vs the GEMM roofline.

    Both models have an embedding of size H (``embedding_dim=hidden_dim`` in rnnlm), so they do
    the same work.  Per cell, name -> timing of one synchronised step (``median_ms``...),
    ``words_per_s``, ``cold_start_s``, and ``loop_ms`` (per step in a loop that blocks only on
    its last step, :func:`~rnnlm.bench.timing.time_loop`); for each rnnlm candidate ``vs_torch``
    (its words/s over PyTorch's), ``vs_torch_loop`` (the same from ``loop_ms``), ``vs_roofline``
    (roofline time over its time) and ``meets_targets`` (ratio -> whether it reaches its entry in
    ``targets``).  ``precisions`` with ``"bf16"`` adds ``rnnlm_jax_bf16`` and ``torch_bf16`` (autocast),
    compared with each other (:func:`precision_ratios`).  ``device="gpu"`` runs JAX and PyTorch on the
    GPU (the C linker and the NumPy roofline are CPU-only and skipped).  Candidates that cannot run
    here are listed under ``skipped``, those that raise under ``failed`` as ``"CELL NAME"`` with the error.
    """
    from rnnlm import engine
    from rnnlm.models.lm import ModelConfig

    cells = list(cells)
    for c in cells:
        if c not in CELLS:
            raise ConfigError(f"unknown cell {c!r}; choose from {', '.join(CELLS)}")
    platform_used = engine.select_device(device)
    linkers = default_linkers() if linkers is None else list(linkers)
    skipped, failed = {}, {}
    if platform_used == "gpu":
        if "c" in linkers:
            skipped["rnnlm_c"] = "the C linker runs on the CPU only"
        linkers = [lk for lk in linkers if lk != "c"]
        if not linkers:
            raise ConfigError("--device gpu needs the jax linker")
    torch_mod = optional_module("torch") if torch else None
    if torch and torch_mod is None:
        skipped["torch"] = "PyTorch is not installed (optional: pip install 'rnnlm[torch]')"
    if device == "gpu" and torch_mod is not None and not torch_mod.cuda.is_available():
        skipped["torch"] = "PyTorch sees no CUDA device"
        torch_mod = None
    if hand_jax and optional_module("jax") is None:
        skipped["hand_jax"] = "jax is not installed"
        hand_jax = False
    load_before = load_now()
    rng = np.random.default_rng(seed)
    x, y, mask = random_batch(rng, vocab_size, steps, batch_size)
    words = batch_size * steps
    targets = ({"vs_torch": TORCH_TARGET_RATIO, "vs_roofline": ROOFLINE_TARGET}
               if platform_used == "cpu" else {"vs_torch": 1.0})

    roof = None
    if roofline and platform_used == "cpu":
        roof = gemm_roofline(words, hidden_dim, vocab_size, repeat=max(3, repeat // 2), seed=seed)
    elif roofline:
        skipped["roofline"] = "the NumPy GEMM roofline is measured on the CPU only"

    per_cell = {cell: {} for cell in cells}
    first_step_at = None
    for cell in cells:
        cfg = ModelConfig(vocab_size=vocab_size, hidden_dim=hidden_dim, cell=cell, embedding_dim=hidden_dim)
        cands = Candidates()
        for precision, tag, runnable in precision_runs(precisions, linkers, skipped):
            for linker in runnable:
                def rnnlm_step(cfg=cfg, linker=linker, precision=precision):
                    fn, cold = rnnlm_train_candidate(cfg, x, y, mask, linker, lr=learning_rate, seed=seed,
                                                     precision=precision)
                    return fn, {"cold_start_s": cold,
                                "what": f"LanguageModel.train_step, {linker} linker, {precision}"}

                if cands.add(f"rnnlm_{linker}{tag}", rnnlm_step) and first_step_at is None:
                    first_step_at = process_age()  # interpreter, imports, graph, compile, first step
            if torch_mod is not None:
                def torch_step(cell=cell, precision=precision):
                    # on the CPU in a process of its own (rnnlm.bench.child: as it would run alone)
                    make = in_child if platform_used == "cpu" else _here
                    fn, first = make(TORCH_CANDIDATE, cell, vocab_size,
                                     hidden_dim, x, y, learning_rate, device=platform_used, seed=seed,
                                     precision=precision)
                    module = cell.upper() if cell != "rnn" else "RNN"
                    how = "" if precision == "fp32" else ", autocast bf16"
                    where = ", own process" if platform_used == "cpu" else ""
                    return fn, {"cold_start_s": first,
                                "what": f"PyTorch {torch_mod.__version__} eager, nn.{module}{how}{where}"}

                cands.add(f"torch{tag}", torch_step)
        if hand_jax:
            def hand_jax_step(cell=cell):
                fn, first = _hand_jax_train_step(cell, vocab_size, hidden_dim, x, y, learning_rate,
                                                 seed=seed)
                return fn, {"cold_start_s": first,
                            "what": "the same model written directly in JAX (not rnnlm; the XLA floor)"}

            cands.add("hand_jax", hand_jax_step)
        timings = cands.compare(repeat)
        loops = cands.time_loops(repeat)
        cands.close()
        skipped.update(cands.skipped)
        failed.update({f"{cell} {name}": error for name, error in cands.failed.items()})
        for name, fn in cands.fns.items():
            info = cands.info[name]
            if hasattr(fn, "param_dtypes"):
                info["param_dtypes"] = fn.param_dtypes()
            t = timings[name]
            per_cell[cell][name] = {**info, **t, "loop_ms": loops[name]["median_ms"],
                                    "words_per_s": words_per_second(batch_size, steps, t["median_ms"])}
    for res in per_cell.values():
        for name, r in res.items():
            if name.startswith("rnnlm_"):
                torch_name = "torch_bf16" if name.endswith("_bf16") else "torch"
                if torch_name in res:
                    r["vs_torch_loop"] = res[torch_name]["loop_ms"] / r["loop_ms"]
                if roof is not None:
                    r["vs_roofline"] = roof["median_ms"] / r["median_ms"]
        precision_ratios(res, "words_per_s", targets)

    out = {
        "benchmark": "train",
        "settings": {"cells": cells, "vocab_size": vocab_size, "hidden_dim": hidden_dim,
                     "embedding_dim": hidden_dim, "batch_size": batch_size, "steps": steps,
                     "words_per_step": words, "optimizer": "sgd", "learning_rate": learning_rate,
                     "dtype": "float32", "precisions": list(precisions), "softmax": "full", "repeat": repeat,
                     "seed": seed,
                     "device": platform_used, "linkers": linkers},
        "cells": per_cell,
        "roofline": roof,
        "skipped": skipped,
        "failed": failed,
        "targets": targets,
        "process_to_first_step_s": first_step_at,
    }
    return finish(out, load_before)
