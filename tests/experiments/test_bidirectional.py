"""Issue 5's checks of the models the experiments train: the bidirectional fill model against a
float64 NumPy reference (loss, finite-difference gradients, masking) and dropout.

The reference for the bidirectional fill model is built from :class:`GatedRNNNumpy`'s own cells:
a forward stack over the sentence, a backward stack over the reversed sentence, and the word at t
predicted from [f_{t-1}; b_{t+1}].  Gradients are checked against central differences of that
float64 loss, so float32 rounding in the model cannot hide or fake an error.
"""

import re

import numpy as np
import pytest

from rnnlm import engine
from rnnlm.models.lm import LanguageModel, ModelConfig, init_params
from rnnlm.models.reference import GatedRNNNumpy, log_softmax
from rnnlm.training.optim import make_optimizer

LINKER = engine.default_linker()
C = 12  # vocabulary
L, B = 8, 3  # padded batch: every column has padding after its sentence
LENGTHS = (7, 5, 3)  # tokens per sentence, [START .. END] in the fill model's layout


# --------------------------------------------------------------------------------------------------
# the float64 reference
# --------------------------------------------------------------------------------------------------
def _net(cfg, p, direction):
    """A GatedRNNNumpy holding one direction's stack ('' or '_b') of the model's parameters."""
    pat = re.compile(r"^[UWb]\d+" + re.escape(direction) + "$")
    stack = {k[: len(k) - len(direction)]: v for k, v in p.items() if pat.match(k)}
    if "E" in p:
        stack["E"] = p["E"]
    H = cfg.hidden_dim
    stack.update(V=np.zeros((cfg.vocab_size, H)), c=np.zeros(cfg.vocab_size))  # unused: output is ours
    return GatedRNNNumpy(
        cfg.cell,
        cfg.vocab_size,
        H,
        embedding_dim=cfg.embedding_dim,
        layers=cfg.layers,
        gate=cfg.gate,
        activation=cfg.activation,
        params=stack,
    )


def _top_states(net, x, drops=None):
    """Top-layer states (T, H) of ``net`` over ids x (T,); ``drops[l]`` (T, H) multiplies layer l's
    output before layer l+1 reads it (the model's dropout between layers)."""
    p = net.params
    inp = p["E"][:, x].T if net.embedding_dim else None
    for layer in range(net.layers):
        U = p[f"U{layer}"]
        XU = U[:, :, x].transpose(2, 0, 1) if inp is None else np.einsum("ghd,td->tgh", U, inp)
        s = net._layer_forward(XU, p[f"W{layer}"], p[f"b{layer}"])["s"][:-1]
        if drops is not None and layer < net.layers - 1:
            s = s * drops[layer]
        inp = s
    return inp


def _logits(p, feats):
    return feats @ p["V"].T + (p["c"] if "c" in p else 0.0)


def fill_nll(cfg, p, sentence, drops=None):
    """Per-word NLL (n-2,) of the bidirectional fill model for one sentence (n,), float64.

    ``drops``: the model's dropout masks for this sentence, a list of ``layers`` arrays (n, 2H) in
    time order: [..., :H] for the forward stack, [..., H:] for the backward one; the last also
    multiplies the output features of word t (row t)."""
    H, s = cfg.hidden_dim, np.asarray(sentence)
    dl_f = dl_b = None
    if drops is not None:
        dl_f = [d[:, :H] for d in drops]
        dl_b = [d[::-1, H:] for d in drops]  # the backward stack reads the reversed sentence
    f = _top_states(_net(cfg, p, ""), s, dl_f)
    b = _top_states(_net(cfg, p, "_b"), s[::-1], dl_b)[::-1]  # b[t]: after reading w_n .. w_t
    feats = np.concatenate([f[:-2], b[2:]], axis=1)  # row t-1: [f_{t-1}; b_{t+1}] for word t
    if drops is not None:
        feats = feats * drops[-1][1:-1]
    lp = log_softmax(_logits(p, feats))
    return -lp[np.arange(len(s) - 2), s[1:-1]]


def lm_nll(cfg, p, x, y, drops=None):
    """Per-token NLL (T,) of the left-to-right model with dropout masks ``drops`` (list of (T, H))."""
    top = _top_states(_net(cfg, p, ""), np.asarray(x), drops)
    if drops is not None:
        top = top * drops[-1]
    return -log_softmax(_logits(p, top))[np.arange(len(y)), np.asarray(y)]


