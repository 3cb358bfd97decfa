"""oneDNN's LSTM, GRU and tanh RNN layers (rnnlm.engine_ops.dnnl): LanguageModel's path for full batches on
the C linker and, through XLA FFI handlers, on the JAX linker (CPU).

The op's outputs and every gradient equal rnnlm's fused layer (itself tested against ``scan`` and the
float64 reference); a model's gradients and training steps equal the same model with the op switched off
(the fused layer on PyTensor, ``scan`` on Aesara: those two tests are core); ragged batches, other
activations and hard-sigmoid gates keep the fused layer; the kernel's thread runs every call, and
PyTorch's step when a benchmark asks."""

import numpy as np
import pytest

from rnnlm import engine, engine_ops
from rnnlm.engine_ops import dnnl
from rnnlm.models.lm import LanguageModel, ModelConfig
from rnnlm.training.optim import make_optimizer

_WHY = "" if engine_ops.dnnl_lstm("c") else (dnnl.why_not() or "RNNLM_FUSED_LAYERS=off")
pytestmark = pytest.mark.skipif(bool(_WHY), reason=f"oneDNN's LSTM is not available here: {_WHY}")

T = engine.T
JAX = ["jax"] if engine_ops.dnnl_lstm("jax") else []  # PyTensor with jaxlib's FFI headers, on a CPU
LINKERS = ["c", "py", *JAX]
L, B, D, H = 7, 3, 5, 4


CELLS = ["lstm", "gru", "rnn"]
# which kernels run: the rule (rnnlm's own GRU/LSTM layers where they win, native/rnn_own.cc, tested
# against the NumPy layer in test_rnn_own.py), or oneDNN's everywhere
KERNELS = pytest.mark.parametrize("kernels", ["rule", "onednn"])


def _choose(monkeypatch, kernels):
    if kernels == "onednn":
        monkeypatch.setenv("RNNLM_LAYERS", "onednn")


def _arrays(seed, cell="lstm"):
    G = engine_ops.GATES[cell]
    rng = np.random.default_rng(seed)
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype("float32")  # noqa: E731
    return dict(x=f(L, B, D), U=f(G, H, D), W=f(G, H, H), b=f(G, H), h0=f(B, H), c0=f(B, H),
                gS=f(L, B, H), gh=f(B, H), gc=f(B, H))


def _names(cell):
    return ["S", "hT", "cT", "dx", "dU", "dW", "db", "dh0", "dc0"] if cell == "lstm" else \
        ["S", "hT", "dx", "dU", "dW", "db", "dh0"]


def _layer_grads(linker, use_dnnl, a, precision="fp32", cell="lstm"):
    """S, hT (, cT) and the gradients of Σ(S·gS) + Σ(hT·gh) (+ Σ(cT·gc)) w.r.t. x, U, W, b, h0 (, c0)."""
    G, lstm = engine_ops.GATES[cell], cell == "lstm"
    names = ("x", "U", "W", "b", "h0", "c0") if lstm else ("x", "U", "W", "b", "h0")
    xs = {k: engine.tensor(k, "float32", a[k].shape) for k in names}
    x, U, W, b, *init = xs.values()
    if use_dnnl:
        S, *finals = dnnl.layer(cell, x, U, W, b, init, precision=precision)
    else:
        P = (T.dot(x.reshape((L * B, D)), U.reshape((G * H, D)).T) + b.flatten()).reshape((L, B, G * H))
        states = engine_ops.recurrent_layer(cell, P, T.ones((L, B)), init, W.reshape((G * H, H)).T,
                                            masked=False)
        finals = [s[-1] for s in states]
        S = states[0]
    cost = T.sum(S * a["gS"]) + T.sum(finals[0] * a["gh"]) + (T.sum(finals[1] * a["gc"]) if lstm else 0)
    grads = engine.grad(cost, list(xs.values()))
    fn = engine.function(list(xs.values()), [S, *finals, *grads], mode=engine.mode_for(linker))
    return fn(*(a[k] for k in xs))


@KERNELS
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("linker", LINKERS)
def test_outputs_and_gradients_equal_the_fused_layer(monkeypatch, linker, cell, kernels):
    if not engine_ops.available():
        pytest.skip("rnnlm's fused layer (the reference here) runs on PyTensor only")
    _choose(monkeypatch, kernels)
    a = _arrays(0, cell)
    got, want = _layer_grads(linker, True, a, cell=cell), _layer_grads(linker, False, a, cell=cell)
    for name, g, w in zip(_names(cell), got, want, strict=True):
        assert np.abs(w).max() > 1e-3, name  # every output and gradient is exercised
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-6, err_msg=name)


