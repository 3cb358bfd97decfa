"""The benchmarks' machinery: synchronised timing, FLOP accounting, result schemas, the CLI.

Tiny shapes only and no assertions on speed: what is checked is what a wrong benchmark would get
wrong (a timer that does not wait for asynchronous results, a wrong FLOP count, ratios computed
the wrong way round, a faster graph variant that computes a different step).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from rnnlm import engine
from rnnlm.bench import speed as bench
from rnnlm.errors import ConfigError

needs_jax = pytest.mark.skipif(engine.default_linker() != "jax", reason="needs PyTensor with JAX")


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------
class FakeAsync:
    """A result that is not ready until someone waits for it (like a JAX array)."""

    delay = 0.03

    def __init__(self):
        self.ready = False

    def block_until_ready(self):
        time.sleep(self.delay)
        self.ready = True
        return self


def test_timer_waits_for_asynchronous_results():
    made = []

    def call():
        r = FakeAsync()
        made.append(r)
        return [1.0, {"nested": (r,)}]  # the array hides inside containers

    t = bench.time_calls(call, repeat=3, warmup=1)
    assert t["runs"] == 3
    assert all(r.ready for r in made) and len(made) == 4
    assert t["min_ms"] >= 1e3 * FakeAsync.delay  # the wait is inside the timed region


def test_a_timer_without_sync_would_be_caught():
    # the same fake with the sync switched off measures the dispatch only: far below the delay
    t = bench.time_calls(FakeAsync, repeat=3, warmup=0, sync=lambda r: r)
    assert t["median_ms"] < 1e3 * FakeAsync.delay / 2


def test_time_loop_blocks_on_the_last_result():
    made = []

    def call():
        made.append(FakeAsync())
        return made[-1]

    t = bench.time_loop(call, steps=4, loops=2)
    assert t["runs"] == 2
    # only the last call of each loop (and the warm-up) is waited for, and its wait is timed
    assert [r.ready for r in made] == [True, False, False, False, True, False, False, False, True]
    assert t["min_ms"] >= 1e3 * FakeAsync.delay / 4


def test_compare_times_every_candidate_with_sync_in_rotating_blocks():
    order = []

    def make(name):
        def fn():
            order.append(name)
            return FakeAsync()
        return fn

    res = bench.compare({"a": make("a"), "b": make("b")}, repeat=4, rounds=2)
    assert {k: v["runs"] for k, v in res.items()} == {"a": 4, "b": 4}
    assert all(v["min_ms"] >= 1e3 * FakeAsync.delay for v in res.values())
    # two rounds, each a block of one untimed + two timed calls per candidate
    assert "".join(order) == "aaabbbaaabbb"


def test_summarize():
    s = bench.summarize([0.003, 0.001, 0.002])
    assert s == {"median_ms": pytest.approx(2.0), "min_ms": pytest.approx(1.0),
                 "mean_ms": pytest.approx(2.0), "runs": 3}
    with pytest.raises(ValueError):
        bench.summarize([])


# --------------------------------------------------------------------------------------------
# FLOP accounting and the roofline
# --------------------------------------------------------------------------------------------
def test_output_gemm_flops_counts_the_three_products():
    N, H, C = 6, 3, 5
    # logits (N,H)x(H,C), dS (N,C)x(C,H), dV (C,N)x(N,H): each N·H·C multiply-adds
    products = [(N, H, C), (N, C, H), (C, N, H)]
    assert bench.output_gemm_flops(N, H, C) == sum(2 * m * k * n for m, k, n in products) == 540
    # the shape: 3 × 2 × 2048 × 128 × 8000
    assert bench.output_gemm_flops(64 * 32, 128, 8000) == 12_582_912_000


def test_gemm_roofline_result():
    r = bench.gemm_roofline(16, 4, 30, repeat=2)
    assert r["flops"] == bench.output_gemm_flops(16, 4, 30)
    assert set(r["each_ms"]) == {"logits = S V^T", "dS = dlogits V", "dV = dlogits^T S"}
    assert r["median_ms"] > 0 and r["min_ms"] <= r["median_ms"]
    assert r["gflop_s"] == pytest.approx(r["flops"] / (r["median_ms"] / 1e3) / 1e9)


def test_words_per_second():
    assert bench.words_per_second(64, 32, 500.0) == pytest.approx(4096.0)


def test_process_age_counts_from_process_start():
    a = bench.process_age()
    time.sleep(0.05)
    assert a is not None and a > 0 and bench.process_age() >= a + 0.04


def test_machine_info_names_the_blas_kernel_and_engine():
    m = bench.machine_info()
    assert m["engine"] == engine.name and m["cpus"] >= 1
    assert m["blas"] and {"library", "kernel", "threads"} <= set(m["blas"][0])
    assert bench.busy_warning({"load_average": [9.0], "cpus": 2})
    assert bench.busy_warning({"load_average": [0.1], "cpus": 2}) is None


# --------------------------------------------------------------------------------------------
# the tutorial's SGD step: faster graph variants compute the same step
# --------------------------------------------------------------------------------------------
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
    for name, g in zip("UVW", want):
        np.testing.assert_allclose(p[name] - got[name], g, atol=2e-5, rtol=1e-4)
        assert got[name].dtype == np.float32
    if form == "split" and k > 0:
        hand = bench._hand_jax_tutorial_step(p, k, L)(x, y, np.float32(1.0))
        for name, g in zip("UVW", want):
            np.testing.assert_allclose(p[name] - np.asarray(hand[name]), g, atol=2e-5, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# training, generation, part 4
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_result():
    return bench.bench_train(cells=["rnn"], vocab_size=30, hidden_dim=6, batch_size=3, steps=4,
                             linkers=[engine.default_linker()], repeat=2)


def test_bench_train_result(train_result):
    r = train_result
    B, L = 3, 4
    res = r["cells"]["rnn"]
    name = f"rnnlm_{engine.default_linker()}"
    assert name in res
    roof = r["roofline"]
    assert roof["flops"] == bench.output_gemm_flops(B * L, 6, 30)
    for v in res.values():
        assert v["median_ms"] > 0 and v["cold_start_s"] > 0 and v["loop_ms"] > 0
        assert v["words_per_s"] == pytest.approx(B * L / (v["median_ms"] / 1e3))
    assert res[name]["vs_roofline"] == pytest.approx(roof["median_ms"] / res[name]["median_ms"])
    assert res[name]["param_dtypes"] == ["float32"]
    if "torch" in res:
        assert res[name]["vs_torch"] == pytest.approx(res["torch"]["median_ms"] / res[name]["median_ms"])
        assert res[name]["vs_torch_loop"] == pytest.approx(res["torch"]["loop_ms"] / res[name]["loop_ms"])
    else:
        assert "torch" in r["skipped"]
    assert r["settings"]["embedding_dim"] == 6 and r["settings"]["words_per_step"] == B * L
    assert r["targets"] == {"vs_torch": 2.0, "vs_roofline": 0.6}
    # from process start: at least the model's own cold start, and this test process is older than that
    assert r["process_to_first_step_s"] >= res[name]["cold_start_s"]
    assert r["machine"]["load_average"] == r["load_average_before"]


def test_bench_train_rejects_unknown_cells():
    with pytest.raises(ConfigError):
        bench.bench_train(cells=["transformer"])


def test_bench_generate_result():
    r = bench.bench_generate(vocab_size=25, hidden_dim=4, batch_sizes=(1, 3), tokens=12, window=4)
    for B in (1, 3):
        b = r["batches"][str(B)]
        assert b["tokens_per_s"] == pytest.approx(B * 12 / b["total_s"])
        assert b["last_over_first"] == pytest.approx(b["last_ms"] / b["first_ms"])
        assert 0 < b["step_ms"] <= b["ms_per_token"]  # the step is part of each token's time
    with pytest.raises(ConfigError):
        bench.bench_generate(vocab_size=25, hidden_dim=4, tokens=10, window=6)


def test_sample_rows_draws_from_the_distribution():
    rng = np.random.default_rng(0)
    logp = np.log(np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]) + 1e-30)
    draws = np.array([bench._sample_rows(rng, logp) for _ in range(400)])
    assert (draws[:, 0] == 1).all()
    assert set(draws[:, 1]) == {0, 2} and 0.35 < (draws[:, 1] == 0).mean() < 0.65


def test_bench_gru_part4_result():
    r = bench.bench_gru_part4(batch_sizes=(2,), length=4, repeat=2,
                              config={"vocab_size": 30, "hidden_dim": 6, "embedding_dim": 3})
    s = r["settings"]
    assert (s["cell"], s["layers"], s["gate"], s["optimizer"]) == ("gru", 2, "hard_sigmoid", "rmsprop")
    assert (s["decay"], s["eps"], s["learning_rate"]) == (0.9, 1e-6, 0.001)
    runs = list(r["runs"].values())
    assert [v["batch_size"] for v in runs] == [2]
    for v in runs:
        assert v["words_per_s"] == pytest.approx(v["batch_size"] * 4 / (v["median_ms"] / 1e3))


# --------------------------------------------------------------------------------------------
# the CLI
# --------------------------------------------------------------------------------------------
@pytest.fixture
def bench_cli():
    from rnnlm.cli.app import main

    return main


@needs_jax
def test_cli_sgd_step_json(bench_cli, capsys):
    rc = bench_cli(["bench", "sgd-step", "--json", "--vocab-size", "20", "--hidden", "5", "--length", "6",
                    "--bptt-truncate", "3", "--repeat", "2", "--linkers", "jax", "--no-hand-jax"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert {"benchmark", "settings", "candidates", "skipped", "best", "best_speedup", "target_speedup",
            "machine"} <= set(r)
    assert r["benchmark"] == "sgd-step" and r["settings"]["word_dim"] == 20
    c = r["candidates"]
    assert set(c) == {"numpy", "rnn_jax_static", "rnn_jax_split"}  # no C linker, no hand-written JAX
    for v in c.values():
        assert {"median_ms", "min_ms", "speedup", "compile_s", "dtype", "what"} <= set(v)
        assert v["median_ms"] > 0 and v["min_ms"] <= v["median_ms"]
        assert v["speedup"] == pytest.approx(c["numpy"]["median_ms"] / v["median_ms"])
    assert c["numpy"]["dtype"] == "float64" and c["rnn_jax_split"]["dtype"] == "float32"
    assert r["best_speedup"] == max(c["rnn_jax_static"]["speedup"], c["rnn_jax_split"]["speedup"])
    assert r["target_speedup"] == 15.0


def test_cli_generate_text(bench_cli, capsys):
    rc = bench_cli(["bench", "generate", "--vocab-size", "20", "--hidden", "4", "--batch-sizes", "2",
                    "--tokens", "6", "--window", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "tokens/s" in out and "last/first" in out and "BLAS" in out


@pytest.mark.parametrize("argv,fragment", [
    (["bench"], "choose one of"),
    (["bench", "train", "--cells", "rnn,transformer"], "transformer"),
    (["bench", "generate", "--batch-sizes", "0"], "positive"),
    (["bench", "sgd-step", "--repeat", "0"], "positive integer"),
])
def test_cli_errors_are_one_line(bench_cli, capsys, argv, fragment):
    assert bench_cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err


def test_cli_gpu_without_gpu_fails_cleanly(bench_cli, capsys):
    jax = bench._jax()
    if jax is not None:
        try:
            if jax.devices("gpu"):
                pytest.skip("a GPU is present")
        except RuntimeError:
            pass
    assert bench_cli(["bench", "train", "--device", "gpu", "--no-torch"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gpu" in err.lower()
