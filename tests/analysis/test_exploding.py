"""rnnlm.analysis.exploding: gradient norms against the spectral radius of W, and clipping."""

import numpy as np
import pytest

from rnnlm import analysis as A
from rnnlm.analysis.exploding import _clip, _global_norm
from tests.analysis.helpers import sentence


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_exploding_norms_grow_with_radius_and_clipping_bounds_them(activation):
    rng = np.random.default_rng(7)
    C = 12
    ref = A.fresh_model("rnn", C, 8, activation=activation, seed=1)
    sentences = [sentence(rng, C, 14) for _ in range(4)]
    r = A.exploding_gradients(ref, sentences, radii=(0.5, 1.0, 2.0, 4.0), clip=2.0, learning_rate=0.01)
    medians = [row["norm"]["median"] for row in r["rows"]]
    assert np.all(np.diff(medians) > 0) and medians[-1] > 5 * medians[0]
    for row in r["rows"]:
        scaled = A.scale_recurrent(ref.params, spectral_radius=row["radius"])
        np.testing.assert_allclose(A.spectral_radius(scaled["W0"][0]), row["radius"])
        assert row["clipped_norm"]["max"] <= 2.0 + 1e-12
        assert row["clipped_norm"]["median"] == pytest.approx(min(row["norm"]["median"], 2.0))
        assert row["sgd"]["clip"]["largest_norm"] >= 0
    factors = [row["decay"]["factor"] for row in r["rows"]]
    assert factors[0] < 1 < factors[-1]
    if activation == "tanh":  # bounded states: clipped steps of at most lr·clip keep everything finite
        assert not any(row["sgd"]["clip"]["diverged"] for row in r["rows"])


def test_clip_matches_the_optimizers_rule():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    clipped, norm = _clip(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert _global_norm(clipped) == pytest.approx(1.0, rel=1e-6)
    same, _ = _clip(grads, 10.0)
    assert same is grads