def _central_difference(loss, p, name, idx, h=1e-5):
    old = p[name][idx]
    p[name][idx] = old + h
    up = loss(p)
    p[name][idx] = old - h
    down = loss(p)
    p[name][idx] = old
    return (up - down) / (2 * h)


def check_gradients(got, p64, loss, rng, per_param=4):
    """``got`` (name -> float32 gradient of the summed loss) against central differences of the
    float64 ``loss(p64)`` on the largest and a few random coordinates of every parameter."""
    checked = 0
    for name, g in got.items():
        flat = np.abs(g).ravel()
        picks = set(np.argsort(-flat)[:2].tolist()) | set(rng.integers(0, flat.size, per_param - 2).tolist())
        for k in picks:
            idx = np.unravel_index(k, g.shape)
            num = _central_difference(loss, p64, name, idx)
            assert abs(g[idx] - num) <= 2e-5 + 2e-3 * abs(num), (name, idx, float(g[idx]), num)
            checked += 1
    assert checked >= 2 * len(got)


# --------------------------------------------------------------------------------------------------
# fixtures: one model (and one compiled function per kind) per configuration
# --------------------------------------------------------------------------------------------------
def _params(cfg, seed):
    """Initial parameters plus noise, so biases are nonzero and every path carries gradient."""
    rng = np.random.default_rng(seed)
    return {
        k: (v + rng.normal(0, 0.15, v.shape)).astype("float32") for k, v in init_params(cfg, seed).items()
    }


def _fill_batch(seed=0):
    """(x, mask) (L, B) of sentences [START, w.., END] with LENGTHS tokens; padding holds random ids
    (the mask, not the padding value, must keep it out)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, C, (L, B)).astype("int32")
    mask = np.zeros((L, B), "float32")
    for b, n in enumerate(LENGTHS):
        mask[:n, b] = 1
    return x, mask


BIDIR = {
    "gru-1layer-onehot-hard_sigmoid": dict(cell="gru", layers=1, gate="hard_sigmoid"),
    "gru-2layers-embedding": dict(cell="gru", layers=2, embedding_dim=4),
    "lstm-1layer-embedding": dict(cell="lstm", layers=1, embedding_dim=4),
    "lstm-2layers-dropout": dict(cell="lstm", layers=2, embedding_dim=4, dropout=0.3),
}


@pytest.fixture(scope="module")
def bidir_models():
    cache = {}

    def get(name):
        if name not in cache:
            cfg = ModelConfig(vocab_size=C, hidden_dim=5, bidirectional=True, **BIDIR[name])
            params = _params(cfg, seed=len(cache) + 3)
            cache[name] = (cfg, params, LanguageModel(cfg, params=params, linker=LINKER))
        return cache[name]

    return get


def _core(name):
    # Aesara compiles with its C linker (slow): one bidirectional configuration runs there.
    return pytest.param(name, marks=pytest.mark.core) if name.startswith("gru-1layer") else name


# --------------------------------------------------------------------------------------------------
# the reference itself
# --------------------------------------------------------------------------------------------------
def test_reference_stack_is_gated_rnn_numpy_forward():
    """_top_states (which adds dropout hooks) is GatedRNNNumpy.forward when no mask is given."""
    cfg = ModelConfig(vocab_size=C, hidden_dim=5, cell="lstm", layers=2, embedding_dim=4)
    p = {k: v.astype("float64") for k, v in _params(cfg, 0).items()}
    net = _net(cfg, p, "")
    x = np.array([0, 3, 5, 1, 7])
    want = net.forward(x)[1]["layers"][-1]["s"][:-1]
    np.testing.assert_allclose(_top_states(net, x), want, rtol=1e-12)
    ones = [np.ones((len(x), 5))] * 2
    np.testing.assert_allclose(_top_states(net, x, ones), want, rtol=1e-12)


def test_fill_reference_does_not_read_the_blank():
    """The reference's NLL of word t must not change when w_t itself changes (only the target does)."""
    cfg = ModelConfig(vocab_size=C, hidden_dim=5, cell="gru", layers=2, bidirectional=True)
    p = {k: v.astype("float64") for k, v in _params(cfg, 1).items()}
    s = np.array([0, 4, 6, 2, 9, 1])
    t = 3
    lp = []
    for w in (2, 8):
        s2 = s.copy()
        s2[t] = w
        lp.append(fill_nll(cfg, p, s2)[t - 1])
    # NLL of different targets from the same features: their difference is a logit difference.
    f = _top_states(_net(cfg, p, ""), s)[t - 1]
    bk = _top_states(_net(cfg, p, "_b"), s[::-1])[::-1][t + 1]
    logits = _logits(p, np.concatenate([f, bk])[None])[0]
    np.testing.assert_allclose(lp[0] - lp[1], logits[8] - logits[2], rtol=1e-10)


