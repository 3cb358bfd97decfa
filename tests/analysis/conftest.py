"""Fixtures of the analysis tests."""

import pytest


@pytest.fixture(scope="session")
def reddit_small(reddit_csv):
    from rnnlm.data import prepare

    return prepare(reddit_csv, vocab_size=300)