@KERNELS
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("linker", ["c", *JAX])
def test_bf16_rounds_the_kernels_inputs_and_stays_close(monkeypatch, linker, cell, kernels):
    """bf16: the kernel reads bfloat16 x, h and weights (so it differs from fp32), and every output and
    gradient stays within bfloat16's precision of the fp32 layer's."""
    if not engine_ops.available():
        pytest.skip("rnnlm's fused layer (the reference here) runs on PyTensor only")
    _choose(monkeypatch, kernels)
    a = _arrays(5, cell)
    low, full, fp32 = (_layer_grads(linker, True, a, "bf16", cell), _layer_grads(linker, False, a, cell=cell),
                       _layer_grads(linker, True, a, cell=cell))
    for name, g, w, f in zip(_names(cell), low, full, fp32, strict=True):
        scale = np.abs(w).max()
        assert np.abs(g - f).max() > 1e-4 * scale, name  # rounded: not the fp32 kernel's result
        np.testing.assert_allclose(g, w, atol=3e-2 * scale, err_msg=name)


@KERNELS
@pytest.mark.parametrize("cell", CELLS)
def test_backward_overwrites_its_gradient_buffers(monkeypatch, cell, kernels):
    """oneDNN adds weight gradients to what its buffers hold: a second call must not see the first's."""
    _choose(monkeypatch, kernels)
    a = _arrays(1, cell)
    first = _layer_grads("c", True, a, cell=cell)
    second = _layer_grads("c", True, a, cell=cell)
    for f, s in zip(first, second, strict=True):
        np.testing.assert_array_equal(f, s)


def _model(linker, **kw):
    cfg = ModelConfig(**{"vocab_size": 11, "hidden_dim": H, "cell": "lstm", "layers": 2, "embedding_dim": D,
                         **kw})
    return LanguageModel(cfg, seed=2, linker=linker)


def _batch(seed, ragged=False):
    rng = np.random.default_rng(seed)
    x, y = (rng.integers(0, 11, (L, B)).astype("int32") for _ in range(2))
    mask = np.ones((L, B), "float32")
    if ragged:  # a padded row, and a step skipped inside another (the blend carries its state)
        mask[4:, 1] = 0
        mask[2, 0] = 0
    return x, y, mask


def _grads_without_dnnl(model, monkeypatch, *args):
    monkeypatch.setenv("RNNLM_DNNL", "off")
    model._fns = {}
    try:
        return model.gradients(*args)
    finally:
        monkeypatch.delenv("RNNLM_DNNL")
        model._fns = {}


@pytest.mark.core
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("linker", ["c", *JAX])
@pytest.mark.parametrize("extra", [{}, {"bidirectional": True}, {"embedding_dim": 0}, {"cell": "gru"},
                                   {"cell": "gru", "bidirectional": True}, {"cell": "rnn"}])
def test_model_gradients_equal_the_fused_layer(extra, linker, ragged, monkeypatch):
    """Two layers, carried states; the fill model runs its backward stack right to left; without an
    embedding layer 0 keeps the fused layer (its input is a one-hot column gather) and layer 1 uses oneDNN;
    a GRU model runs oneDNN's GRU, an RNN model its tanh RNN.  A padded batch runs the GRU's and the LSTM's
    own layers with its mask (the RNN's keeps the fused layer)."""
    model = _model(linker, **extra)
    cell = extra.get("cell", "lstm")
    op = {"gru": "DnnlGRU", "rnn": "DnnlRNN", "lstm": "DnnlLSTM"}[cell]
    rng = np.random.default_rng(3)
    states = [rng.standard_normal(s.shape).astype("float32") * 0.5 for s in model.initial_state(B)]
    x, y, mask = _batch(4, ragged)
    got = model.gradients(x, y, mask, states)
    fn = model._compile("grads", (L, B), ragged=ragged)
    kinds = [type(n.op).__name__ for n in fn.maker.fgraph.toposort()]
    n_dnnl = (1 if extra.get("embedding_dim") == 0 else 2) * (2 if extra.get("bidirectional") else 1)
    if ragged and not dnnl.own_layer(cell):
        n_dnnl = 0
    assert kinds.count(op) == n_dnnl and kinds.count(op + "Grad") == n_dnnl
    want = _grads_without_dnnl(model, monkeypatch, x, y, mask, states)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-4, atol=2e-6, err_msg=k)


def _ops(model, ragged=False):
    fn = model._compile("grads", (L, B), ragged=ragged)
    return {type(n.op).__name__ for n in fn.maker.fgraph.toposort()}


