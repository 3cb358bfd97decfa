"""Fixtures of the bench tests.

Tiny shapes only and no assertions on speed: what is checked is what a wrong benchmark would get
wrong (a timer that does not wait for asynchronous results, a wrong FLOP count, ratios computed
the wrong way round, a faster graph variant that computes a different step, a broken candidate
that passes as skipped).
"""

import pytest


@pytest.fixture
def bench_cli():
    from rnnlm.cli.app import main

    return main
