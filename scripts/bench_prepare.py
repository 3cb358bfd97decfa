#!/usr/bin/env python
"""Time and peak memory of ``rnnlm.data.prepare`` on generated corpora of several sizes.

Run with the project environment::

    .venv/bin/python scripts/bench_prepare.py                       # 1M, 5M, 50M tokens + nltk 1M
    .venv/bin/python scripts/bench_prepare.py --sizes 1e6 5e6 --nltk-sizes 2e5 --workers 1 2
    .venv/bin/python scripts/bench_prepare.py --corpus-module old_corpus.py --sizes 1e6 5e6

Each measurement runs in a fresh child process, so its peak RSS (``VmHWM`` from /proc; see
:func:`_peak_mb`) is its own; the child also reports its RSS after imports (the baseline), so
"growth" = peak - baseline is what preparing the corpus cost. ``--corpus-module FILE`` measures
another implementation of ``rnnlm/corpus.py`` (e.g. ``git show 231e78e:src/rnnlm/corpus.py``,
the in-memory one this was compared against). Generated files are cached in ``--dir``.

Corpora (deterministic, seed 0):
- ``lines``: pre-tokenized, one sentence per line (5-35 tokens), words ``w<rank>`` drawn from a
  Zipf distribution over 1M word types (exponent 1.05), so the number of distinct words keeps
  growing with size, as in real text. Prepared with ``format="lines"`` (whitespace tokenizer), vocabulary
  10,000.
- ``text``: plain-text paragraphs of capitalised sentences with punctuation, for the NLTK path
  (Punkt trained on the corpus + Treebank word tokenizer), vocabulary 8,000.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    """Current resident set size (MB), from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """Peak RSS (MB) of this process's address space: VmHWM. (``getrusage``'s ``ru_maxrss`` survives
    ``exec``, so a child would report its parent's peak when that was higher; fallback only.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --------------------------------------------------------------------------------------------------
# corpus generation
# --------------------------------------------------------------------------------------------------
#: Word types and Zipf exponent of the generated corpora: p(rank r) ~ 1 / r^1.05 over 1M types gives
#: 175k distinct words in 1.1M tokens, 480k in 5.5M and 977k in 55M: vocabulary growth like real text.
ZIPF_TYPES = 1_000_000
ZIPF_EXPONENT = 1.05


def generate(path: Path, n_tokens: int, kind: str, seed: int = 0) -> Path:
    """Write a corpus of about ``n_tokens`` words to ``path`` (streamed, 1M tokens at a time)."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, ZIPF_TYPES + 1) ** ZIPF_EXPONENT)
    cdf /= cdf[-1]
    tmp = path.with_suffix(path.suffix + ".part")
    written = 0
    with open(tmp, "w", encoding="utf-8") as f:
        while written < n_tokens:
            n = min(1_000_000, n_tokens - written)
            ranks = np.searchsorted(cdf, rng.random(n)) + 1
            lengths = rng.integers(5, 36, n // 5 + 2)
            words = [f"w{r}" for r in ranks.tolist()]
            out, i = [], 0
            for L in lengths.tolist():
                if i >= n:
                    break
                sent = words[i : i + L]
                i += L
                if kind == "lines":
                    out.append(" ".join(sent))
                else:  # sentences in paragraphs of ~5
                    s = " ".join(sent)
                    out.append(s[:1].upper() + s[1:] + rng.choice([".", ".", ".", "?", "!"]))
            if kind == "lines":
                f.write("\n".join(out) + "\n")
            else:
                for j in range(0, len(out), 5):
                    f.write(" ".join(out[j : j + 5]) + "\n\n")
            written += n
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------------------------------
# one measurement (child process)
# --------------------------------------------------------------------------------------------------
def child(args) -> None:
    if args.corpus_module:
        import importlib.util

        import rnnlm  # the package the module's relative imports resolve against

        spec = importlib.util.spec_from_file_location("rnnlm.data.corpus", args.corpus_module)
        corpus = importlib.util.module_from_spec(spec)
        sys.modules["rnnlm.data.corpus"] = corpus
        spec.loader.exec_module(corpus)
        rnnlm.data.corpus = corpus
    else:
        import rnnlm.data as corpus  # prepare and word_tokenize
    import warnings

    warnings.simplefilter("ignore")
    if args.kind == "text":
        corpus.word_tokenize("Warm up the tokenizer.")  # imports nltk, compiles its regexes
    kw = {"vocab_size": args.vocab_size}
    if args.kind == "lines":
        kw["format"] = "lines"
    else:
        kw.update(format="text", splitter="trained")
    if args.workers > 1:
        kw["workers"] = args.workers
    base = _rss_mb()
    t0 = time.perf_counter()
    c = corpus.prepare(args.file, **kw)
    elapsed = time.perf_counter() - t0
    peak = _peak_mb()
    ids = c.stream()
    encoded_mb = (ids.nbytes + 8 * (len(c) + 1)) / 2**20
    t1 = time.perf_counter()
    out = Path(args.file).with_suffix(".npz")
    c.save(out)
    save_s = time.perf_counter() - t1
    out.unlink()
    print(
        json.dumps(
            {
                "tokens": int(c.stats["tokens"]),
                "words": int(c.stats["words"]),
                "sentences": len(c),
                "unique_tokens": int(c.stats["unique_tokens"]),
                "prepare_s": round(elapsed, 2),
                "save_s": round(save_s, 2),
                "baseline_mb": round(base, 1),
                "peak_mb": round(peak, 1),
                "growth_mb": round(peak - base, 1),
                "encoded_mb": round(encoded_mb, 1),
            }
        )
    )


def measure(args, file: Path, kind: str, workers: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--file",
        str(file),
        "--kind",
        kind,
        "--workers",
        str(workers),
        "--vocab-size",
        str(10000 if kind == "lines" else 8000),
    ]
    if args.corpus_module:
        cmd += ["--corpus-module", args.corpus_module]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1]
            if proc.stderr.strip()
            else f"exit {proc.returncode}"
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import nltk

    return (
        f"{cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
        f"Python {platform.python_version()}, NumPy {np.__version__}, NLTK {nltk.__version__}"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="*", type=float, default=[1e6, 5e6, 5e7], help="lines corpora, tokens")
    p.add_argument("--nltk-sizes", nargs="*", type=float, default=[1e6], help="text corpora (nltk path)")
    p.add_argument("--workers", nargs="*", type=int, default=[1], help="workers= values for the nltk path")
    p.add_argument("--dir", default="/tmp/rnnlm-bench-prepare", help="where generated corpora are cached")
    p.add_argument("--corpus-module", default=None, help="measure this corpus.py instead of rnnlm's")
    p.add_argument("--json", action="store_true", help="print one JSON object per measurement only")
    # child mode
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    p.add_argument("--vocab-size", type=int, default=10000, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.workers = args.workers[0]
        child(args)
        return 0
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    if not args.json:
        print(machine())
        print(f"implementation: {args.corpus_module or 'rnnlm.data'}")
        print(
            f"{'corpus':<14}{'workers':>8}{'MB file':>9}{'tokens':>12}{'sentences':>11}{'distinct':>10}"
            f"{'prepare s':>10}{'Mtok/s':>8}{'save s':>8}{'base MB':>9}{'peak MB':>9}"
            f"{'growth':>8}{'encoded':>9}"
        )
    jobs = [("lines", int(n), 1) for n in args.sizes] + [
        ("text", int(n), w) for n in args.nltk_sizes for w in args.workers
    ]
    for kind, n, workers in jobs:
        file = generate(d / f"{kind}-{n}.txt", n, kind)
        r = measure(args, file, kind, workers)
        r.update(
            corpus=f"{kind} {n / 1e6:g}M", workers=workers, file_mb=round(file.stat().st_size / 2**20, 1)
        )
        if args.json:
            print(json.dumps(r))
        elif "error" in r:
            print(f"{r['corpus']:<14}{workers:>8}  error: {r['error']}")
        else:
            print(
                f"{r['corpus']:<14}{workers:>8}{r['file_mb']:>9}{r['tokens']:>12,}{r['sentences']:>11,}"
                f"{r['unique_tokens']:>10,}{r['prepare_s']:>10}{r['tokens'] / r['prepare_s'] / 1e6:>8.2f}"
                f"{r['save_s']:>8}{r['baseline_mb']:>9}{r['peak_mb']:>9}{r['growth_mb']:>8}{r['encoded_mb']:>9}"
            )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
