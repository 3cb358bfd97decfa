"""Graph models against the NumPy reference and against finite differences."""

import numpy as np
import pytest

from rnnlm import engine
from rnnlm.models.lm import LanguageModel, ModelConfig, init_params, param_shapes
from rnnlm.models.reference import GatedRNNNumpy, RNNNumpy
from rnnlm.models.tutorial import RNN

C, H = 30, 10
RNG = np.random.default_rng(1)
X = RNG.integers(0, C, 9).astype("int32")
Y = RNG.integers(0, C, 9).astype("int32")

# PyTensor: the JAX linker compiles in seconds; Aesara (and PyTensor without JAX) use C.
LINKER = engine.default_linker()


@pytest.fixture(scope="module")
def tutorial_pair():
    ref = RNNNumpy(C, H, bptt_truncate=-1, seed=3)
    graph = RNN(C, H, bptt_truncate=-1, seed=3)
    return ref, graph


@pytest.mark.core
def test_engine_is_the_one_asked_for():
    import os
    import sys

    wanted = os.environ.get("RNNLM_ENGINE") or "pytensor"
    assert engine.name == wanted
    assert wanted in sys.modules
    assert engine.config.floatX == "float32"


@pytest.mark.core
def test_tutorial_rnn_matches_reference(tutorial_pair):
    ref, graph = tutorial_pair
    o_ref, _ = ref.forward_propagation(X)
    np.testing.assert_allclose(graph.forward_propagation(X), o_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(graph.ce_error(X, Y), ref.calculate_total_loss([X], [Y]), rtol=1e-5)
    for g, r in zip(graph.bptt(X, Y), ref.bptt(X, Y), strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-5)


@pytest.mark.core
def test_tutorial_rnn_gradient_check_finite_differences():
    """Graph gradients (float32) against central differences of the graph's own loss."""
    graph = RNN(C, H, bptt_truncate=-1, seed=4, linker="c")
    grads = dict(zip("UVW", graph.bptt(X, Y), strict=True))
    p64 = {k: v.astype("float64") for k, v in graph.get_params().items()}
    ref = RNNNumpy(C, H, bptt_truncate=-1, params=p64)
    h = 1e-3
    rng = np.random.default_rng(0)
    for name in "UVW":
        P = getattr(ref, name)
        for _ in range(6):
            idx = tuple(rng.integers(0, s) for s in P.shape)
            if name == "U":  # U's gradient lives in the columns of the words seen
                idx = (idx[0], int(X[rng.integers(len(X))]))
            old = P[idx]
            P[idx] = old + h
            lp = ref.calculate_total_loss([X], [Y])
            P[idx] = old - h
            lm = ref.calculate_total_loss([X], [Y])
            P[idx] = old
            num = (lp - lm) / (2 * h)
            assert abs(grads[name][idx] - num) <= 2e-3 + 2e-2 * abs(num), (name, idx)


@pytest.mark.core
def test_fast_and_faithful_forms_agree():
    fast = RNN(C, H, bptt_truncate=-1, seed=5, fast=True)
    faithful = RNN(C, H, bptt_truncate=-1, seed=5, fast=False)
    np.testing.assert_allclose(fast.ce_error(X, Y), faithful.ce_error(X, Y), rtol=1e-5)
    for a, b in zip(fast.bptt(X, Y), faithful.bptt(X, Y), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_truncated_graph_follows_scan_definition():
    """scan(truncate_gradient=k) is Theano's truncation, not the blog's loop.  (``dv="exact"``: the fast
    graph whose dV sums over every step, as the reference's "scan" truncation; the default ``RNN`` gives
    the tutorial graph's dV instead, tests/models/test_tutorial_shipped.py.)"""
    k = 3
    graph = RNN(C, H, bptt_truncate=k, seed=6, dv="exact")
    ref = RNNNumpy(
        C, H, bptt_truncate=k, params={n: v.astype("float64") for n, v in graph.get_params().items()}
    )
    for g, r in zip(graph.bptt(X, Y), ref.bptt(X, Y, truncation="scan"), strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-5)
    tut = ref.bptt(X, Y, truncation="tutorial")
    assert not np.allclose(graph.bptt(X, Y)[0], tut[0], atol=1e-4)


def test_sgd_step_matches_reference(tutorial_pair):
    ref, graph = tutorial_pair
    ref = RNNNumpy(
        C, H, bptt_truncate=-1, params={k: v.astype("float64") for k, v in graph.get_params().items()}
    )
    graph.sgd_step(X, Y, np.float32(0.01))
    ref.sgd_step(X, Y, 0.01, truncation="tutorial")
    for k, v in graph.get_params().items():
        np.testing.assert_allclose(v, getattr(ref, k), rtol=1e-4, atol=1e-6)


def test_fresh_model_loss_is_ln_C():
    graph = RNN(400, 20, seed=0)
    rng = np.random.default_rng(0)
    X = [rng.integers(0, 400, 12).astype("int32") for _ in range(20)]
    Y = [rng.integers(0, 400, 12).astype("int32") for _ in range(20)]
    assert abs(graph.calculate_loss(X, Y) - np.log(400)) < 0.1


CONFIGS = [
    dict(cell="rnn"),
    dict(cell="rnn", activation="relu", layers=2),
    dict(cell="gru", embedding_dim=6, gate="hard_sigmoid"),
    dict(cell="gru", layers=2),
    dict(cell="lstm", embedding_dim=7, layers=2),
]


def _batch(L=6, B=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, C, (L, B)).astype("int32")
    y = rng.integers(0, C, (L, B)).astype("int32")
    lengths = [L, L - 2, 2][:B]
    mask = np.zeros((L, B), "float32")
    for b, n in enumerate(lengths):
        mask[:n, b] = 1
    return x, y, mask, lengths


@pytest.mark.core
@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_language_model_gradients_equal_reference(kw):
    """Padded, masked batch == the NumPy reference run sentence by sentence (loss and grads)."""
    cfg = ModelConfig(vocab_size=C, hidden_dim=H, output_bias=True, **kw)
    params = init_params(cfg, seed=7)
    rng = np.random.default_rng(2)
    # nonzero biases
    params = {k: (v + rng.normal(0, 0.1, v.shape)).astype("float32") for k, v in params.items()}
    model = LanguageModel(cfg, params=params, linker=LINKER)
    ref = GatedRNNNumpy(
        cfg.cell,
        C,
        H,
        embedding_dim=cfg.embedding_dim,
        layers=cfg.layers,
        gate=cfg.gate,
        activation=cfg.activation,
        params={k: v.astype("float64") for k, v in params.items()},
    )
    x, y, mask, lengths = _batch()
    got = model.gradients(x, y, mask)
    want = {k: np.zeros_like(v, dtype="float64") for k, v in params.items()}
    loss = 0.0
    for b, n in enumerate(lengths):
        loss += ref.loss(x[:n, b], y[:n, b])
        for k, g in ref.bptt(x[:n, b], y[:n, b]).items():
            want[k] += g
    assert got["ntok"] == sum(lengths)
    np.testing.assert_allclose(got["loss_sum"], loss, rtol=1e-5)
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-3, atol=2e-5, err_msg=k)


def test_dtypes_stay_float32_after_training():
    from rnnlm.training.optim import make_optimizer

    cfg = ModelConfig(vocab_size=C, hidden_dim=H, cell="gru", embedding_dim=5)
    model = LanguageModel(cfg, seed=0, linker=LINKER)
    model.set_optimizer(make_optimizer("adam", 0.01, clip=1.0))
    x, y, mask, _ = _batch()
    losses = []
    for _ in range(5):
        loss_sum, ntok, gnorm, states = model.train_step(x, y, mask)
        losses.append(float(loss_sum) / float(ntok))
    assert losses[-1] < losses[0]
    for k, v in model.get_params().items():
        assert v.dtype == np.float32, k
    for k, v in model.optimizer.get_state().items():
        assert np.asarray(v).dtype == np.float32, k
    assert all(np.asarray(s).dtype == np.float32 for s in states)


def test_param_shapes_cover_init():
    for kw in CONFIGS + [
        dict(cell="lstm", embedding_dim=H, tie_embeddings=True),
        dict(cell="gru", embedding_dim=4, tie_embeddings=True),
        dict(cell="gru", bidirectional=True, layers=2),
    ]:
        cfg = ModelConfig(vocab_size=C, hidden_dim=H, **kw)
        p = init_params(cfg, seed=0)
        assert {k: v.shape for k, v in p.items()} == param_shapes(cfg)


def test_distribution_agrees_with_evaluate():
    """The full distribution at each position, read at the target, is the scored probability."""
    for kw in (dict(cell="lstm", embedding_dim=5), dict(cell="gru", bidirectional=True)):
        model = LanguageModel(ModelConfig(vocab_size=C, hidden_dim=H, **kw), seed=3, linker=LINKER)
        x, y, mask, _ = _batch()
        logp = model.distribution(x, mask)
        np.testing.assert_allclose(np.exp(logp).sum(-1), 1.0, rtol=1e-4)
        _, _, nll, _ = model.evaluate(x, y, mask)
        target = x[1:-1] if model.config.bidirectional else y
        picked = np.take_along_axis(logp, target[..., None], axis=2)[..., 0]
        m = mask[2:] if model.config.bidirectional else mask
        np.testing.assert_allclose(-picked * m, nll, rtol=1e-4, atol=1e-5)


def test_truncated_scan_under_jax_is_refused_clearly():
    if engine.name != "pytensor":
        pytest.skip("the jax linker is PyTensor's")
    from rnnlm.errors import ConfigError

    with pytest.raises(ConfigError, match="linker c"):
        LanguageModel(ModelConfig(vocab_size=C, hidden_dim=H, bptt_truncate=3), seed=0, linker="jax")
    LanguageModel(ModelConfig(vocab_size=C, hidden_dim=H, bptt_truncate=3), seed=0, linker="c")


# -- locked (variational) dropout ------------------------------------------------------------------
@pytest.mark.core
def test_locked_dropout_is_one_mask_per_sequence_and_none_at_evaluation():
    """A (B, ·) mask multiplies the same units at every step, so for each sequence it folds into the
    weights that read those units: the embedding mask into U0's input columns, the between-layer mask
    into U1's, the output mask into V's. The dropped training loss of a batch must equal the sum of each
    sequence's loss under its folded weights without dropout -- a per-step mask would not."""
    from rnnlm.training.optim import make_optimizer

    D, L, B = 6, 7, 3
    cfg = ModelConfig(
        vocab_size=C, hidden_dim=H, cell="lstm", layers=2, embedding_dim=D, dropout=0.4, embed_dropout=0.3
    )
    plain = ModelConfig(**{**cfg.to_dict(), "dropout": 0.0, "embed_dropout": 0.0})
    params = init_params(cfg, seed=11)
    model = LanguageModel(cfg, params=params, linker=LINKER)
    model.set_optimizer(make_optimizer("sgd", 1e-9))
    rng = np.random.default_rng(5)
    x = rng.integers(0, C, (L, B)).astype("int32")
    y = rng.integers(0, C, (L, B)).astype("int32")
    mask = np.ones((L, B), "float32")
    shapes = model.dropout_shapes(B)
    assert shapes == [(B, H), (B, H), (B, D)]
    drops = [
        ((rng.random(s) > p) / (1 - p)).astype("float32")
        for s, p in zip(shapes, (0.4, 0.4, 0.3), strict=True)
    ]
    between, before_output, embedding = drops
    want = 0.0
    for b in range(B):
        folded = dict(params)
        folded["U0"] = params["U0"] * embedding[b][None, None, :]
        folded["U1"] = params["U1"] * between[b][None, None, :]
        folded["V"] = params["V"] * before_output[b][None, :]
        one = LanguageModel(plain, params=folded, linker=LINKER)
        want += one.evaluate(x[:, b : b + 1], y[:, b : b + 1], mask[:, b : b + 1])[0]
    got = float(model.train_step(x, y, mask, None, drops)[0])
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # at evaluation there is no dropout: the same numbers as the model without it
    np.testing.assert_allclose(
        LanguageModel(cfg, params=params, linker=LINKER).evaluate(x, y, mask)[0],
        LanguageModel(plain, params=params, linker=LINKER).evaluate(x, y, mask)[0],
        rtol=1e-6,
    )


def test_trainer_draws_locked_masks_from_seed_epoch_and_step(tmp_path):
    from rnnlm.data import Corpus
    from rnnlm.training.config import TrainConfig
    from rnnlm.training.trainer import Trainer

    corpus = Corpus.from_tokens([["a", "b", "c"], ["b", "c", "a", "a"]] * 4)
    cfg = ModelConfig(
        vocab_size=len(corpus.vocab),
        hidden_dim=H,
        cell="gru",
        layers=2,
        embedding_dim=4,
        dropout=0.5,
        embed_dropout=0.25,
    )
    tr = Trainer(LanguageModel(cfg, seed=0, linker=LINKER), corpus, None, TrainConfig(seed=3), progress=False)
    masks = tr._dropout(8, epoch=2, step=5)
    assert [m.shape for m in masks] == [(8, H), (8, H), (8, 4)]
    assert set(np.unique(masks[0])) == {0.0, 2.0} and set(np.unique(masks[2])) == {0.0, np.float32(1 / 0.75)}
    again = tr._dropout(8, epoch=2, step=5)
    assert all(np.array_equal(a, b) for a, b in zip(masks, again, strict=True))
    assert not np.array_equal(masks[0], tr._dropout(8, epoch=2, step=6)[0])
