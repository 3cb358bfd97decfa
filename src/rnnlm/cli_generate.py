"""``rnnlm generate | score | perplexity | fill``: decoding and scoring with a trained checkpoint.

Each command loads a checkpoint with :func:`rnnlm.checkpoint.load_model` (an rnnlm checkpoint, or
the tutorial's ``trained-model-theano.npz``, which has no vocabulary) and tokenizes new text exactly
as the training corpus was (the corpus settings and Punkt parameters stored in the checkpoint).
The work is done by :mod:`rnnlm.sample`; heavy modules are imported inside the handlers.
"""

from __future__ import annotations

import math
import sys

from .argtypes import nonneg_float as _nonneg_float
from .argtypes import nonneg_int as _nonneg_int
from .argtypes import positive_float as _positive_float
from .argtypes import positive_int as _positive_int
from .errors import ConfigError

PERPLEXITY_DEFINITION = (
    "Perplexity = exp(mean negative log-likelihood over every predicted token): at word level every "
    "word and the end-of-sentence token, not the start token (it is given, not predicted); at char "
    "level every character after the first, the text scored as one stream. Out-of-vocabulary words "
    "are scored as the unknown token and counted separately."
)
TEMPERATURE_HELP = (
    "sampling temperature: < 1 sharper (towards greedy), > 1 flatter (towards uniform); default 1"
)