@pytest.mark.parametrize("linker", ["c", *JAX])
def test_padded_batches_run_the_own_layers_and_other_cells_keep_the_fused_layer(linker, monkeypatch):
    """Padded batches: the GRU's and the LSTM's own layers take the mask; oneDNN's layers (the RNN's, or
    any with ``RNNLM_LAYERS=onednn``) have no mask, so those keep rnnlm's fused layer."""
    assert "DnnlLSTM" in _ops(_model(linker)) and "DnnlLSTM" in _ops(_model(linker), ragged=True)
    assert "DnnlLSTM" not in _ops(_model(linker, gate="hard_sigmoid"))
    gru = _model(linker, cell="gru", layers=1)
    assert "DnnlGRU" in _ops(gru) and "DnnlGRU" in _ops(gru, ragged=True)
    rnn = _model(linker, cell="rnn", layers=1)
    assert "DnnlRNN" in _ops(rnn) and "DnnlRNN" not in _ops(rnn, ragged=True)
    assert "DnnlRNN" not in _ops(_model(linker, cell="rnn", activation="relu"))
    monkeypatch.setenv("RNNLM_LAYERS", "onednn")
    assert "DnnlLSTM" in _ops(_model(linker)) and "DnnlLSTM" not in _ops(_model(linker), ragged=True)


@pytest.mark.core
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("linker", ["c", *JAX])
def test_training_steps_equal_the_fused_layer(linker, cell, monkeypatch):
    """Three Adam steps with clipping: the same losses and parameters with and without oneDNN."""
    results = []
    for switch in ("on", "off"):
        monkeypatch.setenv("RNNLM_DNNL", switch)
        model = _model(linker, cell=cell)
        model.set_optimizer(make_optimizer("adam", lr=0.01, clip=1.0))
        losses = [float(model.train_step(*_batch(s, ragged=s == 1))[0]) for s in range(3)]
        results.append((losses, model.get_params()))
    (l_on, p_on), (l_off, p_off) = results
    np.testing.assert_allclose(l_on, l_off, rtol=1e-5)
    for k in p_off:
        np.testing.assert_allclose(p_on[k], p_off[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_switch_and_reason(monkeypatch):
    assert dnnl.why_not() == "" and dnnl.available()
    monkeypatch.setenv("RNNLM_DNNL", "off")
    assert dnnl.why_not() == "RNNLM_DNNL=off" and not engine_ops.dnnl_lstm("c")


def test_one_thread_runs_every_call_and_ends_when_idle():
    """``on_worker`` runs on the kernel's own thread (one thread, so one OpenMP team), returns and raises
    what the function does, and the thread ends after a second without work (a new one starts later)."""
    import threading
    import time

    here = threading.get_native_id()
    first, second = (dnnl.on_worker(threading.get_native_id)() for _ in range(2))
    assert first == second != here
    assert dnnl.on_worker(lambda a, b=0: a + b)(2, b=3) == 5
    with pytest.raises(ZeroDivisionError):
        dnnl.on_worker(lambda: 1 / 0)()
    time.sleep(2.5)  # the thread waits 1 s for work; the rest is margin for a loaded machine
    assert dnnl.on_worker(threading.get_native_id)() not in (here, first)


@pytest.mark.skipif(not JAX, reason="bf16 models run on the JAX linker")
def test_bf16_model_trains_like_the_fused_bf16_layer(monkeypatch):
    """A bf16 model (JAX) runs oneDNN's bf16 kernel; three Adam steps give the losses of the same model
    on rnnlm's bf16 fused layer to bfloat16's precision."""
    results = []
    for switch in ("on", "off"):
        monkeypatch.setenv("RNNLM_DNNL", switch)
        model = LanguageModel(_model("jax").config, seed=2, linker="jax", precision="bf16")
        model.set_optimizer(make_optimizer("adam", lr=0.01, clip=1.0))
        losses = [float(model.train_step(*_batch(s, ragged=s == 1))[0]) for s in range(3)]
        ops = {(type(n.op).__name__, getattr(n.op, "precision", None))
               for n in model._compile("train", (L, B), ragged=False).maker.fgraph.toposort()}
        results.append((losses, ops))
    (l_on, ops_on), (l_off, ops_off) = results
    assert ("DnnlLSTM", "bf16") in ops_on and not any(name == "DnnlLSTM" for name, _ in ops_off)
    np.testing.assert_allclose(l_on, l_off, rtol=2e-2)


@pytest.mark.skipif(not JAX, reason="the XLA FFI handlers (PyTensor with jaxlib, on a CPU)")
def test_under_jax_at_either_precision_and_any_vocabulary():
    """Under XLA the layers run on oneDNN for every model, as the output layer does (on the library's
    thread: split, the two took turns): a vocabulary wider than the layers (H=4, D=5, V=200, whose
    softmax is the cost) as well as the default, at fp32 and bf16."""
    for vocab_size in (200, None):
        config = _model("jax", **({"vocab_size": vocab_size} if vocab_size else {})).config
        for precision in ("fp32", "bf16"):
            assert "DnnlLSTM" in _ops(LanguageModel(config, seed=2, linker="jax", precision=precision))
