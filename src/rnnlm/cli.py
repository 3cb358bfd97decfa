"""The ``rnnlm`` command line (``rnnlm = rnnlm.cli:main``; ``python -m rnnlm`` too).

Adding a command: write ``add_<name>_parser(subparsers)`` (creates and returns its parser with
``subparsers.add_parser(name, ...)``) and ``cmd_<name>(args) -> int | None``, then add one entry to
:data:`COMMANDS` (or call :func:`register`). Handlers import heavy modules (the graph engine, models)
inside the function, so ``rnnlm --help`` and the data commands stay fast. Corpus-reading commands can
share flags with :func:`add_corpus_arguments` / :func:`corpus_options`.

Errors: every :class:`~rnnlm.errors.RnnlmError`, an ``OSError`` on a user's file and an argparse usage
error print one line ``rnnlm: error: ...`` on stderr and exit with code 2, never a traceback.
KeyboardInterrupt exits with 130. Warnings print as ``rnnlm: warning: ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable

from . import __version__, cli_analyze, cli_bench, cli_experiment, cli_generate, cli_train
from .errors import RnnlmError, UsageError

PROG = "rnnlm"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


# --------------------------------------------------------------------------------------------------
# shared corpus flags
# --------------------------------------------------------------------------------------------------


def add_corpus_arguments(p: argparse.ArgumentParser, vocab_size: int | None = 8000) -> None:
    """The flags of :func:`rnnlm.corpus.prepare` (``--format``, ``--tokenizer``, ``--column``, ...)."""
    from .corpus import FORMATS, LEVELS, SPLITTERS, TOKENIZERS

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
        help="csv: a column of a CSV with a header; jsonl: a field of JSON lines; text: plain text; "
        "lines: one pre-tokenized sentence per line (PTB, WikiText); auto: by extension and "
        "content (default)",
    )
    g.add_argument(
        "--tokenizer",
        choices=TOKENIZERS,
        default=None,
        help="nltk: Punkt sentences + Treebank words (default at word level); whitespace: split lines "
        "on whitespace, never rewrite tokens (default for --format lines); char: characters",
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
    """Keyword arguments for :func:`rnnlm.corpus.prepare` from :func:`add_corpus_arguments` flags."""
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
    note = ""
    if requested is not None and requested > stats["vocab_size"]:
        note = f" (asked for {requested}; the corpus has only {stats['unique_tokens']} distinct tokens)"
    say(f"Using vocabulary size {stats['vocab_size']}{note}.")
    if stats.get("least_frequent_word") is not None:
        say(
            f"The least frequent word in our vocabulary is {stats['least_frequent_word']!r} and appeared "
            f"{stats['least_frequent_count']} times."
        )
    details = [
        ("source", stats.get("source")),
        (
            "format",
            f"{stats.get('format')} ({stats.get('format_reason')})"
            if stats.get("format_reason")
            else stats.get("format"),
        ),
        ("tokenizer", stats.get("tokenizer")),
        ("sentence splitter", stats.get("sentence_splitter")),
        ("lowercase", stats.get("lowercase")),
        (
            "tokens",
            f"{stats.get('tokens')} ({stats.get('words')} without SENTENCE_START/END)"
            if stats.get("level") == "word"
            else stats.get("tokens"),
        ),
        (
            "unknown token",
            (
                f"{stats.get('unknown_token')!r}: {stats.get('unknown_tokens')} tokens "
                f"({100 * stats.get('unknown_rate', 0):.2f}%)"
            ),
        ),
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


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, sort_keys=False))


# --------------------------------------------------------------------------------------------------
# rnnlm data ...
# --------------------------------------------------------------------------------------------------


def add_data_parser(subparsers) -> argparse.ArgumentParser:
    from .datasets import KNOWN

    p = subparsers.add_parser(
        "data",
        help="download, prepare and inspect corpora",
        description="Download known data files, prepare corpora into .npz files, inspect them.",
    )
    sub = p.add_subparsers(
        dest="data_command", metavar="{download,prepare,info}", parser_class=ArgumentParser
    )

    d = sub.add_parser(
        "download",
        help="download a known data file into data/ (verified)",
        description="Download a known data file from its original public URL, verify it "
        "(sha256, or by parsing for the reddit CSV) and move it into place. "
        "RNNLM_DATA=DIR makes every command look in DIR first.",
    )
    d.add_argument(
        "name", choices=list(KNOWN), help="; ".join(f"{k}: {v.description}" for k, v in KNOWN.items())
    )
    d.add_argument("--force", action="store_true", help="download even if a verified copy exists")
    d.add_argument("--dest", default=None, metavar="DIR", help="folder to download into (default: data/)")

    pr = sub.add_parser(
        "prepare",
        help="read, tokenize and encode a corpus into an .npz file",
        description="Prepare a corpus (a file or a known name such as reddit or tinyshakespeare): "
        "the tutorial's preprocessing, printed with its statistics.",
    )
    pr.add_argument("source", help="corpus file or known corpus name (reddit, tinyshakespeare)")
    pr.add_argument("--out", required=True, metavar="FILE.npz", help="where to write the prepared corpus")
    add_corpus_arguments(pr)
    pr.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    i = sub.add_parser(
        "info",
        help="show the statistics of a prepared corpus",
        description="Show the statistics and vocabulary head of a prepared .npz corpus.",
    )
    i.add_argument("file", metavar="FILE.npz")
    i.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def cmd_data(args) -> int | None:
    handlers = {"download": cmd_data_download, "prepare": cmd_data_prepare, "info": cmd_data_info}
    if args.data_command is None:
        raise UsageError("rnnlm data: choose one of download, prepare, info (see `rnnlm data --help`)")
    return handlers[args.data_command](args)


def cmd_data_download(args) -> int:
    from . import datasets

    path = datasets.download(args.name, dest=args.dest, force=args.force)
    print(path)
    return 0


def _check_out_path(out: str) -> None:
    from pathlib import Path

    p = Path(out)
    if p.is_dir():
        raise UsageError(f"--out {out}: is a directory; give a file name such as corpus.npz")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--out {out}: folder {parent} does not exist")


def cmd_data_prepare(args) -> int:
    from .corpus import prepare

    _check_out_path(args.out)
    corpus = prepare(args.source, progress=not args.json, **corpus_options(args))
    path = corpus.save(args.out)
    if args.json:
        _print_json({**corpus.stats, "out": str(path)})
    else:
        print_corpus_stats(corpus.stats)
        print(f"Saved {len(corpus)} sentences to {path}")
    return 0


def cmd_data_info(args) -> int:
    from .corpus import Corpus

    corpus = Corpus.load(args.file)
    head = corpus.vocab.index_to_word[:20]
    if args.json:
        _print_json({**corpus.stats, "file": args.file, "vocab_head": head})
        return 0
    print_corpus_stats(corpus.stats)
    print(f"  vocabulary head: {' '.join(repr(w) for w in head)}")
    return 0


# --------------------------------------------------------------------------------------------------
# registry and entry point
# --------------------------------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace], "int | None"]

#: name -> (add_<name>_parser, cmd_<name>), in the order ``rnnlm --help`` lists them.
COMMANDS: dict[str, tuple[Callable, Handler]] = {
    "data": (add_data_parser, cmd_data),
    "train": (cli_train.add_train_parser, cli_train.cmd_train),
    "demo": (cli_train.add_demo_parser, cli_train.cmd_demo),
    "generate": (cli_generate.add_generate_parser, cli_generate.cmd_generate),
    "score": (cli_generate.add_score_parser, cli_generate.cmd_score),
    "perplexity": (cli_generate.add_perplexity_parser, cli_generate.cmd_perplexity),
    "fill": (cli_generate.add_fill_parser, cli_generate.cmd_fill),
    "analyze": (cli_analyze.add_analyze_parser, cli_analyze.cmd_analyze),
    "experiment": (cli_experiment.add_experiment_parser, cli_experiment.cmd_experiment),
    "bench": (cli_bench.add_bench_parser, cli_bench.cmd_bench),
}


def register(name: str, add_parser: Callable, handler: Handler) -> None:
    """Add (or replace) a command."""
    COMMANDS[name] = (add_parser, handler)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="RNN language models in the Theano style (the WildML RNN tutorial as a library).",
        epilog="Data files are looked up in $RNNLM_DATA first, then in data/.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for add, handler in COMMANDS.values():
        p = add(sub)
        p.set_defaults(_handler=handler)
    return parser


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr)


def _describe_oserror(e: OSError) -> str:
    if e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    return str(e.strerror or e)


def main(argv=None) -> int:
    """Run ``rnnlm`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        from .corpus import CorpusWarning
        from .datasets import DataWarning

        warnings.simplefilter("always", CorpusWarning)
        warnings.simplefilter("always", DataWarning)
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            handler = getattr(args, "_handler", None)
            if handler is None:
                raise UsageError(f"choose a command: {', '.join(COMMANDS)} (see `{PROG} --help`)")
            rc = handler(args)
            return 0 if rc is None else int(rc)
        except RnnlmError as e:
            print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            return 1
        except OSError as e:
            print(f"{PROG}: error: {_one_line(_describe_oserror(e))}", file=sys.stderr)
            return 2
        except MemoryError:
            print(f"{PROG}: error: out of memory (try a smaller --batch-size, --hidden, --vocab-size "
                  "or --max-length)", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except SystemExit as e:  # --help, --version
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
