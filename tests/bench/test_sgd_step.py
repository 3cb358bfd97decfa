"""rnnlm.bench.sgd_step: the faster graph variants compute the same step as the reference."""

import numpy as np
import pytest

from rnnlm import bench
from rnnlm.bench.sgd_step import _hand_jax_tutorial_step
from tests.bench.helpers import needs_jax


@needs_jax
@pytest.mark.parametrize("form,k", [("static", 3), ("split", 3), ("split", -1)])
def test_tutorial_sgd_graph_matches_the_reference(form, k):
    from rnnlm.models.reference import RNNNumpy, init_tutorial_params
    from rnnlm.models.tutorial import RNN

    C, H, L = 20, 5, 8
    rng = np.random.default_rng(1)
    x = rng.integers(0, C, L).astype(np.int32)
    x[3] = x[6]  # a repeated word: its column of U must accumulate both steps
    y = rng.integers(0, C, L).astype(np.int32)
    p = {n: v.astype(np.float32) for n, v in init_tutorial_params(C, H, seed=2).items()}
    want = RNNNumpy(C, H, k, params=p).bptt(x, y, truncation="scan")
    rnn = RNN(C, H, k, params=p, linker="jax")
    fn = bench.tutorial_sgd_graph(rnn, L, form=form)
    fn(x, y, np.float32(1.0))  # lr 1: the update is the gradient
    got = rnn.get_params()
    for name, g in zip("UVW", want, strict=True):
        np.testing.assert_allclose(p[name] - got[name], g, atol=2e-5, rtol=1e-4)
        assert got[name].dtype == np.float32
    if form == "split" and k > 0:
        hand = _hand_jax_tutorial_step(p, k, L)(x, y, np.float32(1.0))
        for name, g in zip("UVW", want, strict=True):
            np.testing.assert_allclose(p[name] - np.asarray(hand[name]), g, atol=2e-5, rtol=1e-4)
