"""rnnlm.analysis.models: any model as a float64 reference model; rescaling W."""

import numpy as np
import pytest

from rnnlm import analysis as A
from rnnlm.errors import ConfigError
from rnnlm.models.reference import RNNNumpy
from tests.analysis.helpers import sentence


def test_reference_model_accepts_the_tutorial_and_language_models():
    rng = np.random.default_rng(3)
    C, H = 9, 4
    tut = RNNNumpy(C, H, seed=2)
    ref = A.reference_model(tut)
    x, _ = sentence(rng, C, 7)
    np.testing.assert_allclose(ref.forward(x)[0], tut.forward_propagation(x)[0], rtol=1e-12)

    from rnnlm.models.lm import LanguageModel, ModelConfig

    cfg = ModelConfig(vocab_size=C, hidden_dim=H, cell="lstm", embedding_dim=3, tie_embeddings=True,
                      layers=2)
    lm = LanguageModel(cfg, seed=1)
    ref = A.reference_model(lm)
    p = {k: v.astype(np.float64) for k, v in lm.get_params().items()}
    _, cache = ref.forward(x)
    top = cache["layers"][-1]["s"][:-1]
    np.testing.assert_allclose(cache["logits"], top @ p["P"].T @ p["E"] + p["c"], rtol=1e-10)
    assert ref.cell == "lstm" and ref.layers == 2
    with pytest.raises(ConfigError, match="bidirectional"):
        A.reference_model(LanguageModel(ModelConfig(vocab_size=C, hidden_dim=H, bidirectional=True), seed=1))
    with pytest.raises(ConfigError, match="exactly one"):
        A.scale_recurrent(p, scale=2.0, spectral_radius=1.0)
