"""rnnlm.bench.roofline: FLOP accounting and the GEMM roofline."""

import pytest

from rnnlm import bench


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
