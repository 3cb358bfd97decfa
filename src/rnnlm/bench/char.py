"""The recurrence-bound regime (issue 15, target A): ``rnnlm bench train --preset char``.

PyTorch's usual char-level LSTM (``shared/anchors/torch_charlm.py``): tinyshakespeare's 65 characters,
embedding 64, 2-layer LSTM H=256, batch 64 × 64 steps, Adam 2e-3, global-norm clip 5.  The output layer
is tiny (V=65); almost all the work is the recurrence (≈21 GFLOP a step for the 2-layer LSTM).  Each
configuration is timed for rnnlm (``LanguageModel.train_step``) and PyTorch eager (on a CPU in a process
of its own, :mod:`rnnlm.bench.child`) in alternation, so their ratio is meaningful on a shared machine.
The batch is random ids: the speed of a step does not depend on the text.
"""

from __future__ import annotations

import time

import numpy as np

from rnnlm.bench.candidates import Candidates
from rnnlm.bench.child import in_child
from rnnlm.bench.machine import default_linkers, finish, load_now, optional_module
from rnnlm.bench.timing import block
from rnnlm.bench.train import (
    precision_ratios,
    precision_runs,
    random_batch,
    rnnlm_train_candidate,
    torch_autocast,
)
from rnnlm.errors import ConfigError

__all__ = ["CHAR_BF16_TARGET", "CHAR_PRESET", "CHAR_TORCH_TARGET", "bench_char", "char_flops",
           "torch_char_candidate"]

CHAR_PRESET = {"vocab_size": 65, "embedding_dim": 64, "hidden_dim": 256, "layers": 2, "batch_size": 64,
               "steps": 64, "optimizer": "adam", "learning_rate": 2e-3, "clip": 5.0}

CHAR_TORCH_TARGET = 1.0  # issue 15 A: steps/s vs PyTorch, fp32
CHAR_BF16_TARGET = 1.5  # issue 15 A/4: steps/s with bf16 matmuls vs PyTorch fp32


def char_flops(cell: str, vocab: int, embed: int, hidden: int, layers: int, rows: int) -> float:
    """FLOPs of one training step (forward + backward ≈ 3× the forward's matrix products)."""
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    fwd = 0
    for l in range(layers):
        d_in = embed if l == 0 else hidden
        fwd += 2 * rows * (d_in + hidden) * G * hidden
    fwd += 2 * rows * hidden * vocab
    return 3.0 * fwd


def torch_char_candidate(cell, vocab, embed, hidden, layers, x, y, lr, clip, seed=0, precision="fp32"):
    """PyTorch eager: Embedding(V, D) → nn.LSTM/GRU(D, H, layers) → Linear(H, V), mean cross-entropy,
    ``clip_grad_norm_``, Adam; ``precision="bf16"``: the forward pass under ``torch.autocast``.
    Returns ``(step_fn, first_step_s)``."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, embed)
            self.rnn = rnn_cls(embed, hidden, layers)  # time-major (L, B, ·), as rnnlm
            self.out = nn.Linear(hidden, vocab)

        def forward(self, x):
            h, _ = self.rnn(self.embed(x))
            return self.out(h.reshape(-1, hidden))

    t0 = time.perf_counter()
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt = torch.as_tensor(x.astype(np.int64))
    yt = torch.as_tensor(y.astype(np.int64)).reshape(-1)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch_autocast(torch, precision):
            loss = nn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        return loss

    block(step())
    return step, time.perf_counter() - t0


def _time_config(res, cell, n_layers, linkers, torch_mod, precisions, s, x, y, mask, seed, repeat, skipped,
                 failed):
    """Time one (cell, layers) configuration's candidates in alternation into ``res`` (name -> timing)."""
    from rnnlm.models.lm import ModelConfig

    cfg = ModelConfig(vocab_size=s["vocab_size"], hidden_dim=s["hidden_dim"], cell=cell, layers=n_layers,
                      embedding_dim=s["embedding_dim"])
    cands = Candidates()
    for precision, tag, runnable in precision_runs(precisions, linkers, skipped):
        for linker in runnable:
            def rnnlm_step(linker=linker, precision=precision):
                fn, cold = rnnlm_train_candidate(
                    cfg, x, y, mask, linker, optimizer=s["optimizer"], lr=s["learning_rate"],
                    seed=seed, clip=s["clip"], precision=precision)
                return fn, {"cold_start_s": cold,
                            "what": f"LanguageModel.train_step, {linker} linker, {precision}"}

            cands.add(f"rnnlm_{linker}{tag}", rnnlm_step)
        if torch_mod is not None:
            def torch_step(precision=precision):
                # in a process of its own (rnnlm.bench.child: as it would run alone)
                fn, first = in_child("rnnlm.bench.char:torch_char_candidate", cell, s["vocab_size"],
                                     s["embedding_dim"], s["hidden_dim"], n_layers, x, y, s["learning_rate"],
                                     s["clip"], seed=seed, precision=precision)
                how = "" if precision == "fp32" else ", autocast bf16"
                return fn, {"cold_start_s": first,
                            "what": f"PyTorch {torch_mod.__version__} eager, nn.{cell.upper()}, "
                                    f"{torch_mod.get_num_threads()} threads{how}, own process"}

            cands.add(f"torch{tag}", torch_step)
    timings = cands.compare(repeat)
    cands.close()
    skipped.update(cands.skipped)
    failed.update({f"{cell} x{n_layers} {name}": err for name, err in cands.failed.items()})
    for name in cands.fns:
        res[name] = {**cands.info[name], **timings[name]}


