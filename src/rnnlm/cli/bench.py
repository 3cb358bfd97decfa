"""``rnnlm bench``: the benchmarks of :mod:`rnnlm.bench` on the command line.

Subcommands ``sgd-step`` (the tutorial's experiment), ``train`` (rnnlm vs PyTorch vs the GEMM
roofline), ``generate`` (incremental generation), ``gru-part4`` (part 4's model) and ``all``.
Each runs in one process; ``--json`` prints one JSON object, otherwise a report
(:mod:`rnnlm.bench.report`).  A candidate that raised is reported as failed and the command exits
with code 1 after printing everything.  Heavy modules (the engine, JAX, PyTorch)
are imported inside the handler.
"""

from __future__ import annotations

import argparse
import json
import sys

from rnnlm.cli.common import PROG, add_subcommands, csv_list, positive_int

SUBCOMMANDS = ("sgd-step", "train", "generate", "gru-part4", "quality", "all")
CELL_NAMES = ("rnn", "gru", "lstm")
LINKER_NAMES = ("c", "jax", "numba")


def _common(p, repeat_default=10):
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"timed runs per candidate, median reported (default: {repeat_default}; --quick: 3)",
    )
    p.add_argument("--quick", action="store_true", help="fewer runs and candidates: a fast smoke run")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the weights and the random batch (default: 0)"
    )


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench",
        help="benchmarks: tutorial SGD step, training vs PyTorch, generation, part-4 GRU",
        description="Benchmarks, each in one process, timings synchronised (JAX and CUDA dispatch "
        "asynchronously) and reported as medians with the machine, BLAS kernel and versions. "
        "See docs/benchmarks.md for recorded results.",
    )
    sub = add_subcommands(p, "bench_command", SUBCOMMANDS)

    s = sub.add_parser(
        "sgd-step",
        help="the tutorial's experiment: one SGD step, NumPy vs compiled graph",
        description="One SGD step on one sentence (C=8000, H=100, bptt_truncate=4, 45 "
        "words): the NumPy reference (float64) against the compiled graph (float32), "
        "median of several runs in one process; prints both and the ratio.",
    )
    s.add_argument(
        "--vocab-size", type=positive_int, default=8000, metavar="C", help="word_dim C (default: 8000)"
    )
    s.add_argument(
        "--hidden", type=positive_int, default=100, metavar="H", help="hidden_dim H (default: 100)"
    )
    s.add_argument("--bptt-truncate", type=int, default=4, metavar="K", help="bptt_truncate (default: 4)")
    s.add_argument(
        "--length", type=positive_int, default=45, metavar="T", help="sentence length (default: 45)"
    )
    s.add_argument(
        "--linkers",
        type=csv_list(str, LINKER_NAMES),
        default=None,
        metavar="LIST",
        help="compiled candidates to run: c,jax (default: both where available)",
    )
    s.add_argument(
        "--no-shipped",
        dest="shipped",
        action="store_false",
        help="skip the `shipped` part (RNN's defaults vs the reference, PyTorch, the blog's code)",
    )
    s.add_argument(
        "--no-hand-jax",
        dest="hand_jax",
        action="store_false",
        help="skip the hand-written JAX step (the XLA floor)",
    )
    _common(s)

    t = sub.add_parser(
        "train",
        help="a training step: rnnlm vs PyTorch vs the NumPy GEMM roofline",
        description="One training step (full softmax, SGD, float32) for each cell in rnnlm "
        "(JAX and C linkers), PyTorch (if installed) and a hand-written JAX version, and "
        "the three output-layer GEMMs timed with NumPy (the roofline). Both models use an "
        "embedding of size H so they do the same work.",
    )
    t.add_argument(
        "--cells",
        type=csv_list(str, CELL_NAMES),
        default=list(CELL_NAMES),
        metavar="LIST",
        help="cells to run (default: rnn,gru,lstm)",
    )
    t.add_argument(
        "--vocab-size", type=positive_int, default=8000, metavar="C", help="vocabulary (default: 8000)"
    )
    t.add_argument("--hidden", type=positive_int, default=128, metavar="H", help="hidden size (default: 128)")
    t.add_argument(
        "--batch-size", type=positive_int, default=64, metavar="B", help="batch size (default: 64)"
    )
    t.add_argument(
        "--steps",
        "--bptt",
        type=positive_int,
        default=32,
        metavar="L",
        dest="steps",
        help="time steps per batch (default: 32)",
    )
    t.add_argument(
        "--linkers",
        type=csv_list(str, LINKER_NAMES),
        default=None,
        metavar="LIST",
        help="rnnlm linkers (default: jax,c where available; --quick: the first)",
    )
    t.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="where to run (default: cpu)")
    t.add_argument("--lr", type=float, default=0.005, help="SGD learning rate (default: 0.005)")
    t.add_argument("--no-torch", dest="torch", action="store_false", help="skip PyTorch")
    t.add_argument("--no-hand-jax", dest="hand_jax", action="store_false", help="skip hand-written JAX")
    t.add_argument("--no-roofline", dest="roofline", action="store_false", help="skip the GEMM roofline")
    t.add_argument(
        "--preset",
        choices=("char",),
        default=None,
        help="char: the recurrence-bound regime (V=65, embedding 64, LSTM/GRU H=256, 2 and 1 "
        "layers, B=64 x 64 steps, Adam 2e-3, clip 5) vs PyTorch, timed in alternation; "
        "--cells (default lstm,gru), --layers, --hidden, --batch-size, --steps apply",
    )
    t.add_argument(
        "--layers",
        type=csv_list(positive_int),
        default=None,
        metavar="LIST",
        help="--preset char: layer counts to run (default: 2,1)",
    )
    t.add_argument(
        "--precision",
        choices=("fp32", "bf16", "both"),
        default="fp32",
        help="matrix products: bf16 times rnnlm (jax linker) against PyTorch under autocast; both: "
        "fp32 and bf16 in one run (default: fp32)",
    )
    _common(t)

    g = sub.add_parser(
        "generate",
        help="tokens/s of incremental generation (step function)",
        description="Incremental generation with LanguageModel.step_function: tokens/s at "
        "each batch size, and the time per token for the first and the last --window "
        "tokens (equal if the cost per token does not grow with the position).",
    )
    g.add_argument(
        "--vocab-size", type=positive_int, default=8000, metavar="C", help="vocabulary (default: 8000)"
    )
    g.add_argument("--hidden", type=positive_int, default=128, metavar="H", help="hidden size (default: 128)")
    g.add_argument("--cell", choices=CELL_NAMES, default="rnn", help="cell (default: rnn)")
    g.add_argument("--layers", type=positive_int, default=1, help="layers (default: 1)")
    g.add_argument(
        "--batch-sizes",
        type=csv_list(positive_int),
        default=[1, 64],
        metavar="LIST",
        help="batch sizes (default: 1,64)",
    )
    g.add_argument(
        "--tokens",
        type=positive_int,
        default=None,
        metavar="N",
        help="tokens per sequence (default: 500; --quick: 100)",
    )
    g.add_argument(
        "--window",
        type=positive_int,
        default=None,
        metavar="N",
        help="tokens in the first/last window (default: 50; --quick: 20)",
    )
    g.add_argument(
        "--linker", choices=LINKER_NAMES, default=None, help="linker (default: the engine's default)"
    )
    _common(g)

    q = sub.add_parser(
        "gru-part4",
        help="training-step time of the tutorial's part-4 GRU model",
        description="Part 4's model: GRU, embedding 48, hidden 128, 2 layers, vocabulary "
        "2000, hard-sigmoid gates, RMSProp (decay 0.9, eps 1e-6, lr 0.001), full BPTT; "
        "one step on one sentence and on a batch of sentences.",
    )
    q.add_argument(
        "--batch-sizes",
        type=csv_list(positive_int),
        default=[1, 64],
        metavar="LIST",
        help="batch sizes (default: 1,64; 1 is one sentence, as the tutorial trained)",
    )
    q.add_argument(
        "--length", type=positive_int, default=32, metavar="L", help="sentence length (default: 32)"
    )
    q.add_argument(
        "--linkers",
        type=csv_list(str, LINKER_NAMES),
        default=None,
        metavar="LIST",
        help="linkers (default: the engine's default)",
    )
    _common(q)

    a = sub.add_parser(
        "all",
        help="every benchmark above with its defaults",
        description="sgd-step, train, generate and gru-part4 with their defaults, one process.",
    )
    a.add_argument(
        "--device", choices=("cpu", "gpu"), default="cpu", help="device for `train` (default: cpu)"
    )
    _common(a)
    qu = sub.add_parser(
        "quality",
        help="held-out quality of the defaults vs KN n-grams, unigram, PyTorch",
        description="For each corpus: rnnlm train with its defaults and --budget, Kneser-Ney orders 2-5 and "
        "a unigram on the same split, the RNN+KN mixture, and PyTorch's usual recipe on the same split and "
        "budget (when installed); nats/token and perplexity on the same held-out tokens. Takes about 2 x "
        "budget per corpus.",
    )
    qu.add_argument(
        "--corpora",
        type=csv_list(str),
        default=["reddit", "tinyshakespeare:char", "tinyshakespeare:word"],
        metavar="LIST",
        help="NAME[:LEVEL],... (default: reddit,tinyshakespeare:char,tinyshakespeare:word)",
    )
    qu.add_argument("--budget", default="5m", metavar="DUR", help="training time per model (default: 5m)")
    qu.add_argument("--no-torch", dest="torch", action="store_false", help="skip PyTorch")
    qu.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    qu.add_argument("--seed", type=int, default=0)
    for parser in (s, t, g, q, a, qu):
        parser.set_defaults(run=run)
    return p


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
def _repeat(args):
    return args.repeat if args.repeat is not None else (3 if args.quick else 10)


