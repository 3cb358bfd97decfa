"""What every analysis shares: BLAS on one thread, sentence selection, JSON conversion."""

from __future__ import annotations

import functools
import math

import numpy as np
from threadpoolctl import threadpool_limits

from rnnlm.errors import ConfigError

__all__ = ["check_ids", "one_blas_thread", "select_sentences", "to_jsonable"]


def one_blas_thread(fn):
    """Run ``fn`` with BLAS on one thread: its matrices are at most a few hundred wide, where
    threads cost more than they give (on a busy 2-core machine a batched 100×100 SVD ran 40×
    slower with two OpenBLAS threads than with one)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def select_sentences(sentences, n=None, min_len=2, max_len=None, seed=0):
    """Training pairs ``(x, y)`` (the tutorial's x = s[:-1], y = s[1:]) from encoded sentences.

    Keeps sentences whose x has at least ``min_len`` tokens, cuts x and y to ``max_len`` tokens,
    and draws ``n`` of them without replacement (``None``: all), returned in corpus order.
    """
    pairs = [(np.asarray(s[:-1]), np.asarray(s[1:])) for s in sentences if len(s) - 1 >= max(1, min_len)]
    if not pairs:
        raise ConfigError(f"no sentence has at least {min_len} tokens")
    if n is not None and n < len(pairs):
        keep = np.sort(np.random.default_rng(seed).choice(len(pairs), size=int(n), replace=False))
        pairs = [pairs[i] for i in keep]
    if max_len is not None:
        pairs = [(x[:max_len], y[:max_len]) for x, y in pairs]
    return pairs


def check_ids(ref, pairs):
    """Refuse (x, y) pairs with a word id outside the vocabulary of ``ref`` (a reference model)."""
    C = ref.word_dim
    for x, y in pairs:
        if len(x) and (max(x.max(), y.max()) >= C or min(x.min(), y.min()) < 0):
            raise ConfigError(f"sentences hold word ids outside the model's vocabulary of {C}")


def to_jsonable(obj):
    """numpy arrays and scalars -> lists and Python numbers; NaN/inf -> None; dict keys -> str."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
