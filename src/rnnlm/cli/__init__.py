"""The ``rnnlm`` command line: :mod:`rnnlm.cli.app` (parser and entry point), :mod:`rnnlm.cli.common`
(what commands share) and one module per command. It parses and prints; the library does the work."""

from rnnlm.cli.app import main

__all__ = ["main"]
