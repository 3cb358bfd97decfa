"""``rnnlm demo``: train a model on the default corpus as ``rnnlm train`` would, say how good it is, and
print sentences.

What it prints, in order: the corpus statistics (the tutorial's lines), ``rnnlm train``'s start lines and
its one progress bar, why training stopped, the validation and test perplexity beside the n-gram baselines
of the same split, a few generated sentences -- and, on stderr, the commands that continue the run or
generate more from it.
"""

from __future__ import annotations

import shlex
import sys

from rnnlm.cli.common import ArgumentParser, note, print_corpus_stats

DEFAULT_BUDGET = "2m"


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo",
        help="train a model on the default corpus until it stops learning (at most 2 minutes), "
        "then judge it and print sentences",
        description="Find the default corpus (the tutorial's reddit comments: a data folder, else a "
        "download, else the 212-comment sample shipped with rnnlm), prepare it as the tutorial does, and "
        "train with `rnnlm train`'s defaults and stop rules: training ends when validation stops "
        "improving, when the learning rate reaches its floor, or when the time budget is spent. Then it "
        "prints the validation perplexity beside a Kneser-Ney trigram and a unigram of the same data, "
        "generated sentences, and the commands that continue training or generate more.",
    )
    p.add_argument("--corpus", default="reddit", help="corpus file or known name (default: reddit)")
    p.add_argument(
        "--vocab-size", type=int, default=2000, metavar="N", help="vocabulary size (default: 2000)"
    )
    p.add_argument(
        "--time-budget",
        default=DEFAULT_BUDGET,
        help=f"the most training time; it stops earlier when it stops learning (default: {DEFAULT_BUDGET})",
    )
    p.add_argument("--num", type=int, default=5, help="sentences to print (default: 5)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)
    return p


def _judgement(res: dict, vocab_size: int) -> list[str]:
    """What the validation perplexity means next to the baselines, in a few lines."""
    ppl = res.get("best_valid_perplexity")
    base = (res.get("baselines") or {}).get("valid")
    if ppl is None or not base:
        return []
    kn = f"the Kneser-Ney {res['baselines']['kn_order']}-gram"
    if ppl < base["kn"]:
        verdict = f"the RNN predicts held-out text better than {kn} ({ppl:.1f} vs {base['kn']:.1f})"
    else:
        verdict = f"{kn} is still ahead ({base['kn']:.1f} vs {ppl:.1f}): an RNN needs more text than this"
    mixture = res.get("interpolation") or {}
    if mixture.get("valid"):
        verdict += f"; the two mixed score {mixture['valid']['interpolated']:.1f}"
    return [
        "  perplexity: how many equally likely next words the model hesitates between (lower is better);",
        f"  a uniform guess over the {vocab_size:,} words scores {vocab_size:,}, word frequencies alone (the "
        f"unigram) {base['unigram']:.1f}",
        f"  => {verdict}",
    ]


def _duration(seconds: float) -> str:
    """``90`` -> ``2m``, ``45`` -> ``45s`` (rounded up)."""
    import math

    return f"{math.ceil(seconds / 60)}m" if seconds >= 60 else f"{math.ceil(seconds)}s"


def run(args) -> int:
    import numpy as np

    from rnnlm.cli import train
    from rnnlm.data import datasets, prepare
    from rnnlm.inference.sampling import generate
    from rnnlm.training.config import parse_duration

    print(
        f"rnnlm demo: corpus {args.corpus!r}, training for at most {args.time_budget} (less when it stops "
        f"learning), writing to {args.out}",
        file=sys.stderr,
    )
    # Known names: the file in a data folder, else a download, else the packaged sample (one warning).
    source = str(datasets.find_or_download(args.corpus)) if args.corpus in datasets.KNOWN else args.corpus
    argv = ["train", source, "--vocab-size", str(args.vocab_size), "--time-budget", str(args.time_budget)]
    argv += ["--out", args.out, "--seed", str(args.seed)]
    parser = ArgumentParser(prog="rnnlm")
    train.add_parser(parser.add_subparsers())
    targs = parser.parse_args(argv)  # everything else is `rnnlm train`'s default
    note(f"preparing {source} (NLTK sentences and words, as the tutorial does)")
    corpus = prepare(source, progress=False, **train.corpus_options(targs))
    print_corpus_stats(corpus.stats)
    sys.stdout.flush()
    result = train.run_training(targs, corpus=corpus)
    res = result.summary()

    print()
    for line in train.final_lines(res):
        print(line)
    for line in _judgement(res, len(result.corpus.vocab)):
        print(line)

    print("\nGenerated sentences:")
    rng = np.random.default_rng(args.seed)
    for g in generate(result.model, result.corpus.vocab, args.num, rng=rng, min_length=5, max_length=30):
        print("  " + g.text + ("" if g.ended else " ..."))
    sys.stdout.flush()

    corpus_arg, out = shlex.quote(args.corpus), shlex.quote(args.out)
    budget = _duration(res["elapsed_s"] + max(parse_duration(args.time_budget), 60.0))
    if res["stopped"] in ("time_budget", "interrupted", "max_steps"):
        note(
            f"continue training: rnnlm train {corpus_arg} --out {out} --resume --time-budget {budget} "
            "(the budget counts the time already spent)"
        )
    else:
        more_text = "`rnnlm data download reddit`, then " if args.corpus == "reddit" else ""
        note(
            "it stopped because it stopped learning on this text: more text helps more than more time "
            f"({more_text}`rnnlm demo`); to continue anyway: rnnlm train {corpus_arg} --out {out} --resume "
            f"--time-budget {budget}"
        )
    note(f"generate more: rnnlm generate {out}")
    return 0
