"""rnnlm.bench.train: the result of a tiny training benchmark (ratios the right way round)."""

import pytest

from rnnlm import bench, engine
from rnnlm.errors import ConfigError
from tests.bench.helpers import fake_torch


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


@pytest.mark.parametrize("rnnlm_ms,meets", [(10.0, {"vs_torch": True, "vs_roofline": False}),
                                             (4.0, {"vs_torch": True, "vs_roofline": True}),
                                             (20.0, {"vs_torch": False, "vs_roofline": False})])
def test_bench_train_says_which_targets_are_met(monkeypatch, rnnlm_ms, meets):
    """Stubbed candidates and timings (nothing compiled): torch 30 ms, roofline 3 ms, targets
    vs_torch >= 2 and vs_roofline >= 0.6."""
    import rnnlm.bench.train as T
    from rnnlm.bench.candidates import Candidates

    torch = fake_torch()
    monkeypatch.setattr(T, "optional_module", lambda name: torch if name == "torch" else None)
    monkeypatch.setattr(T, "rnnlm_train_candidate", lambda *a, **k: ((lambda: None), 0.5))
    monkeypatch.setattr(T, "torch_train_candidate", lambda *a, **k: ((lambda: None), 0.2))
    monkeypatch.setattr(T, "in_child", T._here)  # the stub above, in this process (no PyTorch needed)
    monkeypatch.setattr(T, "gemm_roofline", lambda *a, **k: {"median_ms": 3.0})
    ms = {"rnnlm_c": rnnlm_ms, "torch": 30.0}
    monkeypatch.setattr(Candidates, "compare",
                        lambda self, repeat, **kw: {n: bench.summarize([ms[n] / 1e3]) for n in self.fns})
    monkeypatch.setattr(Candidates, "time_loops",
                        lambda self, steps: {n: bench.summarize([ms[n] / 1e3]) for n in self.fns})
    r = T.bench_train(cells=["rnn"], vocab_size=20, hidden_dim=4, batch_size=2, steps=3, linkers=["c"],
                      hand_jax=False, repeat=1)
    c = r["cells"]["rnn"]["rnnlm_c"]
    assert c["vs_torch"] == pytest.approx(30.0 / rnnlm_ms)
    assert c["vs_roofline"] == pytest.approx(3.0 / rnnlm_ms)
    assert c["meets_targets"] == meets
    assert "meets_targets" not in r["cells"]["rnn"]["torch"] and r["failed"] == {}


def test_precision_ratios_compare_each_precision_with_its_own_peer():
    """bf16 candidates are judged against PyTorch under autocast, and also against PyTorch fp32 and
    their own fp32 run; fp32 ones against PyTorch fp32 only."""
    from rnnlm.bench.train import precision_ratios

    res = {"rnnlm_jax": {"rate": 10.0}, "rnnlm_jax_bf16": {"rate": 18.0}, "torch": {"rate": 8.0},
           "torch_bf16": {"rate": 12.0}, "rnnlm_c": {"rate": 4.0}}
    precision_ratios(res, "rate", {"vs_torch": 1.0}, {"vs_torch_fp32": 2.5})
    assert res["rnnlm_jax"]["vs_torch"] == pytest.approx(10 / 8) and "vs_fp32" not in res["rnnlm_jax"]
    bf = res["rnnlm_jax_bf16"]
    assert (bf["vs_torch"], bf["vs_torch_fp32"], bf["vs_fp32"]) == pytest.approx((18 / 12, 18 / 8, 18 / 10))
    assert bf["meets_targets"] == {"vs_torch": True, "vs_torch_fp32": False}
    assert res["rnnlm_c"]["meets_targets"] == {"vs_torch": False}
    assert "meets_targets" not in res["torch_bf16"]
