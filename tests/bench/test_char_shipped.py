"""bench train --preset char and the shipped part of bench sgd-step (issue 15), on tiny shapes."""

import json

import numpy as np
import pytest

from rnnlm import bench
from rnnlm.bench.shipped import torch_sgd_step, tutorial_numpy_sgd_step
from rnnlm.models.reference import RNNNumpy, init_tutorial_params


def test_char_preset_runs_and_compares_with_torch(bench_cli, capsys):
    pytest.importorskip("torch")
    args = ["bench", "train", "--preset", "char", "--json", "--cells", "gru", "--layers", "1",
            "--hidden", "8", "--batch-size", "2", "--steps", "3", "--linkers", "c", "--repeat", "1"]
    assert bench_cli(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["preset"] == "char" and r["settings"]["vocab_size"] == 65 and r["settings"]["clip"] == 5.0
    assert r["settings"]["hidden_dim"] == 8 and r["settings"]["optimizer"] == "adam"
    res = r["configs"]["gru x1"]
    assert set(res) >= {"rnnlm_c", "torch", "gflop_per_step"}
    ratio = res["rnnlm_c"]["steps_per_s"] / res["torch"]["steps_per_s"]
    assert res["rnnlm_c"]["vs_torch"] == pytest.approx(ratio)
    assert bench_cli([a for a in args if a != "--json"]) == 0
    assert "--preset char" in capsys.readouterr().out


def test_char_preset_times_bf16_against_torch_autocast(bench_cli, capsys):
    pytest.importorskip("torch")
    from rnnlm import engine, engine_ops

    if engine.default_linker() != "jax" or not engine_ops.available():
        pytest.skip("bf16 runs on PyTensor's JAX linker")
    args = ["bench", "train", "--preset", "char", "--json", "--cells", "gru", "--layers", "1",
            "--hidden", "8", "--batch-size", "2", "--steps", "3", "--linkers", "jax,c", "--repeat", "1",
            "--precision", "both"]
    assert bench_cli(args) == 0
    r = json.loads(capsys.readouterr().out)
    res = r["configs"]["gru x1"]
    assert set(res) >= {"rnnlm_jax", "rnnlm_c", "rnnlm_jax_bf16", "torch", "torch_bf16"}
    assert "bf16" in res["rnnlm_jax_bf16"]["what"] and "autocast" in res["torch_bf16"]["what"]
    bf = res["rnnlm_jax_bf16"]
    assert bf["vs_torch"] == pytest.approx(bf["steps_per_s"] / res["torch_bf16"]["steps_per_s"])
    assert bf["vs_fp32"] == pytest.approx(bf["steps_per_s"] / res["rnnlm_jax"]["steps_per_s"])
    assert r["skipped"]["rnnlm_c_bf16"] == "bf16 runs on the jax linker only"
    assert r["targets"] == {"vs_torch": 1.0, "bf16 vs_torch_fp32": 1.5}


def test_char_flops_of_the_2_layer_lstm_are_21_gflop():
    assert bench.char_flops("lstm", 65, 64, 256, 2, 64 * 64) / 1e9 == pytest.approx(21.0, rel=0.05)


def test_shipped_peers_compute_the_tutorial_step():
    """The literal NumPy code equals the reference's tutorial truncation; PyTorch's full BPTT equals
    the reference with k = -1."""
    pytest.importorskip("torch")
    C, H, T = 15, 4, 7
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, C, T), rng.integers(0, C, T)
    p = init_tutorial_params(C, H, seed=1)
    lit = tutorial_numpy_sgd_step(p, x, y, 1.0, 3)
    ref = RNNNumpy(C, H, 3, params=p)
    want = [v.copy() for v in (ref.U, ref.V, ref.W)]
    ref.sgd_step(x, y, 1.0, truncation="tutorial")
    lit()
    for got, new, old in zip(lit.params(), (ref.U, ref.V, ref.W), want, strict=True):
        np.testing.assert_allclose(got, new, atol=1e-10)
        assert not np.allclose(got, old)
    full = RNNNumpy(C, H, -1, params=p).bptt(x, y, bptt_truncate=-1)
    step = torch_sgd_step(p, x, y, 1.0)
    loss = step()
    want_loss = RNNNumpy(C, H, -1, params=p).calculate_total_loss([x], [y])
    assert float(loss.detach()) == pytest.approx(want_loss, rel=1e-5)
    assert full[0].shape == (H, C)


def test_bench_sgd_step_has_a_shipped_part(bench_cli, capsys):
    assert bench_cli(["bench", "sgd-step", "--json", "--vocab-size", "20", "--hidden", "5", "--length", "6",
                      "--repeat", "1", "--linkers", "c", "--no-hand-jax"]) == 0
    r = json.loads(capsys.readouterr().out)
    sh = r["shipped"]
    assert {"shipped", "numpy", "tutorial_numpy"} <= set(sh["candidates"])
    assert sh["targets"] == {"vs_numpy": 8.0, "vs_torch": 1.0}
    assert sh["vs_numpy"] == pytest.approx(sh["candidates"]["numpy"]["median_ms"]
                                           / sh["candidates"]["shipped"]["median_ms"])
    assert "full BPTT" in sh["note"]