# --------------------------------------------------------------------------------------------------
# bidirectional model: reference equality, gradient check, masking
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [_core(n) for n in BIDIR])
def test_bidirectional_gradients_match_float64_finite_differences(bidir_models, name):
    """A padded batch's loss equals the reference run sentence by sentence, and its gradients equal
    central differences of that float64 loss (1 and 2 layers, gru and lstm)."""
    cfg, params, model = bidir_models(name)
    x, mask = _fill_batch()
    got = model.gradients(x, None, mask)
    p64 = {k: v.astype("float64") for k, v in params.items()}
    sentences = [x[:n, b] for b, n in enumerate(LENGTHS)]

    def loss(p):
        return sum(fill_nll(cfg, p, s).sum() for s in sentences)

    assert got["ntok"] == sum(n - 2 for n in LENGTHS)  # every word, not START/END nor padding
    np.testing.assert_allclose(got["loss_sum"], loss(p64), rtol=1e-5)
    check_gradients({k: got[k] for k in params}, p64, loss, np.random.default_rng(0))


def test_bidirectional_masking_columns_are_independent(bidir_models):
    """Stacked bidirectional layers: the padded batch equals the sum of its sentences run alone
    (each in its own column, the others masked out), and padding values do not matter."""
    cfg, params, model = bidir_models("lstm-2layers-dropout")
    x, mask = _fill_batch()
    full = model.gradients(x, None, mask)
    alone = []
    for b in range(B):
        m = np.zeros_like(mask)
        m[:, b] = mask[:, b]
        alone.append(model.gradients(x, None, m))
    x2 = np.where(mask > 0, x, (x + 5) % C).astype("int32")  # other padding ids
    other = model.gradients(x2, None, mask)
    np.testing.assert_allclose(sum(a["loss_sum"] for a in alone), full["loss_sum"], rtol=1e-5)
    np.testing.assert_allclose(other["loss_sum"], full["loss_sum"], rtol=1e-6)
    for k in params:
        np.testing.assert_allclose(sum(a[k] for a in alone), full[k], rtol=1e-4, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(other[k], full[k], rtol=1e-5, atol=1e-7, err_msg=k)


def test_bidirectional_evaluate_rows_are_words(bidir_models):
    """evaluate's nll row t-1 is word t's NLL (padded positions are 0)."""
    cfg, params, model = bidir_models("lstm-2layers-dropout")
    x, mask = _fill_batch()
    loss_sum, ntok, nll, _ = model.evaluate(x, None, mask)
    p64 = {k: v.astype("float64") for k, v in params.items()}
    assert nll.shape == (L - 2, B)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_allclose(nll[: n - 2, b], fill_nll(cfg, p64, x[:n, b]), rtol=1e-4, atol=1e-6)
        assert np.all(nll[n - 2 :, b] == 0)


# --------------------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------------------
def _sgd_gradient(model, x, y, mask, drops):
    """(loss_sum, gradient of the summed loss) from one train step of SGD with lr 1 (the train
    step is the only compiled path that takes dropout masks); parameters are restored after."""
    before = model.get_params()
    loss_sum, ntok, _, _ = model.train_step(x, y, mask, None, drops)
    after = model.get_params()
    model.set_params(before)
    ntok = float(ntok)  # the train step minimises the mean: undo the division
    return float(loss_sum), {k: (before[k].astype("float64") - after[k]) * ntok for k in before}


def _drops(batch, width, layers, keep, seed):
    """Locked dropout masks: one (B, width) mask per layer, the same at every step."""
    rng = np.random.default_rng(seed)
    return [((rng.random((batch, width)) < keep) / keep).astype("float32") for _ in range(layers)]


def _in_time(drops, b, n):
    """Sequence b's masks as the reference takes them: (n, width) per layer, one row per step."""
    return [np.repeat(d[b][None].astype("float64"), n, axis=0) for d in drops]


@pytest.fixture(scope="module")
def lm_dropout_model():
    cfg = ModelConfig(vocab_size=C, hidden_dim=5, cell="gru", layers=2, embedding_dim=4, dropout=0.4)
    params = _params(cfg, 11)
    model = LanguageModel(cfg, params=params, linker=LINKER)
    model.set_optimizer(make_optimizer("sgd", 1.0, clip=0.0))
    return cfg, params, model


def _lm_batch():
    rng = np.random.default_rng(4)
    x = rng.integers(0, C, (L, B)).astype("int32")
    y = rng.integers(0, C, (L, B)).astype("int32")
    mask = np.zeros((L, B), "float32")
    for b, n in enumerate(LENGTHS):
        mask[:n, b] = 1
    return x, y, mask


def test_lm_dropout_masks_of_ones_equal_no_dropout(lm_dropout_model):
    cfg, params, model = lm_dropout_model
    x, y, mask = _lm_batch()
    ones = [np.ones((B, cfg.hidden_dim), "float32")] * cfg.layers
    loss, grad = _sgd_gradient(model, x, y, mask, ones)
    no_dropout = model.evaluate(x, y, mask)[0]  # evaluate never drops
    np.testing.assert_allclose(loss, no_dropout, rtol=1e-6)
    ref = GatedRNNNumpy(
        cfg.cell,
        C,
        cfg.hidden_dim,
        embedding_dim=cfg.embedding_dim,
        layers=cfg.layers,
        params={k: v.astype("float64") for k, v in params.items()},
    )
    want = {k: np.zeros(v.shape) for k, v in params.items()}
    for b, n in enumerate(LENGTHS):
        for k, g in ref.bptt(x[:n, b], y[:n, b]).items():
            want[k] += g
    for k in params:
        np.testing.assert_allclose(grad[k], want[k], rtol=2e-3, atol=2e-5, err_msg=k)


def test_lm_dropout_gradient_matches_finite_differences(lm_dropout_model):
    cfg, params, model = lm_dropout_model
    x, y, mask = _lm_batch()
    drops = _drops(B, cfg.hidden_dim, cfg.layers, 0.6, seed=5)
    loss, grad = _sgd_gradient(model, x, y, mask, drops)
    p64 = {k: v.astype("float64") for k, v in params.items()}

    def ref_loss(p):
        return sum(
            lm_nll(cfg, p, x[:n, b], y[:n, b], _in_time(drops, b, n)).sum() for b, n in enumerate(LENGTHS)
        )

    np.testing.assert_allclose(loss, ref_loss(p64), rtol=1e-5)
    assert abs(loss - model.evaluate(x, y, mask)[0]) > 1e-3  # the masks did change the loss
    check_gradients(grad, p64, ref_loss, np.random.default_rng(1))


@pytest.fixture(scope="module")
def bidir_dropout(bidir_models):
    cfg, params, model = bidir_models("lstm-2layers-dropout")
    model.set_optimizer(make_optimizer("sgd", 1.0, clip=0.0))
    return cfg, params, model


def test_bidirectional_dropout_masks_of_ones_equal_no_dropout(bidir_dropout):
    cfg, params, model = bidir_dropout
    x, mask = _fill_batch()
    ones = [np.ones((B, 2 * cfg.hidden_dim), "float32")] * cfg.layers
    loss, grad = _sgd_gradient(model, x, x, mask, ones)
    plain = model.gradients(x, None, mask)  # the gradient graph never drops
    np.testing.assert_allclose(loss, plain["loss_sum"], rtol=1e-6)
    for k in params:
        np.testing.assert_allclose(grad[k], plain[k], rtol=1e-3, atol=2e-6, err_msg=k)


def test_bidirectional_dropout_gradient_matches_finite_differences(bidir_dropout):
    cfg, params, model = bidir_dropout
    x, mask = _fill_batch()
    drops = _drops(B, 2 * cfg.hidden_dim, cfg.layers, 0.7, seed=6)
    loss, grad = _sgd_gradient(model, x, x, mask, drops)
    p64 = {k: v.astype("float64") for k, v in params.items()}

    def ref_loss(p):
        return sum(fill_nll(cfg, p, x[:n, b], _in_time(drops, b, n)).sum() for b, n in enumerate(LENGTHS))

    np.testing.assert_allclose(loss, ref_loss(p64), rtol=1e-5)
    assert abs(loss - model.gradients(x, None, mask)["loss_sum"]) > 1e-3
    check_gradients(grad, p64, ref_loss, np.random.default_rng(2))
