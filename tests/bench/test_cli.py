"""`rnnlm bench`: JSON and text output, the target verdict, skipped and failed candidates (exit code
1 after printing everything when one failed), one-line errors."""

import json

import pytest

from rnnlm import bench, engine
from rnnlm.bench.candidates import Candidates
from tests.bench.helpers import fake_torch, needs_jax


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
    assert r["meets_target"] == (r["best_speedup"] >= r["target_speedup"])
    assert r["failed"] == {}


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
    jax = bench.optional_module("jax")
    if jax is not None:
        try:
            if jax.devices("gpu"):
                pytest.skip("a GPU is present")
        except RuntimeError:
            pass
    assert bench_cli(["bench", "train", "--device", "gpu", "--no-torch"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gpu" in err.lower()


# --------------------------------------------------------------------------------------------
# the speedup target, with stubbed timings (nothing is compiled)
# --------------------------------------------------------------------------------------------
class FakeRNN:
    """Stands in for models.tutorial.RNN: builds nothing, steps instantly."""

    def __init__(self, *args, **kwargs):
        pass

    def sgd_step(self, x, y, lr):
        return None


@pytest.fixture
def stub_sgd_timings(monkeypatch):
    """`bench sgd-step --linkers c` with a fake compiled model and fixed median times (ms)."""
    import rnnlm.models.tutorial

    monkeypatch.setattr(rnnlm.models.tutorial, "RNN", FakeRNN)

    def use(ms):
        monkeypatch.setattr(Candidates, "compare",
                            lambda self, repeat, **kw: {n: bench.summarize([ms[n] / 1e3]) for n in self.fns})

    return use


ARGS = ["--vocab-size", "20", "--hidden", "4", "--length", "5", "--repeat", "1", "--linkers", "c",
        "--no-hand-jax"]


@pytest.mark.parametrize("numpy_ms,graph_ms,meets", [(30.0, 1.0, True), (30.0, 3.0, False)])
def test_sgd_step_says_whether_the_speedup_meets_the_target(bench_cli, capsys, stub_sgd_timings,
                                                            numpy_ms, graph_ms, meets):
    stub_sgd_timings({"numpy": numpy_ms, "rnn_c": graph_ms})  # speedup 30x or 10x; the target is 15x
    assert bench_cli(["bench", "sgd-step", "--json", *ARGS]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["best"] == "rnn_c" and r["best_speedup"] == pytest.approx(numpy_ms / graph_ms)
    assert r["target_speedup"] == bench.SGD_TARGET_SPEEDUP
    assert r["meets_target"] is meets
    assert bench_cli(["bench", "sgd-step", *ARGS]) == 0
    report = capsys.readouterr().out
    verdict = "met" if meets else "not met"
    assert f"{numpy_ms / graph_ms:.1f}x the NumPy reference (target 15x: {verdict})" in report


def test_sgd_step_without_the_reference_has_no_speedup(bench_cli, capsys, monkeypatch):
    """A reference that raises while it is timed is failed: no speedup, no verdict, exit 1."""
    import rnnlm.models.tutorial
    from rnnlm.models.reference import RNNNumpy

    monkeypatch.setattr(rnnlm.models.tutorial, "RNN", FakeRNN)

    def broken(self, *args, **kwargs):
        raise FloatingPointError("reference broke")

    monkeypatch.setattr(RNNNumpy, "sgd_step", broken)
    assert bench_cli(["bench", "sgd-step", "--json", *ARGS]) == 1
    out = capsys.readouterr()
    r = json.loads(out.out)
    assert set(r["candidates"]) == {"rnn_c"} and r["candidates"]["rnn_c"]["speedup"] is None
    assert r["best"] is None and r["best_speedup"] is None and r["meets_target"] is None
    assert r["failed"] == {"numpy": "FloatingPointError: reference broke"}
    assert "sgd-step numpy" in out.err


# --------------------------------------------------------------------------------------------
# skipped (an optional dependency is missing) against failed (the candidate raised)
# --------------------------------------------------------------------------------------------
TRAIN = ["bench", "train", "--cells", "rnn", "--vocab-size", "20", "--hidden", "4", "--batch-size", "2",
         "--steps", "3", "--repeat", "1", "--linkers", engine.default_linker(), "--no-roofline",
         "--no-hand-jax"]


def test_missing_torch_is_skipped_and_exits_0(bench_cli, capsys, monkeypatch):
    import rnnlm.bench.train

    real = rnnlm.bench.train.optional_module
    monkeypatch.setattr(rnnlm.bench.train, "optional_module",
                        lambda name: None if name == "torch" else real(name))
    assert bench_cli([*TRAIN, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert "PyTorch is not installed" in r["skipped"]["torch"]
    assert r["failed"] == {} and set(r["cells"]["rnn"]) == {f"rnnlm_{engine.default_linker()}"}


def test_a_failing_candidate_is_reported_and_exits_1(bench_cli, capsys, monkeypatch):
    """PyTorch "installed" (a stand-in) but its candidate raises: failed with the one-line error, in the
    JSON and in the report, after the other candidates ran; exit code 1."""
    import rnnlm.bench.train

    torch = fake_torch()
    real = rnnlm.bench.train.optional_module
    monkeypatch.setattr(rnnlm.bench.train, "optional_module",
                        lambda name: torch if name == "torch" else real(name))

    monkeypatch.setattr(rnnlm.bench.train, "TORCH_CANDIDATE", "tests.bench.helpers:broken_torch_candidate")
    assert bench_cli([*TRAIN, "--json"]) == 1
    out = capsys.readouterr()
    r = json.loads(out.out)
    assert r["failed"] == {"rnn torch": "RuntimeError: torch candidate broke"}
    assert "torch" not in r["skipped"]
    ok = f"rnnlm_{engine.default_linker()}"
    assert set(r["cells"]["rnn"]) == {ok} and r["cells"]["rnn"][ok]["median_ms"] > 0
    assert "vs_torch" not in r["cells"]["rnn"][ok]
    assert out.err.count("\n") == 1
    assert "1 benchmark candidate(s) failed" in out.err and "train rnn torch" in out.err

    assert bench_cli(TRAIN) == 1
    out = capsys.readouterr()
    assert "FAILED rnn torch: RuntimeError: torch candidate broke" in out.out
    assert "rnnlm bench train:" in out.out and "BLAS" in out.out  # the rest of the report is there