def _runtime_arguments(p):
    r = p.add_argument_group("runtime")
    r.add_argument(
        "--linker",
        choices=("c", "jax", "numba"),
        default=None,
        help="compile with this linker (default: jax when installed, else c)",
    )
    r.add_argument(
        "--device", choices=("cpu", "gpu", "auto"), default="cpu", help="(jax linker) where to run"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _load(args):
    """(model, vocab, meta) of ``args.checkpoint`` on the requested linker/device."""
    from .checkpoint import load_model
    from .cli_train import setup_engine

    _, linker = setup_engine(None, args.device, args.linker)
    return load_model(args.checkpoint, linker=linker)


def _corpus_meta(meta) -> dict:
    return (meta or {}).get("corpus") or {}


def _encoder(meta, vocab, format=None):
    """An empty Corpus that tokenizes new text like the training corpus (optionally as ``format``)."""
    from .corpus import Corpus

    c = _corpus_meta(meta)
    level = "char" if vocab.start_index is None else "word"
    settings = dict(c.get("settings") or {})
    if format is not None:
        settings["format"] = format
    return Corpus(vocab, [], level, settings=settings, splitter=c.get("splitter"))


def _need_vocab(vocab, path, what):
    if vocab is None:
        raise ConfigError(
            f"{path} has no vocabulary (the tutorial's trained-model-theano.npz has only U, V, W); "
            f"{what} needs one: use a checkpoint written by rnnlm train"
        )


def _warn(message):
    print(f"rnnlm: warning: {message}", file=sys.stderr)


def _note(message):
    print(f"rnnlm: {message}", file=sys.stderr)


def _read_input(path) -> str:
    if path in (None, "-"):
        return sys.stdin.read()
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory")
    if not p.exists():
        raise ConfigError(f"{p}: no such file")
    return p.read_bytes().decode("utf-8-sig", errors="replace")


# --------------------------------------------------------------------------------------------------
# rnnlm generate
# --------------------------------------------------------------------------------------------------


def add_generate_parser(subparsers):
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
        type=_positive_int,
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
    g.add_argument("--temperature", type=_positive_float, default=1.0, metavar="T", help=TEMPERATURE_HELP)
    g.add_argument(
        "--top-k",
        type=_nonneg_int,
        default=0,
        metavar="K",
        help="sample only among the K most probable tokens (0: all; default)",
    )
    g.add_argument("--beam-size", type=_positive_int, default=5, metavar="K", help="beam width (default: 5)")
    g.add_argument(
        "--length-penalty",
        type=_nonneg_float,
        default=0.0,
        metavar="A",
        help="beam ranking: log p / ((5 + length) / 6) ** A; 0 ranks by log-probability, larger "
        "values favour longer sentences (default: 0)",
    )
    g.add_argument(
        "--min-length",
        type=_nonneg_int,
        default=None,
        metavar="N",
        help="words before SENTENCE_END is allowed (default: 1)",
    )
    g.add_argument(
        "--max-length",
        type=_positive_int,
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
    _runtime_arguments(p)
    return p


def cmd_generate(args) -> int:
    from . import sample
    from .cli import _print_json

    model, vocab, meta = _load(args)
    special = sample.special_ids(model, vocab, args.start_id, args.end_id, args.unk_id)
    if vocab is None:
        _note(
            f"{args.checkpoint} has no vocabulary: printing token ids (SENTENCE_START={special.start}, "
            f"SENTENCE_END={special.end}, UNKNOWN_TOKEN={special.unk}, the tutorial's layout; change with "
            f"--start-id/--end-id/--unk-id)"
        )
    word = special.level == "word"
    prime_text = args.prime
    if args.prime_file is not None:
        prime_text = _read_input(args.prime_file)
    prime = None
    if prime_text is not None:
        if vocab is None:
            prime = prime_text  # token ids, parsed by rnnlm.sample
        else:
            c = _corpus_meta(meta)
            prime, n_oov = sample.encode_prime(prime_text, vocab, c.get("settings"), c.get("splitter"))
            if n_oov:
                _warn(
                    f"{n_oov} token(s) of the prime are not in the vocabulary and were read as "
                    f"{vocab.unknown_token}"
                )
    min_length = args.min_length if args.min_length is not None else (1 if word else 0)
    common = dict(
        min_length=min_length, max_length=args.max_length, prime=prime, allow_unk=args.allow_unk, ids=special
    )
    if args.mode == "beam":
        num = args.num or args.beam_size
        results = sample.beam_search(
            model, vocab, args.beam_size, length_penalty=args.length_penalty, n_best=num, **common
        )
    else:
        num = 1 if args.mode == "greedy" else (args.num or 5)
        results = sample.generate(
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
        _print_json(
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


# --------------------------------------------------------------------------------------------------
# rnnlm score
# --------------------------------------------------------------------------------------------------


def add_score_parser(subparsers):
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
        "--batch-size", type=_positive_int, default=32, metavar="B", help="sentences per batch (default: 32)"
    )
    _runtime_arguments(p)
    return p


def cmd_score(args) -> int:
    from . import sample
    from .cli import _print_json

    text = _read_input(args.file)
    model, vocab, meta = _load(args)
    _need_vocab(vocab, args.checkpoint, "score")
    encoder = _encoder(meta, vocab, format="lines")
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
    scores = sample.sentence_logprob(model, sentences, batch_size=args.batch_size)
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
        "perplexity": math.exp(-scores.logprob.sum() / total_tokens) if total_tokens else float("nan"),
        "oov": int(sum(oov)),
    }
    if args.json:
        _print_json({"sentences": rows, "total": total, "ranked": bool(args.rank)})
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


# --------------------------------------------------------------------------------------------------
# rnnlm perplexity
# --------------------------------------------------------------------------------------------------


def add_perplexity_parser(subparsers):
    from .corpus import FORMATS

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
        "--batch-size", type=_positive_int, default=32, metavar="B", help="sentences per batch (default: 32)"
    )
    _runtime_arguments(p)
    return p


def cmd_perplexity(args) -> int:
    from . import sample
    from .cli import _print_json

    model, vocab, meta = _load(args)
    _need_vocab(vocab, args.checkpoint, "perplexity")
    encoder = _encoder(meta, vocab)
    encoded = encoder.encode_file(args.file, format=args.format, column=args.column, field=args.field)
    result = sample.perplexity(model, encoded, level=encoder.level, batch_size=args.batch_size)
    out = {
        **result.to_json(),
        "file": args.file,
        "unknown_token": vocab.unknown_token,
        "oov_types": len(encoded.oov_counts),
        "definition": PERPLEXITY_DEFINITION,
    }
    if args.json:
        _print_json(out)
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


# --------------------------------------------------------------------------------------------------
# rnnlm fill
# --------------------------------------------------------------------------------------------------


def add_fill_parser(subparsers):
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
        "--top-k", type=_positive_int, default=5, metavar="K", help="candidates to print (default: 5)"
    )
    p.add_argument("--allow-unk", action="store_true", help="let the unknown token be a candidate")
    _runtime_arguments(p)
    return p


def cmd_fill(args) -> int:
    from . import sample
    from .cli import _print_json

    model, vocab, meta = _load(args)
    _need_vocab(vocab, args.checkpoint, "fill")
    c = _corpus_meta(meta)
    got = sample.fill(
        model,
        vocab,
        args.text,
        top_k=args.top_k,
        settings=c.get("settings"),
        splitter=c.get("splitter"),
        allow_unk=args.allow_unk,
    )
    if args.json:
        _print_json({"text": args.text, "candidates": [{"word": w, "prob": p} for w, p in got]})
        return 0
    for w, p in got:
        print(f"{p:.4f}\t{w}")
    return 0
