"""bf16 against fp32 in real training (issue 15, target 4): the same model, seed and batches trained for a
fixed number of steps at each precision with the default (``--size auto``) settings; held-out perplexity
(scored at fp32 either way) and training steps/s.  The issue asks for bf16's perplexity within 1% of fp32's.

    python scripts/bench_precision.py [--steps 400] [--corpora tinyshakespeare:char,reddit:word]
        [--cell lstm] > out.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import rnnlm
from rnnlm.bench.machine import finish, load_now
from rnnlm.data import prepare
from rnnlm.training.config import TrainConfig


def run(corpus_name: str, level: str, steps: int, precision: str, cell: str | None = None) -> dict:
    corpus = prepare(corpus_name, level=level, progress=False)
    config = TrainConfig(max_steps=steps, valid_every=steps, precision=precision, seed=0, epochs=1000)
    t0 = time.perf_counter()
    r = rnnlm.train(corpus, None, model={"cell": cell} if cell else None, config=config, progress=False,
                    valid_fraction=0.1, test_fraction=0.0, linker="jax")
    s = r.summary()
    return {"steps": s["steps"], "wall_s": round(time.perf_counter() - t0, 1),
            "train_s": s["elapsed_s"], "steps_per_s": round(s["steps"] / s["elapsed_s"], 3),
            "valid_nats": round(s["best_valid_loss"], 5),
            "valid_perplexity": round(math.exp(s["best_valid_loss"]), 4),
            "model": r.model.config.to_dict()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--corpora", default="tinyshakespeare:char,reddit:word")
    ap.add_argument("--cell", choices=["rnn", "gru", "lstm"], help="the cell (default: the size rule's)")
    args = ap.parse_args(argv)
    load_before = load_now()
    out = {"benchmark": "precision", "steps": args.steps, "results": {}}
    for spec in args.corpora.split(","):
        name, _, level = spec.partition(":")
        res = {p: run(name, level or "word", args.steps, p, args.cell) for p in ("fp32", "bf16")}
        ratio = res["bf16"]["valid_perplexity"] / res["fp32"]["valid_perplexity"]
        res["bf16_perplexity_vs_fp32"] = round(ratio, 5)
        res["bf16_speedup"] = round(res["bf16"]["steps_per_s"] / res["fp32"]["steps_per_s"], 3)
        res["within_1_percent"] = abs(res["bf16_perplexity_vs_fp32"] - 1) <= 0.01
        out["results"][spec] = res
        print(spec, json.dumps({k: v for k, v in res.items() if k not in ("fp32", "bf16")}), file=sys.stderr)
    json.dump(finish(out, load_before), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
