"""What every ``rnnlm`` command shares: argument types, the parser class, corpus and runtime flags,
engine set-up, checkpoint loading and output helpers.

Command modules import from here and from the library; nothing here imports a command module, so
imports point one way (``cli.app`` → ``cli.<command>`` → ``cli.common`` → library).

A bad value becomes a :class:`~rnnlm.errors.UsageError`, which :func:`rnnlm.cli.app.main` prints as
one line with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from rnnlm.errors import ConfigError, EngineError, UsageError

PROG = "rnnlm"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


# --------------------------------------------------------------------------------------------------
# argument types
# --------------------------------------------------------------------------------------------------


def _number(cast, minimum, inclusive, what):
    def parse(text):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        ok = math.isfinite(v) and (v >= minimum if inclusive else v > minimum)
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return v

    parse.__name__ = what.replace(" ", "_")
    return parse


positive_int = _number(int, 0, False, "a positive integer")
nonneg_int = _number(int, 0, True, "an integer >= 0")
positive_float = _number(float, 0.0, False, "a positive number")
nonneg_float = _number(float, 0.0, True, "a number >= 0")


def int_at_least(lo: int):
    """An integer >= ``lo``."""
    return _number(int, lo, True, f"an integer >= {lo}")


def csv_list(item, choices=None):
    """A comma-separated list of ``item`` values (each one of ``choices`` when given)."""

    def parse(text):
        values = []
        for part in filter(None, (s.strip() for s in text.split(","))):
            try:
                v = item(part)
            except ValueError:
                raise argparse.ArgumentTypeError(f"bad list item {part!r} in {text!r}") from None
            except argparse.ArgumentTypeError as e:
                raise argparse.ArgumentTypeError(f"list item {part!r}: {e}") from None
            if choices is not None and v not in choices:
                raise argparse.ArgumentTypeError(f"{part!r} is not one of {', '.join(choices)}")
            values.append(v)
        if not values:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        return values

    return parse


def duration(text) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h`` -> seconds (see :func:`rnnlm.training.parse_duration`)."""
    from rnnlm.training.config import parse_duration

    try:
        return parse_duration(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# --------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------


def print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, sort_keys=False))


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def read_input(path) -> str:
    """The text of ``path`` (``-`` or None: stdin), UTF-8 with undecodable bytes replaced."""
    if path in (None, "-"):
        return sys.stdin.read()
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory")
    if not p.exists():
        raise ConfigError(f"{p}: no such file")
    return p.read_bytes().decode("utf-8-sig", errors="replace")


# --------------------------------------------------------------------------------------------------
# corpus flags
# --------------------------------------------------------------------------------------------------


def add_corpus_arguments(p: argparse.ArgumentParser, vocab_size: int | None = 8000) -> None:
    """The flags of :func:`rnnlm.data.prepare` (``--format``, ``--tokenizer``, ``--column``, ...)."""
    from rnnlm.data import FORMATS, LEVELS, SPLITTERS, TOKENIZERS

    g = p.add_argument_group("corpus")
    g.add_argument("--level", choices=LEVELS, default="word", help="word or character tokens (default: word)")
    g.add_argument(
        "--vocab-size",
        type=int,
        default=vocab_size,
        metavar="N",
        help="keep the N-1 most frequent tokens plus the unknown token (default: %(default)s)",
    )
    g.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="csv: a column of a CSV with a header; jsonl: a field of JSON lines; text: plain "
        "text; lines: one pre-tokenized sentence per line (PTB, WikiText); auto: by extension "
        "and content (default)",
    )
    g.add_argument(
        "--tokenizer",
        choices=TOKENIZERS,
        default=None,
        help="nltk: Punkt sentences + Treebank words (default at word level); whitespace: split "
        "lines on whitespace, never rewrite tokens (default for --format lines); char: characters",
    )
    g.add_argument(
        "--column", default="body", metavar="NAME", help="CSV column holding the text (default: body)"
    )
    g.add_argument(
        "--field", default="text", metavar="NAME", help="JSONL field holding the text (default: text)"
    )
    g.add_argument(
        "--unk-token",
        default=None,
        metavar="TOK",
        help="unknown-word token (default: <unk> if the corpus has it, else UNKNOWN_TOKEN)",
    )
    g.add_argument(
        "--lowercase",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="lowercase the text (default: yes with the nltk tokenizer, as in the tutorial; no otherwise)",
    )
    g.add_argument(
        "--max-sentences", type=int, default=None, metavar="N", help="keep only the first N sentences"
    )
    g.add_argument(
        "--drop-containing",
        default=None,
        metavar="STR",
        help="drop sentences containing STR (the tutorial's part 4 drops 'http')",
    )
    g.add_argument(
        "--min-length", type=int, default=None, metavar="N", help="drop sentences with fewer than N tokens"
    )
    g.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="tokenize in N processes (same result as 1; default: 1)",
    )
    g.add_argument(
        "--splitter",
        choices=SPLITTERS,
        default="auto",
        help="Punkt sentence model: NLTK's installed punkt_tab data, or one trained on the corpus "
        "itself (auto: installed if present, else trained)",
    )