def bench_char(cells=("lstm", "gru"), layers=(2, 1), linkers=None, torch: bool = True, repeat: int = 10,
               seed: int = 0, precisions=("fp32",), **overrides) -> dict:
    """Steps/s of the char preset for each (cell, layers), rnnlm vs PyTorch, timed in alternation.

    Per configuration ``"lstm x2"``..., name -> timing (``median_ms``...), ``steps_per_s``,
    ``gflops`` (achieved), ``cold_start_s``; rnnlm candidates add ``vs_torch`` (steps/s over
    PyTorch's at the same precision) and ``meets_targets``.  ``precisions`` adding ``"bf16"`` adds
    ``rnnlm_jax_bf16`` (bf16 matmuls, :mod:`rnnlm.engine_ops`) and ``torch_bf16`` (autocast), and for
    the former ``vs_torch_fp32``.
    """
    settings = {**CHAR_PRESET, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(settings) - set(CHAR_PRESET)
    if unknown:
        raise ConfigError(f"unknown char-preset settings: {', '.join(sorted(unknown))}")
    linkers = default_linkers() if linkers is None else list(linkers)
    skipped, failed = {}, {}
    torch_mod = optional_module("torch") if torch else None
    if torch and torch_mod is None:
        skipped["torch"] = "PyTorch is not installed (optional: pip install 'rnnlm[torch]')"
    load_before = load_now()
    s = settings
    x, y, mask = random_batch(np.random.default_rng(seed), s["vocab_size"], s["steps"], s["batch_size"])
    rows = s["steps"] * s["batch_size"]
    results = {f"{cell} x{n}": {} for cell in cells for n in layers}
    for cell in cells:
        for n_layers in layers:
            _time_config(results[f"{cell} x{n_layers}"], cell, n_layers, linkers, torch_mod, precisions, s,
                         x, y, mask, seed, repeat, skipped, failed)
    for key, res in results.items():
        cell, n_layers = key.split(" x")
        flops = char_flops(cell, s["vocab_size"], s["embedding_dim"], s["hidden_dim"], int(n_layers), rows)
        for r in res.values():
            r.update({"steps_per_s": 1e3 / r["median_ms"], "gflops": flops / r["median_ms"] / 1e6})
        precision_ratios(res, "steps_per_s", {"vs_torch": CHAR_TORCH_TARGET},
                         {"vs_torch_fp32": CHAR_BF16_TARGET})
        results[key] = {"gflop_per_step": flops / 1e9, **res}
    out = {
        "benchmark": "train",
        "preset": "char",
        "settings": {**settings, "cells": list(cells), "layers": list(layers), "linkers": linkers,
                     "dtype": "float32", "precisions": list(precisions), "repeat": repeat, "seed": seed,
                     "device": "cpu",
                     "data": "random ids (speed does not depend on the text)"},
        "configs": results,
        "skipped": skipped,
        "failed": failed,
        "targets": {"vs_torch": CHAR_TORCH_TARGET,
                    **({"bf16 vs_torch_fp32": CHAR_BF16_TARGET} if "bf16" in precisions else {})},
    }
    return finish(out, load_before)
