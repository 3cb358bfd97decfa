"""``rnnlm generate``: sentences (word models) or text (char models) from a checkpoint."""

from __future__ import annotations

from rnnlm.cli.common import (
    add_runtime_arguments,
    load_checkpoint,
    nonneg_float,
    nonneg_int,
    note,
    positive_float,
    positive_int,
    print_json,
    read_input,
    warn,
)

TEMPERATURE_HELP = (
    "sampling temperature: < 1 sharper (towards greedy), > 1 flatter (towards uniform); default 1"
)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "generate",
        help="generate sentences (word models) or text (char models) from a checkpoint",
        description="Generate text with a trained model. Word level follows the tutorial: start from "
        "SENTENCE_START, draw until SENTENCE_END, never emit UNKNOWN_TOKEN. Char level: --max-length "
        "characters after the prime. The state after the prime is carried into generation (one "
        "compiled step per token). Temperature and top-k change only sampling, never scores. With the "
        "tutorial's trained-model-theano.npz (no vocabulary) token ids are printed.",
    )
    p.add_argument(
        "checkpoint", metavar="CKPT", help="checkpoint .npz (or the tutorial's trained-model-theano.npz)"
    )
    g = p.add_argument_group("decoding")
    g.add_argument(
        "--num",
        type=positive_int,
        default=None,
        metavar="N",
        help="samples to print (default 5; greedy: 1; beam: the beam size)",
    )
    g.add_argument(
        "--mode",
        choices=("sample", "greedy", "beam"),
        default="sample",
        help="sample (default), greedy (argmax) or beam search",
    )
    g.add_argument("--temperature", type=positive_float, default=1.0, metavar="T", help=TEMPERATURE_HELP)
    g.add_argument(
        "--top-k",
        type=nonneg_int,
        default=0,
        metavar="K",
        help="sample only among the K most probable tokens (0: all; default)",
    )
    g.add_argument("--beam-size", type=positive_int, default=5, metavar="K", help="beam width (default: 5)")
    g.add_argument(
        "--length-penalty",
        type=nonneg_float,
        default=0.0,
        metavar="A",
        help="beam ranking: log p / ((5 + length) / 6) ** A; 0 ranks by log-probability, larger "
        "values favour longer sentences (default: 0)",
    )
    g.add_argument(
        "--min-length",
        type=nonneg_int,
        default=None,
        metavar="N",
        help="words before SENTENCE_END is allowed (default: 1)",
    )
    g.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        metavar="N",
        help="at most N words per sentence (default: 100); characters to generate at char level "
        "(default: 200)",
    )
    pr = g.add_mutually_exclusive_group()
    pr.add_argument(
        "--prime",
        default=None,
        metavar="TEXT",
        help="start from this text (tokenized like the training corpus); word level continues its "
        "last sentence",
    )
    pr.add_argument(
        "--prime-file", default=None, metavar="PATH", help="start from the text of a file (any length)"
    )
    g.add_argument("--allow-unk", action="store_true", help="let the unknown token be generated")
    g.add_argument("--seed", type=int, default=None, help="random seed (default: fresh randomness)")
    ids = p.add_argument_group("models without a vocabulary")
    ids.add_argument("--start-id", type=int, default=None, help="id of SENTENCE_START (tutorial layout: 0)")
    ids.add_argument("--end-id", type=int, default=None, help="id of SENTENCE_END (tutorial layout: 1)")
    ids.add_argument(
        "--unk-id", type=int, default=None, help="id of UNKNOWN_TOKEN (tutorial layout: the last)"
    )
    add_runtime_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    from rnnlm import inference

    model, vocab, meta = load_checkpoint(args)
    special = inference.special_ids(model, vocab, args.start_id, args.end_id, args.unk_id)
    if vocab is None:
        note(
            f"{args.checkpoint} has no vocabulary: printing token ids (SENTENCE_START={special.start}, "
            f"SENTENCE_END={special.end}, UNKNOWN_TOKEN={special.unk}, the tutorial's layout; change with "
            f"--start-id/--end-id/--unk-id)"
        )
    word = special.level == "word"
    prime_text = args.prime
    if args.prime_file is not None:
        prime_text = read_input(args.prime_file)
    prime = None
    if prime_text is not None:
        if vocab is None:
            prime = prime_text  # token ids, parsed by rnnlm.inference
        else:
            c = meta.get("corpus") or {}
            prime, n_oov = inference.encode_prime(prime_text, vocab, c.get("settings"), c.get("splitter"))
            if n_oov:
                warn(
                    f"{n_oov} token(s) of the prime are not in the vocabulary and were read as "
                    f"{vocab.unknown_token}"
                )
    min_length = args.min_length if args.min_length is not None else (1 if word else 0)
    common = dict(
        min_length=min_length, max_length=args.max_length, prime=prime, allow_unk=args.allow_unk, ids=special
    )
    if args.mode == "beam":
        num = args.num or args.beam_size
        results = inference.beam_search(
            model, vocab, args.beam_size, length_penalty=args.length_penalty, n_best=num, **common
        )
    else:
        num = 1 if args.mode == "greedy" else (args.num or 5)
        results = inference.generate(
            model,
            vocab,
            num,
            seed=args.seed,
            temperature=args.temperature,
            top_k=args.top_k,
            mode=args.mode,
            **common,
        )
    if args.json:
        print_json(
            {
                "mode": args.mode,
                "level": special.level,
                "vocabulary": vocab is not None,
                "temperature": args.temperature if args.mode == "sample" else None,
                "top_k": args.top_k if args.mode == "sample" else None,
                "beam_size": args.beam_size if args.mode == "beam" else None,
                "length_penalty": args.length_penalty if args.mode == "beam" else None,
                "seed": args.seed,
                "prime": args.prime,
                "prime_file": args.prime_file,
                "samples": [r.to_json() for r in results],
            }
        )
        return 0
    for i, r in enumerate(results):
        if word:
            print(r.text)
        else:  # char level: the line being continued plus the characters generated
            if i:
                print()
            print(r.text, end="" if r.text.endswith("\n") else "\n")
    return 0
