"""argparse value types shared by the CLI modules: numbers with a lower bound.

A bad value becomes argparse's usage error, which :func:`rnnlm.cli.main` prints as one line
with exit code 2.
"""

from __future__ import annotations

import argparse
import math


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