def run_sgd_step(args) -> dict:
    from rnnlm import bench

    return bench.bench_sgd_step(
        word_dim=args.vocab_size,
        hidden_dim=args.hidden,
        bptt_truncate=args.bptt_truncate,
        length=args.length,
        repeat=_repeat(args),
        linkers=args.linkers,
        hand_jax=args.hand_jax,
        seed=args.seed,
        shipped=getattr(args, "shipped", True),
    )


def _explicit(args, name, preset_value):
    """The value of ``--name`` if given on the command line (differs from the default), else the preset's."""
    value = getattr(args, name)
    return value if value != _TRAIN_DEFAULTS.get(name) else preset_value


_TRAIN_DEFAULTS = {"cells": list(CELL_NAMES), "hidden": 128, "batch_size": 64, "steps": 32}


def _precisions(args) -> tuple:
    return ("fp32", "bf16") if args.precision == "both" else (args.precision,)


def run_train(args) -> dict:
    from rnnlm import bench, engine

    # JAX must be pointed at the device before anything initialises it.
    engine.select_device(args.device)
    linkers = args.linkers
    if args.quick and linkers is None:
        linkers = bench.default_linkers()[:1]
    if args.preset == "char":
        return bench.bench_char(
            cells=_explicit(args, "cells", ["lstm", "gru"]),
            layers=args.layers or [2, 1],
            linkers=linkers,
            torch=args.torch,
            repeat=_repeat(args),
            seed=args.seed,
            hidden_dim=_explicit(args, "hidden", None),
            batch_size=_explicit(args, "batch_size", None),
            steps=_explicit(args, "steps", None),
            precisions=_precisions(args),
        )
    return bench.bench_train(
        cells=args.cells,
        vocab_size=args.vocab_size,
        hidden_dim=args.hidden,
        batch_size=args.batch_size,
        steps=args.steps,
        linkers=linkers,
        device=args.device,
        torch=args.torch,
        hand_jax=args.hand_jax,
        roofline=args.roofline,
        repeat=_repeat(args),
        seed=args.seed,
        learning_rate=args.lr,
        precisions=_precisions(args),
    )