def corpus_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for :func:`rnnlm.data.prepare` from :func:`add_corpus_arguments` flags."""
    return {
        "level": args.level,
        "vocab_size": args.vocab_size,
        "format": args.format,
        "tokenizer": args.tokenizer,
        "column": args.column,
        "field": args.field,
        "unk_token": args.unk_token,
        "lowercase": args.lowercase,
        "max_sentences": args.max_sentences,
        "drop_containing": args.drop_containing,
        "min_length": args.min_length,
        "splitter": args.splitter,
        "workers": getattr(args, "workers", 1),
    }


def print_corpus_stats(stats: dict, file=None) -> None:
    """The tutorial's statistics lines, then rnnlm's extra ones."""
    out = file or sys.stdout

    def say(line=""):
        print(line, file=out)

    say(f"Parsed {stats['sentences']} sentences.")
    word = "characters" if stats.get("level") == "char" else "words tokens"
    say(f"Found {stats['unique_tokens']} unique {word}.")
    requested = stats.get("requested_vocab_size")
    extra = ""
    if requested is not None and requested > stats["vocab_size"]:
        extra = f" (asked for {requested}; the corpus has only {stats['unique_tokens']} distinct tokens)"
    say(f"Using vocabulary size {stats['vocab_size']}{extra}.")
    if stats.get("least_frequent_word") is not None:
        say(
            f"The least frequent word in our vocabulary is {stats['least_frequent_word']!r} and appeared "
            f"{stats['least_frequent_count']} times."
        )
    fmt = stats.get("format")
    if stats.get("format_reason"):
        fmt = f"{fmt} ({stats.get('format_reason')})"
    tokens = stats.get("tokens")
    if stats.get("level") == "word":
        tokens = f"{tokens} ({stats.get('words')} without SENTENCE_START/END)"
    unknown = (
        f"{stats.get('unknown_token')!r}: {stats.get('unknown_tokens')} tokens "
        f"({100 * stats.get('unknown_rate', 0):.2f}%)"
    )
    details = [
        ("source", stats.get("source")),
        ("format", fmt),
        ("tokenizer", stats.get("tokenizer")),
        ("sentence splitter", stats.get("sentence_splitter")),
        ("lowercase", stats.get("lowercase")),
        ("tokens", tokens),
        ("unknown token", unknown),
    ]
    if stats.get("dropped_sentences"):
        details.append(("dropped sentences", stats["dropped_sentences"]))
    if stats.get("truncated_rows"):
        details.append(("cut-off rows skipped", stats["truncated_rows"]))
    if stats.get("replacement_chars"):
        details.append(("undecodable bytes replaced", stats["replacement_chars"]))
    if stats.get("split"):
        details.append(("split", stats["split"]))
    for key, value in details:
        if value is not None:
            say(f"  {key}: {value}")


# --------------------------------------------------------------------------------------------------
# engine, linker, device
# --------------------------------------------------------------------------------------------------


def add_runtime_arguments(p: argparse.ArgumentParser, engine: bool = False) -> argparse._ArgumentGroup:
    """``--linker`` and ``--device`` (and ``--engine`` when the command may choose it)."""
    r = p.add_argument_group("runtime")
    if engine:
        r.add_argument(
            "--engine", choices=("pytensor", "aesara"), default=None, help="graph engine (default: installed)"
        )
    r.add_argument(
        "--linker",
        choices=("c", "jax", "numba"),
        default=None,
        help="compile backend (default: jax with PyTensor, c with Aesara)",
    )
    r.add_argument(
        "--device", choices=("cpu", "gpu", "auto"), default="cpu", help="(jax linker) where to run"
    )
    return r


def setup_engine(engine_name=None, device="cpu", linker=None):
    """Select the engine (before it is imported) and device; returns ``(engine module, linker)``."""
    if engine_name:
        loaded = "rnnlm.engine" in sys.modules
        if loaded and sys.modules["rnnlm.engine"].name != engine_name:
            raise EngineError(f"engine {sys.modules['rnnlm.engine'].name} is already loaded in this process")
        os.environ["RNNLM_ENGINE"] = engine_name
    from rnnlm import engine

    linker = linker or engine.default_linker()
    engine.mode_for(linker)  # validates the linker for this engine
    if device != "cpu" and linker != "jax":
        raise EngineError(f"--device {device} needs the jax linker (got --linker {linker})")
    if linker == "jax":
        engine.select_device(device)
    return engine, linker


def load_checkpoint(args):
    """``(model, vocab, meta)`` of ``args.checkpoint`` on the requested linker and device. A run folder
    is read as its best.npz, else its checkpoint.npz; a note on stderr says which file it was."""
    from rnnlm.training.checkpoint import load_model, resolve

    _, linker = setup_engine(getattr(args, "engine", None), args.device, args.linker)
    if Path(args.checkpoint).is_dir():
        note(f"using {resolve(args.checkpoint)}")
    return load_model(args.checkpoint, linker=linker)


def need_vocab(vocab, path, what: str) -> None:
    if vocab is None:
        raise ConfigError(
            f"{path} has no vocabulary (the tutorial's trained-model-theano.npz has only U, V, W); "
            f"{what} needs one: use a checkpoint written by rnnlm train"
        )


def add_subcommands(p: argparse.ArgumentParser, dest: str, names) -> argparse._SubParsersAction:
    """Subcommands of a command group (``rnnlm data download|prepare|info``...).

    Each subcommand parser sets its own ``run``; the group's ``run`` (used when no subcommand is
    given) is a one-line usage error naming the choices.
    """
    names = list(names)

    def choose(args):
        raise UsageError(f"{p.prog}: choose one of {', '.join(names)} (see `{p.prog} --help`)")

    p.set_defaults(run=choose)
    return p.add_subparsers(dest=dest, metavar="{" + ",".join(names) + "}", parser_class=ArgumentParser)
