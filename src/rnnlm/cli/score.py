"""``rnnlm score``: log-probability and perplexity of each line of a file."""

from __future__ import annotations

import sys

from rnnlm.cli.common import (
    add_runtime_arguments,
    load_checkpoint,
    need_vocab,
    positive_int,
    print_json,
    read_input,
)
from rnnlm.cli.perplexity import PERPLEXITY_DEFINITION
from rnnlm.errors import ConfigError


def add_parser(subparsers):
    p = subparsers.add_parser(
        "score",
        help="log-probability and perplexity of each line (rank an n-best list with --rank)",
        description="Score every non-empty line of FILE (or stdin) as one sentence: its log-probability "
        "under the model (natural log, unscaled: no temperature), the number of predicted tokens and "
        "its perplexity. " + PERPLEXITY_DEFINITION,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint .npz")
    p.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="text, one sentence per line (default: -, stdin)"
    )
    p.add_argument(
        "--rank",
        action="store_true",
        help="print the lines best first (highest total log-probability), as for an n-best list",
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

    text = read_input(args.file)
    model, vocab, meta = load_checkpoint(args)
    need_vocab(vocab, args.checkpoint, "score")
    encoder = Corpus.encoder(vocab, meta.get("corpus"), format="lines")
    numbers, lines, sentences, oov = [], [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        enc = encoder.encode([line])
        if not enc.sentences:
            continue
        numbers.append(number)
        lines.append(line)
        sentences.append(enc.sentences[0])
        oov.append(enc.n_oov)
    if not sentences:
        raise ConfigError(f"{args.file if args.file != '-' else 'stdin'}: no sentences to score")
    scores = inference.sentence_logprob(model, sentences, batch_size=args.batch_size)
    ppl = scores.perplexity
    order = list(range(len(lines)))
    if args.rank:
        order.sort(key=lambda i: -scores.logprob[i])
    rows = [
        {
            "line": numbers[i],
            "text": lines[i],
            "logprob": float(scores.logprob[i]),
            "tokens": int(scores.ntok[i]),
            "perplexity": float(ppl[i]),
            "oov": oov[i],
        }
        for i in order
    ]
    total_tokens = int(scores.ntok.sum())
    total = {
        "sentences": len(lines),
        "logprob": float(scores.logprob.sum()),
        "tokens": total_tokens,
        "perplexity": inference.perplexity_of(-scores.logprob.sum(), total_tokens),
        "oov": int(sum(oov)),
    }
    if args.json:
        print_json({"sentences": rows, "total": total, "ranked": bool(args.rank)})
        return 0
    print("logprob\ttokens\tperplexity\toov\ttext")
    for r in rows:
        print(f"{r['logprob']:.4f}\t{r['tokens']}\t{r['perplexity']:.3f}\t{r['oov']}\t{r['text']}")
    print(
        f"# {total['sentences']} sentences, {total['tokens']} predicted tokens, total log-probability "
        f"{total['logprob']:.4f}, perplexity {total['perplexity']:.3f}, {total['oov']} OOV words",
        file=sys.stderr,
    )
    return 0
