"""Fixtures of the experiments tests."""

import pytest


@pytest.fixture()
def cli():
    from rnnlm.cli.app import main

    return main
