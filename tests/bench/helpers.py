"""Shared by the bench tests."""

import pytest

from rnnlm import engine

needs_jax = pytest.mark.skipif(engine.default_linker() != "jax", reason="needs PyTensor with JAX")


def fake_torch():
    """A stand-in for an installed PyTorch without CUDA (its candidates are stubbed too)."""
    import types

    return types.SimpleNamespace(__version__="0.0", cuda=types.SimpleNamespace(is_available=lambda: False))
