"""``rnnlm ngram train | perplexity``: the Kneser–Ney baseline on its own.

``train`` prepares and splits a corpus exactly as ``rnnlm train`` does (same flags, same seed), fits an
interpolated Kneser–Ney model on the training split and reports it and a unigram on the held-out splits,
so its numbers sit beside an RNN's. The model file keeps the corpus's vocabulary and tokenization, so
``perplexity`` reads new text the same way.
"""

from __future__ import annotations

from rnnlm.cli.common import (
    add_corpus_arguments,
    add_subcommands,
    corpus_options,
    nonneg_float,
    positive_int,
    print_json,
)
from rnnlm.errors import ConfigError


def add_parser(subparsers):
    p = subparsers.add_parser(
        "ngram",
        help="interpolated Kneser-Ney n-gram baselines (train, perplexity)",
        description="Train and score the count-based baselines rnnlm judges its models "
        "against: interpolated Kneser-Ney (modified discounts) of order 1-5, and a unigram.",
    )
    sub = add_subcommands(p, "ngram_command", ("train", "perplexity"))
    t = sub.add_parser(
        "train",
        help="fit KN on a corpus's training split and score the held-out splits",
        description="Prepare CORPUS as `rnnlm train` does, split it the same way (--valid-fraction, "
        "--test-fraction, --seed), fit Kneser-Ney on the training split, print its and a "
        "unigram's perplexity on the validation and test splits, and save the model.",
    )
    t.add_argument("corpus", help="corpus file, or a known name (reddit, tinyshakespeare)")
    add_corpus_arguments(t)
    t.add_argument(
        "--order", type=positive_int, default=None, help="n-gram order 1-5 (default: 3 words, 5 chars)"
    )
    t.add_argument(
        "--discount",
        type=nonneg_float,
        default=None,
        help="one absolute discount in (0, 1] (default: modified KN discounts estimated per order)",
    )
    t.add_argument(
        "--min-count",
        type=positive_int,
        default=2,
        help="words seen fewer times in the training split are read as the unknown token, as rnnlm "
        "train does (default: 2)",
    )
    t.add_argument("--valid-fraction", type=nonneg_float, default=0.05)
    t.add_argument("--test-fraction", type=nonneg_float, default=0.05)
    t.add_argument("--seed", type=int, default=0, help="split seed (the same as rnnlm train's --seed)")
    t.add_argument("--out", required=True, metavar="FILE.npz", help="where to save the model")
    t.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    t.set_defaults(run=run_train)
    q = sub.add_parser(
        "perplexity",
        help="perplexity of a text file under a saved n-gram model",
        description="Read FILE as the model's training corpus was read (or --format), and print "
        "its perplexity: the one definition (every predicted token, including the "
        "end-of-sentence token, not the start token; char level: one stream).",
    )
    q.add_argument(
        "model", metavar="NGRAM", help="a model written by `rnnlm ngram train` (or a run's ngram.npz)"
    )
    q.add_argument("file", metavar="FILE", help="text to score")
    q.add_argument("--format", default=None, help="read FILE in this format (default: the training corpus's)")
    q.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    q.set_defaults(run=run_perplexity)
    return p


def run_train(args) -> int:
    from rnnlm.data import prepare
    from rnnlm.models.ngram import KneserNey
    from rnnlm.training.api import split_for_training
    from rnnlm.training.baselines import DEFAULT_ORDER, fit_baselines, score_baselines

    corpus = prepare(args.corpus, progress=not args.json, **corpus_options(args))
    corpus, splits = split_for_training(
        corpus, args.valid_fraction, args.test_fraction, args.seed, args.min_count
    )
    order = args.order or DEFAULT_ORDER[corpus.level]
    models = fit_baselines(splits["train"], order)
    if args.discount is not None:
        kn = KneserNey(order, args.discount)
        seqs = splits["train"].stream() if corpus.level == "char" else splits["train"].sentences
        kn.fit(
            seqs,
            len(corpus.vocab),
            stream=corpus.level == "char",
            start_id=None if corpus.level == "char" else corpus.vocab.start_index,
        )
        kn.corpus_meta = models["kn"].corpus_meta
        models["kn"] = kn
    report = {
        "order": order,
        "train_tokens": splits["train"].n_tokens,
        "out": str(models["kn"].save(args.out)),
    }
    for name in ("valid", "test"):
        if len(splits[name]):
            report[name] = score_baselines(models, splits[name])
    if args.json:
        print_json(report)
        return 0
    for name in ("valid", "test"):
        if name in report:
            r = report[name]
            print(
                f"{name}: KN-{order} perplexity {r['kn']:.2f}, unigram {r['unigram']:.2f} "
                f"over {r['tokens']} tokens"
            )
    print(f"saved {report['out']}")
    return 0


def run_perplexity(args) -> int:
    import numpy as np

    from rnnlm.data import Corpus, Vocabulary
    from rnnlm.inference.scoring import perplexity_of
    from rnnlm.models.ngram import KneserNey

    kn = KneserNey.load(args.model)
    meta = kn.corpus_meta
    if not meta or not meta.get("vocab"):
        raise ConfigError(
            f"{args.model} has no vocabulary (it was not written by rnnlm ngram train or rnnlm train)"
        )
    encoder = Corpus.encoder(Vocabulary.from_json(meta["vocab"]), meta, format=args.format)
    encoded = encoder.encode_file(args.file)
    stream = encoder.level == "char"
    logprob, n = kn.score(np.concatenate(encoded.sentences) if stream else encoded.sentences, stream=stream)
    res = {
        "perplexity": perplexity_of(-logprob, n),
        "predicted_tokens": n,
        "order": kn.order,
        "oov": encoded.n_oov,
        "file": args.file,
    }
    if args.json:
        print_json(res)
        return 0
    print(
        f"KN-{kn.order} perplexity {res['perplexity']:.3f} over {n} predicted tokens ({encoded.n_oov} out of "
        f"vocabulary)"
    )
    return 0
