"""Incremental generation (issue 10) and the training step of the tutorial's part-4 GRU (issue 5)."""

from __future__ import annotations

import time

import numpy as np

from rnnlm.bench.candidates import Candidates
from rnnlm.bench.machine import default_linkers, finish, load_now
from rnnlm.bench.roofline import words_per_second
from rnnlm.bench.timing import summarize
from rnnlm.bench.train import random_batch, rnnlm_train_candidate
from rnnlm.errors import ConfigError

__all__ = ["PART4", "bench_generate", "bench_gru_part4"]


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
    load_before = load_now()
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


PART4 = {"vocab_size": 2000, "hidden_dim": 128, "cell": "gru", "layers": 2, "embedding_dim": 48,
         "gate": "hard_sigmoid", "output_bias": True}


def bench_gru_part4(batch_sizes=(1, 64), length: int = 32, repeat: int = 10, linkers=None,
                    seed: int = 0, config: dict | None = None) -> dict:
    """Training-step time of the tutorial's part-4 model (2-layer GRU, embedding 48, hidden 128,
    vocabulary 2000, hard-sigmoid gates, RMSProp decay 0.9, eps 1e-6, lr 0.001, full BPTT) on one
    sentence (batch 1, as the tutorial trained it) and on a sentence batch.  ``runs``:
    ``"LINKER_bB"`` -> timing; a linker that cannot run here is listed under ``skipped``, a run that
    raises under ``failed`` (same key) with the error."""
    from rnnlm.models.lm import ModelConfig

    load_before = load_now()
    linkers = [default_linkers()[0]] if linkers is None else list(linkers)
    cfg = ModelConfig(**{**PART4, **(config or {})})
    rng = np.random.default_rng(seed)
    results, skipped, failed = {}, {}, {}
    for B in batch_sizes:
        x, y, mask = random_batch(rng, cfg.vocab_size, length, int(B))
        cands = Candidates()
        for linker in linkers:
            def rnnlm_step(linker=linker, x=x, y=y, mask=mask):
                fn, cold = rnnlm_train_candidate(cfg, x, y, mask, linker, optimizer="rmsprop", lr=0.001,
                                                 seed=seed)
                return fn, {"cold_start_s": cold}

            cands.add(linker, rnnlm_step)
        timings = cands.compare(repeat)
        skipped.update(cands.skipped)
        failed.update({f"{linker}_b{B}": error for linker, error in cands.failed.items()})
        for linker, t in timings.items():
            info = {**cands.info[linker], "param_dtypes": cands.fns[linker].param_dtypes()}
            results[f"{linker}_b{B}"] = {"linker": linker, "batch_size": int(B), "length": length, **info,
                                         **t, "words_per_s": words_per_second(int(B), length, t["median_ms"])}
    out = {
        "benchmark": "gru-part4",
        "settings": {**cfg.to_dict(), "optimizer": "rmsprop", "learning_rate": 0.001, "decay": 0.9,
                     "eps": 1e-6, "length": length, "batch_sizes": [int(b) for b in batch_sizes],
                     "repeat": repeat, "seed": seed, "linkers": linkers},
        "runs": results,
        "skipped": skipped,
        "failed": failed,
    }
    return finish(out, load_before)
