"""``rnnlm perplexity``: perplexity of a text file under a checkpoint."""

from __future__ import annotations

from rnnlm.cli.common import add_runtime_arguments, load_checkpoint, need_vocab, positive_int, print_json
from rnnlm.errors import ConfigError

PERPLEXITY_DEFINITION = (
    "Perplexity = exp(mean negative log-likelihood over every predicted token): at word level every "
    "word and the end-of-sentence token, not the start token (it is given, not predicted); at char "
    "level every character after the first, the text scored as one stream. Out-of-vocabulary words "
    "are scored as the unknown token and counted separately."
)


def add_parser(subparsers):
    from rnnlm.data import FORMATS

    p = subparsers.add_parser(
        "perplexity",
        help="perplexity of a text file (with its out-of-vocabulary count)",
        description="Perplexity of a test file under a checkpoint, the file read and tokenized as the "
        "training corpus was (its format unless --format says otherwise). " + PERPLEXITY_DEFINITION,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint .npz")
    p.add_argument("file", metavar="FILE", help="text to evaluate")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="read FILE in this format (default: the training corpus's; auto: detect)",
    )
    p.add_argument(
        "--column", default=None, metavar="NAME", help="CSV column (default: the training corpus's)"
    )
    p.add_argument(
        "--field", default=None, metavar="NAME", help="JSONL field (default: the training corpus's)"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=32, metavar="B", help="sentences per batch (default: 32)"
    )
    p.add_argument(
        "--interpolate",
        default=None,
        metavar="NGRAM",
        help="also score the mixture λ·RNN + (1-λ)·NGRAM token by token (Mikolov et al., 2011); NGRAM "
        "is an n-gram model of the same vocabulary: a run's ngram.npz, or `rnnlm ngram train --out`",
    )
    p.add_argument(
        "--lambda",
        dest="lam",
        default="auto",
        metavar="λ",
        help="the RNN's weight in [0, 1]; auto: the λ tuned on the validation split when the checkpoint "
        "was trained (stored in it) (default: auto)",
    )
    add_runtime_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run)
    return p


def _lambda(args, meta) -> float:
    if args.lam != "auto":
        try:
            lam = float(args.lam)
        except ValueError:
            raise ConfigError(f"--lambda: expected auto or a number in [0, 1], got {args.lam!r}") from None
        if not 0.0 <= lam <= 1.0:
            raise ConfigError(f"--lambda: expected a number in [0, 1], got {args.lam}")
        return lam
    stored = ((meta.get("train_state") or {}).get("interpolation") or {}).get("lambda")
    if not isinstance(stored, (int, float)) or not 0.0 <= stored <= 1.0:
        raise ConfigError(
            f"--lambda auto: {args.checkpoint} has no tuned λ (it is stored in best.npz by rnnlm "
            "train); give --lambda VALUE"
        )
    return float(stored)


def _interpolate(args, model, vocab, meta, encoded, level) -> dict:
    from rnnlm.inference.interpolation import interpolated, token_logprobs
    from rnnlm.models.ngram import KneserNey

    lam = _lambda(args, meta)
    ngram = KneserNey.load(args.interpolate)
    theirs = (ngram.corpus_meta or {}).get("vocab")
    if theirs is not None and theirs != vocab.to_json():
        raise ConfigError(f"{args.interpolate} was trained on another vocabulary than {args.checkpoint}")
    lp_rnn, lp_ngram = token_logprobs(model, ngram, encoded.sentences, level, args.batch_size)
    return {**interpolated(lp_rnn, lp_ngram, lam), "ngram_order": ngram.order, "ngram_file": args.interpolate}


def run(args) -> int:
    from rnnlm import inference
    from rnnlm.data import Corpus

    model, vocab, meta = load_checkpoint(args)
    need_vocab(vocab, args.checkpoint, "perplexity")
    encoder = Corpus.encoder(vocab, meta.get("corpus"))
    encoded = encoder.encode_file(args.file, format=args.format, column=args.column, field=args.field)
    result = inference.perplexity(model, encoded, level=encoder.level, batch_size=args.batch_size)
    out = {
        **result.to_json(),
        "file": args.file,
        "unknown_token": vocab.unknown_token,
        "oov_types": len(encoded.oov_counts),
        "definition": PERPLEXITY_DEFINITION,
    }
    if args.interpolate:
        out["interpolation"] = _interpolate(args, model, vocab, meta, encoded, encoder.level)
    if args.json:
        print_json(out)
        return 0
    unit = "words + SENTENCE_END" if result.level == "word" else "characters"
    print(
        f"perplexity {result.perplexity:.3f} over {result.predicted} predicted tokens ({unit}) in "
        f"{result.sentences} {'sentences' if result.level == 'word' else 'lines'}"
    )
    print(f"  nll {result.nll:.4f} nats/token ({result.bits_per_token:.4f} bits)")
    words = result.words if result.words is not None else 0
    print(
        f"  out-of-vocabulary: {result.oov} of {words} {'words' if result.level == 'word' else 'characters'} "
        f"({100 * result.oov_rate:.2f}%), scored as {vocab.unknown_token!r}"
    )
    mix = out.get("interpolation")
    if mix:
        print(
            f"  KN-{mix['ngram_order']} alone {mix['ngram']:.3f}; mixture λ={mix['lambda']:.3f}·RNN + "
            f"{1 - mix['lambda']:.3f}·KN-{mix['ngram_order']}: perplexity {mix['interpolated']:.3f}"
        )
    return 0
