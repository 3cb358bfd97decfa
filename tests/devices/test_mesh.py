"""Data parallelism on a mesh of 4 virtual CPU devices, against one device.

JAX fixes the device count when it starts, so these run in their own process with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (``test_devices.py`` starts it); in a session that
was not started that way they are skipped.

Tolerance: float32 round-off. On 4 devices XLA sums the partial gradients of each device's columns (the
all-reduce), in another order than one device does, so losses and parameters agree to rtol 1e-5, atol
1e-6 -- the tolerance the resume tests use.  A placed model runs rnnlm's fused layers; on one device padded
batches would run rnnlm's native GRU/LSTM layers (other sums, 1e-6 apart after five Adam steps), so these
tests keep oneDNN's layers there (``RNNLM_LAYERS=onednn``: padded batches on the fused layer, as placed):
they compare placements, and the layers are compared with the fused one in tests/models.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rnnlm import engine
from rnnlm.data import Corpus
from rnnlm.errors import ConfigError
from rnnlm.models.lm import LanguageModel, ModelConfig
from rnnlm.training.checkpoint import load_model, read_checkpoint
from rnnlm.training.config import TrainConfig
from rnnlm.training.optim import make_optimizer
from rnnlm.training.trainer import Trainer

pytestmark = [
    pytest.mark.skipif(engine.name != "pytensor", reason="multi-device training is a JAX-linker feature"),
    pytest.mark.skipif(
        os.environ.get("RNNLM_DEVICE_TESTS") != "4",
        reason="runs in its own process with 4 virtual devices (tests/devices/test_devices.py)",
    ),
]
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(autouse=True)
def _fused_padded_batches(monkeypatch):
    monkeypatch.setenv("RNNLM_LAYERS", "onednn")
WORDS = "the cat sat on a mat while dogs ran far away from home today".split()


def close(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=RTOL, atol=ATOL, err_msg=k)


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    sents = []
    for _ in range(80):
        start, n = rng.integers(0, len(WORDS)), rng.integers(2, 11)
        sents.append([WORDS[(start + i) % len(WORDS)] for i in range(n)])
    return Corpus.from_tokens(sents)


def test_sees_four_devices():
    import jax

    assert jax.device_count() == 4


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_steps_on_four_devices_equal_one_device(cell):
    """One step, then four more with dropout: same losses, gradient norms, parameters and optimizer state
    for the same global batch; parameters live replicated on the mesh, carried states come back sharded."""
    from rnnlm.devices import placement

    L, B = 6, 8
    cfg = ModelConfig(
        vocab_size=37, hidden_dim=16, cell=cell, embedding_dim=8, layers=2, dropout=0.3, embed_dropout=0.2
    )
    runs = []
    for devices in (None, 4):
        m = LanguageModel(cfg, seed=0, linker="jax")
        m.set_optimizer(make_optimizer("adam", 0.01, clip=5.0))
        m.place(placement(devices, B))
        out, states = [], None
        for step in range(5):
            r = np.random.default_rng([1, step])
            x, y = (r.integers(0, 37, (L, B)).astype(np.int32) for _ in range(2))
            mask = (r.random((L, B)) < 0.9).astype(np.float32)
            keep = 1.0 if step == 0 else 0.7  # the first step without dropout
            drops = [(r.random(s) < keep).astype(np.float32) / np.float32(keep) for s in m.dropout_shapes(B)]
            loss, ntok, gnorm, states = m.train_step(x, y, mask, states, drops)
            out.append([float(loss), float(ntok), float(gnorm)])
        runs.append(
            (np.array(out), m.get_params(), m.optimizer.get_state(), [np.asarray(s) for s in states], m)
        )
    (l1, p1, o1, s1, _), (l4, p4, o4, s4, m4) = runs
    np.testing.assert_allclose(l1, l4, rtol=RTOL, atol=ATOL)
    close(p1, p4)
    close(o1, o4)
    close(dict(enumerate(s1)), dict(enumerate(s4)))
    mesh = m4.placement.mesh
    value = engine.stored(m4.params["W0"])
    assert value.sharding.mesh == mesh and value.sharding.is_fully_replicated
    assert len(value.sharding.device_set) == 4
    assert not states[0].sharding.is_fully_replicated  # (layers, B, H) split along B: data parallel
    pl = m4.placement
    placed = [pl.from_local(a, 1) for a in (x, y, mask, *m4.initial_state(B))] + [
        pl.from_local(d, 0) for d in drops
    ]
    hlo = engine.jax_hlo(m4.graph("train", (L, B)), *placed)
    assert "all-reduce" in hlo  # XLA sums the devices' gradients
    assert f"f32[{L * B // 4},37]" in hlo and f"f32[{L * B},37]" not in hlo  # each device: its rows' logits


def _config(**kw):
    base = dict(optimizer="adam", lr=0.01, batch_size=8, max_length=8, epochs=1, schedule="plateau", seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _trainer(corpus, out, resume=None, model=None, **kw):
    splits = corpus.split(valid=0.1, test=0.0, seed=0)
    if model is None:
        cfg = ModelConfig(
            vocab_size=len(corpus.vocab), hidden_dim=16, cell="gru", embedding_dim=8, layers=2, dropout=0.3
        )
        model = LanguageModel(cfg, seed=0, linker="jax")
    tr = Trainer(
        model, splits["train"], splits["valid"], _config(**kw), out_dir=out, corpus=corpus, progress=False
    )
    if resume is not None:
        tr.resume(resume)
    return tr


@pytest.mark.parametrize("batching", ["sentences", "stream"])
def test_checkpoint_written_on_four_devices_resumes_on_one_and_back(corpus, tmp_path, batching):
    """Interrupted after 5 steps on 4 devices (or 1), resumed on 1 (or 4): the same parameters as the
    uninterrupted run on one device; the checkpoint holds whole arrays, the same whatever the devices."""
    kw = dict(batching=batching, bptt=5)
    full = _trainer(corpus, tmp_path / "full", **kw)
    full.fit()
    want = full.model.get_params()
    for first, second in ((4, None), (None, 4)):
        run = tmp_path / f"run-{first}-{second}"
        part = _trainer(corpus, run, devices=first, max_steps=5, **kw)
        assert part.fit()["stopped"] == "max_steps"
        ck = read_checkpoint(run / "checkpoint.npz")
        if batching == "stream":  # the carried state is gathered whole: (layers, B, H)
            assert [np.shape(s) for s in ck["states"]] == [(2, 8, 16)]
        model, _, _ = load_model(run / "checkpoint.npz", linker="jax")
        resumed = _trainer(corpus, run, resume=ck, model=model, devices=second, **kw)
        st = resumed.fit()
        assert st["global_step"] == full.state["global_step"]
        close(want, resumed.model.get_params())


def test_device_settings_that_cannot_work_are_refused(corpus, tmp_path):
    with pytest.raises(ConfigError, match="does not divide by --devices 3"):
        _trainer(corpus, None, devices=3)
    with pytest.raises(ConfigError, match="JAX sees only 4 cpu device"):
        _trainer(corpus, None, devices=8, batch_size=16)
    assert _trainer(corpus, None, devices="all").placement.count == 4
