"""``scripts/gpu_bench.sh``, the prepared check for a lent GPU (issue 15, target 6), as a dry run on the CPU:
a GPU session has minutes, so the script must work the first time there.  It broke once unnoticed when
``print_report`` moved; this runs it end to end with its documented CPU overrides."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_script_runs_its_configurations_and_reports(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path), DEVICE="cpu", CONFIGS="4:8 2:6",
               VOCAB="50", CELLS="rnn", REPEAT="2")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_bench.sh")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "device: cpu" in done.stdout
    report = (tmp_path / "gpu_bench.txt").read_text()
    for B, H in ((4, 8), (2, 6)):  # one JSON and one report per configuration, with its settings
        result = json.loads((tmp_path / f"train_b{B}_h{H}.json").read_text())
        s = result["settings"]
        assert (s["batch_size"], s["hidden_dim"], s["vocab_size"], s["device"]) == (B, H, 50, "cpu")
        assert result["cells"]["rnn"]["rnnlm_jax"]["median_ms"] > 0
        assert f"rnnlm bench train: V=50 H={H} (embedding {H}) B={B} L=32" in report
