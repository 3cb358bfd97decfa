"""Shared by the bench tests."""

import pytest

from rnnlm import engine

needs_jax = pytest.mark.skipif(engine.default_linker() != "jax", reason="needs PyTensor with JAX")


def fake_torch():
    """A stand-in for an installed PyTorch without CUDA (its candidates are stubbed too)."""
    import types

    return types.SimpleNamespace(__version__="0.0", cuda=types.SimpleNamespace(is_available=lambda: False))


def broken_torch_candidate(*args, **kwargs):
    """A PyTorch candidate whose building fails (in the child process the benchmark starts for it)."""
    raise RuntimeError("torch candidate broke\nsecond line of the message")


def pid_candidate():
    """A candidate whose build reports the process it was built in (as its first-step time)."""
    import os

    return (lambda: None), float(os.getpid())


def failing_candidate(good_steps):
    """A candidate whose steps after the first ``good_steps`` raise."""
    done = [0]

    def step():
        done[0] += 1
        if done[0] > good_steps:
            raise ValueError(f"step {done[0]} failed\nmore")

    return step, 0.0
