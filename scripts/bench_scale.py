#!/usr/bin/env python
"""Issue 17, measured: words/s on 1, 2 and 4 devices, and peak memory of ``prepare`` and of training on a
generated corpus (default 100M tokens) read from its memory map; results in docs/benchmarks.md.

    .venv/bin/python scripts/bench_scale.py --work /tmp/scale            # everything (~10 min here)
    .venv/bin/python scripts/bench_scale.py --work /tmp/scale --only speed
    .venv/bin/python scripts/bench_scale.py --work /tmp/scale --tokens 1e6 --steps 5   # a quick check

Stages (each command in a fresh process, which measures itself: :class:`rnnlm.bench.scale.Memory`):

1. ``generate``: ``WORK/corpus.txt``, one sentence a line (kept for later runs);
2. ``prepare``: ``rnnlm data prepare corpus.txt --format lines --out WORK/corpus.json`` (memory-mapped);
3. ``train``: ``rnnlm train WORK/corpus.json --max-steps STEPS ...`` on one device, then the same with
   ``--devices 4`` on 4 virtual CPU devices; the two checkpoints are compared (the step is correct on 4
   devices when they agree to float32 round-off);
4. ``speed``: the train step's words/s with no mesh and on 1, 2 and 4 virtual devices (one process with
   ``--xla_force_host_platform_device_count=4``), and what XLA's partitioner made of the 4-device step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

MARK = "BENCH-SCALE "


def child(argv: list) -> int:
    """``rnnlm ARGV`` in this process; one line ``BENCH-SCALE {json}`` with its memory and time."""
    from rnnlm.bench.scale import Memory
    from rnnlm.cli.app import main

    with Memory() as m:
        rc = main(argv)
    print(MARK + json.dumps({"rc": rc, **m.report()}), flush=True)
    return rc


def _env(devices: int | None = None) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def measure(argv: list, log: Path, devices: int | None = None) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--child", *map(str, argv)],
        env=_env(devices),
        capture_output=True,
        text=True,
    )
    log.write_text(r.stdout + "\n--- stderr ---\n" + r.stderr)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(MARK)]
    if r.returncode or not lines:
        raise SystemExit(f"rnnlm {' '.join(map(str, argv))} failed ({r.returncode}); see {log}")
    return json.loads(lines[-1][len(MARK) :])


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="folder for the corpus, runs and logs")
    ap.add_argument("--tokens", type=float, default=1e8, help="corpus size (default: 1e8)")
    ap.add_argument("--steps", type=int, default=20, help="training steps of each training run")
    ap.add_argument("--only", choices=("memory", "speed"), default=None)
    args = ap.parse_args()
    from rnnlm.bench.machine import cpu_model, load_average
    from rnnlm.bench.scale import generate

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    res = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_before": load_average()}
    if args.only != "speed":
        text, corpus = work / "corpus.txt", work / "corpus.json"
        if not text.exists():
            res["generated"] = generate(text, int(args.tokens))
        res["prepare"] = measure(
            ["data", "prepare", text, "--format", "lines", "--out", corpus, "--json"], work / "prepare.log"
        )
        train = [
            "train",
            corpus,
            "--model",
            "gru",
            "--hidden",
            "128",
            "--embedding",
            "128",
            "--batch-size",
            "64",
            "--max-steps",
            args.steps,
            "--valid-fraction",
            "0.001",
            "--test-fraction",
            "0.001",
            "--no-progress",
            "--json",
            "--seed",
            "0",
        ]
        res["train_1"] = measure([*train, "--out", work / "run1"], work / "train1.log")
        res["train_4"] = measure([*train, "--out", work / "run4", "--devices", "4"], work / "train4.log", 4)
        with np.load(work / "run1" / "checkpoint.npz") as a, np.load(work / "run4" / "checkpoint.npz") as b:
            res["checkpoint_max_abs_diff_1_vs_4"] = max(
                float(np.max(np.abs(a[k] - b[k]))) for k in a.files if k.startswith(("param/", "opt/"))
            )
    if args.only != "memory":
        code = f"import json, rnnlm.bench.scale as s; print({MARK!r} + json.dumps(s.speed()))"
        r = subprocess.run([sys.executable, "-c", code], env=_env(4), capture_output=True, text=True)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith(MARK)]
        if r.returncode or not lines:
            raise SystemExit(f"speed failed: {r.stderr[-2000:]}")
        res["speed"] = json.loads(lines[-1][len(MARK) :])
    res["load_after"] = load_average()
    print(json.dumps(res, indent=1))
    (work / "results.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
