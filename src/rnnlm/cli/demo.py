"""``rnnlm demo``: train a small model on the default corpus and print sentences."""

from __future__ import annotations

import sys

from rnnlm.cli.common import ArgumentParser, print_corpus_stats


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo",
        help="train a small model on the default corpus for ~2 minutes and print sentences",
        description="Find or download the default corpus (the tutorial's reddit comments), prepare it as "
        "the tutorial does, train a small GRU language model for about two minutes with a progress bar, "
        "then print generated sentences.",
    )
    p.add_argument("--corpus", default="reddit", help="corpus file or known name (default: reddit)")
    p.add_argument(
        "--vocab-size", type=int, default=2000, metavar="N", help="vocabulary size (default: 2000)"
    )
    p.add_argument("--time-budget", default="2m", help="training time (default: 2m)")
    p.add_argument("--num", type=int, default=5, help="sentences to print (default: 5)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    import numpy as np

    from rnnlm.cli import train
    from rnnlm.data import datasets, prepare
    from rnnlm.inference.sampling import generate_sentence
    from rnnlm.training.checkpoint import load_model

    argv = [
        "train",
        args.corpus,
        "--vocab-size",
        str(args.vocab_size),
        "--model",
        "gru",
        "--hidden",
        "128",
        "--embedding",
        "64",
        "--optimizer",
        "adam",
        "--lr",
        "0.005",
        "--epochs",
        "1000",
        "--time-budget",
        str(args.time_budget),
        "--batch-size",
        "32",
        "--out",
        args.out,
        "--seed",
        str(args.seed),
    ]
    parser = ArgumentParser(prog="rnnlm")
    train.add_parser(parser.add_subparsers())
    targs = parser.parse_args(argv)
    print(f"rnnlm demo: corpus {args.corpus!r}", file=sys.stderr)
    if args.corpus in datasets.KNOWN:
        datasets.find_or_download(args.corpus)
    corpus = prepare(args.corpus, progress=True, **train.corpus_options(targs))
    print_corpus_stats(corpus.stats)
    result = train.run_training(targs, corpus=corpus)
    res = result.summary()
    print(
        f"\ntrained {res['steps']} steps in {res['elapsed_s']} s; best validation perplexity "
        f"{res.get('best_valid_perplexity', float('nan')):.1f}\n"
    )
    model, vocab, _ = load_model(result.out, linker=result.model.linker)
    rng = np.random.default_rng(args.seed)
    print("Generated sentences:")
    for _ in range(args.num):
        print("  " + generate_sentence(model, vocab, rng=rng, min_length=5, max_length=30).text)
    return 0
