"""``rnnlm fill``: fill in the blank (___) with a bidirectional model."""

from __future__ import annotations

from rnnlm.cli.common import add_runtime_arguments, load_checkpoint, need_vocab, positive_int, print_json


def add_parser(subparsers):
    p = subparsers.add_parser(
        "fill",
        help="fill in the blank (___) with a bidirectional model",
        description='The most probable words for the blank in TEXT (e.g. "the ___ sat on the mat"), '
        "given the words on both sides, from a model trained with --task fill. Probabilities are the "
        "model's own (not renormalised after leaving out SENTENCE_START/END and, by default, UNKNOWN_TOKEN).",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint .npz of a bidirectional (fill) model")
    p.add_argument("text", metavar="TEXT", help="a sentence with one blank written as ___")
    p.add_argument(
        "--top-k", type=positive_int, default=5, metavar="K", help="candidates to print (default: 5)"
    )
    p.add_argument("--allow-unk", action="store_true", help="let the unknown token be a candidate")
    add_runtime_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    from rnnlm import inference

    model, vocab, meta = load_checkpoint(args)
    need_vocab(vocab, args.checkpoint, "fill")
    c = meta.get("corpus") or {}
    got = inference.fill(
        model,
        vocab,
        args.text,
        top_k=args.top_k,
        settings=c.get("settings"),
        splitter=c.get("splitter"),
        allow_unk=args.allow_unk,
    )
    if args.json:
        print_json({"text": args.text, "candidates": [{"word": w, "prob": p} for w, p in got]})
        return 0
    for w, p in got:
        print(f"{p:.4f}\t{w}")
    return 0
