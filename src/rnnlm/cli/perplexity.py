"""``rnnlm perplexity``: perplexity of a text file under a checkpoint."""

from __future__ import annotations

from rnnlm.cli.common import add_runtime_arguments, load_checkpoint, need_vocab, positive_int, print_json

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
    add_runtime_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run)
    return p


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
    return 0
