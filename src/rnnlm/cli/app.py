"""The ``rnnlm`` command line (``rnnlm = rnnlm.cli:main``; ``python -m rnnlm`` too).

Every command is one module of this package with ``add_parser(subparsers)`` (it creates its parser,
and sets ``run`` on it -- and on each of its subcommands -- with ``set_defaults(run=...)``). Adding a
command: write the module and list it in :data:`COMMANDS`. Modules import heavy things (the graph
engine, models) inside their handlers, so ``rnnlm --help`` and the data commands stay fast.

Errors: every :class:`~rnnlm.errors.RnnlmError`, an ``OSError`` on a user's file and an argparse usage
error print one line ``rnnlm: error: ...`` on stderr and exit with code 2, never a traceback.
KeyboardInterrupt exits with 130. Warnings print once each as ``rnnlm: warning: ...``.
"""

from __future__ import annotations

import sys
import warnings

from rnnlm import __version__
from rnnlm.cli import (
    analyze,
    bench,
    data,
    demo,
    experiment,
    fill,
    generate,
    ngram,
    perplexity,
    score,
    serve,
    train,
)
from rnnlm.cli.common import PROG, ArgumentParser
from rnnlm.errors import RnnlmError, UsageError

#: name -> command module, in the order ``rnnlm --help`` lists them.
COMMANDS = {
    "data": data,
    "train": train,
    "demo": demo,
    "generate": generate,
    "score": score,
    "perplexity": perplexity,
    "fill": fill,
    "ngram": ngram,
    "serve": serve,
    "analyze": analyze,
    "experiment": experiment,
    "bench": bench,
}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="RNN language models in the Theano style (the WildML RNN tutorial as a library).",
        epilog="Data files are looked up in $RNNLM_DATA first, then in data/.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def _one_line(message) -> str:
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
        from rnnlm.data import CorpusWarning
        from rnnlm.data.datasets import DataWarning

        # "default": each distinct warning once per command, however often the library raises it.
        warnings.simplefilter("default", CorpusWarning)
        warnings.simplefilter("default", DataWarning)
        try:
            args = build_parser().parse_args(argv)
            run = getattr(args, "run", None)
            if run is None:
                raise UsageError(f"choose a command: {', '.join(COMMANDS)} (see `{PROG} --help`)")
            rc = run(args)
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
            print(
                f"{PROG}: error: out of memory (try a smaller --batch-size, --hidden, --vocab-size "
                "or --max-length)",
                file=sys.stderr,
            )
            return 2
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except SystemExit as e:  # --help, --version
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