def run_generate(args) -> dict:
    from rnnlm import bench

    tokens = args.tokens or (100 if args.quick else 500)
    window = args.window or (20 if args.quick else 50)
    return bench.bench_generate(
        vocab_size=args.vocab_size,
        hidden_dim=args.hidden,
        cell=args.cell,
        layers=args.layers,
        batch_sizes=args.batch_sizes,
        tokens=tokens,
        window=window,
        linker=args.linker,
        seed=args.seed,
    )


def run_gru_part4(args) -> dict:
    from rnnlm import bench

    return bench.bench_gru_part4(
        batch_sizes=args.batch_sizes,
        length=args.length,
        repeat=_repeat(args),
        linkers=args.linkers,
        seed=args.seed,
    )


def run_all(args) -> dict:
    """Every benchmark with its defaults (``--quick`` and ``--repeat`` apply to all)."""
    parser = argparse.ArgumentParser(add_help=False)
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    flags = (["--quick"] if args.quick else []) + (["--repeat", str(args.repeat)] if args.repeat else [])
    flags += ["--seed", str(args.seed)]

    def parsed(name, extra=()):
        return parser.parse_args(["bench", name, *flags, *extra])

    from rnnlm import engine

    engine.select_device(args.device)
    sgd = run_sgd_step(parsed("sgd-step"))
    train = run_train(parsed("train", ["--device", args.device]))
    # sgd-step ran first in this process: the time since process start is not train's cold start
    train["process_to_first_step_s"] = None
    return {
        "benchmark": "all",
        "sgd_step": sgd,
        "train": train,
        "generate": run_generate(parsed("generate")),
        "gru_part4": run_gru_part4(parsed("gru-part4")),
    }


def run_quality(args) -> dict:
    from rnnlm.bench.quality import bench_quality
    from rnnlm.training.config import parse_duration

    return bench_quality(
        args.corpora, parse_duration(args.budget), torch=args.torch, seed=args.seed, progress=not args.json
    )


RUNNERS = {
    "quality": run_quality,
    "sgd-step": run_sgd_step,
    "train": run_train,
    "generate": run_generate,
    "gru-part4": run_gru_part4,
    "all": run_all,
}


def run(args) -> int:
    """Run the benchmark, print its result (JSON or the report); exit code 1 if a candidate failed."""
    from rnnlm.bench import failures, print_report

    result = RUNNERS[args.bench_command](args)
    if args.json:
        print(json.dumps(result, default=_jsonable))
    else:
        print_report(result)
    failed = failures(result)
    if failed:
        print(
            f"{PROG}: error: {len(failed)} benchmark candidate(s) failed (see the report): "
            f"{', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


def _jsonable(obj):
    try:
        return obj.item()  # NumPy / JAX scalars
    except AttributeError:
        return str(obj)
