"""rnnlm.engine_ops.rows: ``take_rows`` (the embeddings' gather) and its gradient ``AddRows``, whose
``perform`` adds rows as a sparse product instead of NumPy's ``add.at``.

Checked against ``np.add.at`` with repeated and unused indices on every linker, its gradient's own
gradient, a bad index, and that a model's training graph holds the op and no ``inc_subtensor``."""

import numpy as np
import pytest

from rnnlm import engine, engine_ops
from rnnlm.models.lm import LanguageModel, ModelConfig

T = engine.T
LINKERS = ["c", "py"] + (["jax"] if engine.default_linker() == "jax" else [])
V, D = 7, 3
IDX = np.array([4, 0, 4, 6, 4, 1, 0], "int32")  # repeats; rows 2, 3 and 5 unused


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((V, D)).astype("float32"), rng.standard_normal((len(IDX), D)).astype("float32")


@pytest.mark.core
@pytest.mark.parametrize("linker", LINKERS)
def test_rows_and_their_gradient_equal_indexing_and_add_at(linker):
    M, G = _data()
    m, idx = T.matrix("M"), T.ivector("idx")
    rows = engine_ops.take_rows(m, idx)
    (dM,) = engine.grad(T.sum(rows * G), [m])
    fn = engine.function([m, idx], [rows, dM], mode=engine.mode_for(linker))
    got_rows, got_dM = (np.asarray(v) for v in fn(M, IDX))
    want = np.zeros_like(M)
    np.add.at(want, IDX, G)
    np.testing.assert_array_equal(got_rows, M[IDX])
    np.testing.assert_allclose(got_dM, want, rtol=1e-6, atol=1e-6)
    assert np.all(got_dM[[2, 3, 5]] == 0) and np.abs(got_dM[4] - G[[0, 2, 4]].sum(0)).max() < 1e-5


@pytest.mark.parametrize("linker", LINKERS)
def test_the_gradients_gradient_takes_the_rows_back(linker):
    """d/dG of Σ(AddRows(M, idx, G) · K) is K[idx]: the sum of rows adds what each row read."""
    M, G = _data(1)
    K = np.random.default_rng(2).standard_normal((V, D)).astype("float32")
    m, idx, g = T.matrix("M"), T.ivector("idx"), T.matrix("g")
    (dG,) = engine.grad(T.sum(engine_ops.AddRows()(m, idx, g) * K), [g])
    fn = engine.function([m, idx, g], dG, mode=engine.mode_for(linker))
    np.testing.assert_allclose(fn(M, IDX, G), K[IDX], rtol=1e-6)


def test_an_index_outside_the_matrix_is_an_error():
    m, idx = T.matrix("M"), T.ivector("idx")
    fn = engine.function([m, idx], engine_ops.take_rows(m, idx), mode=engine.mode_for("c"))
    with pytest.raises(IndexError):
        fn(np.zeros((V, D), "float32"), np.array([V], "int32"))


@pytest.mark.core
@pytest.mark.parametrize("embedding_dim", [4, 0])
def test_a_models_training_graph_gathers_with_take_rows(embedding_dim):
    """The embedding (or, without one, U's columns) is read by TakeRows and its gradient made by AddRows:
    no indexed increment (NumPy's add.at on the C linker) is left in the gradient graph (``scan``'s own
    slice increments on Aesara are another op)."""
    cfg = ModelConfig(vocab_size=11, hidden_dim=4, cell="gru", embedding_dim=embedding_dim)
    model = LanguageModel(cfg, seed=0, linker="c")
    kinds = {type(node.op).__name__ for node in model.graph("grads", (5, 2)).maker.fgraph.toposort()}
    assert {"TakeRows", "AddRows"} <= kinds
    assert not any(k.startswith("AdvancedIncSubtensor") for k in kinds), kinds
