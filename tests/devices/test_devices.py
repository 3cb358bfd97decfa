"""Past one device: the 4-device suite (``test_mesh.py``) in its own process, two processes on one machine
training as one, and the device and process settings that cannot work (one line on stderr, exit code 2,
nothing written)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnlm import engine
from rnnlm.cli.app import main

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
jax_only = pytest.mark.skipif(
    engine.name != "pytensor", reason="multi-device training is a JAX-linker feature"
)


def _env(devices: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["RNNLM_DEVICE_TESTS"] = str(devices)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlm: error:"), err
    return err[0]


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """A small word corpus, one sentence a line."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    p = 1.0 / np.arange(1, 61)
    path = tmp_path_factory.mktemp("devices") / "text.txt"
    lines = [" ".join(rng.choice(words, rng.integers(3, 12), p=p / p.sum())) for _ in range(400)]
    path.write_text("\n".join(lines) + "\n")
    return path


@jax_only
@pytest.mark.skipif(os.environ.get("RNNLM_DEVICE_TESTS") == "4", reason="already on 4 devices")
def test_the_four_device_suite_in_its_own_process():
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(Path(__file__).with_name("test_mesh.py")),
        ],
        cwd=REPO,
        env=_env(4),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0 and " passed" in r.stdout and "skipped" not in r.stdout, (
        r.stdout[-4000:] + r.stderr
    )


TRAIN = [
    "--format",
    "lines",
    "--model",
    "gru",
    "--hidden",
    "16",
    "--embedding",
    "8",
    "--dropout",
    "0.2",
    "--batch-size",
    "8",
    "--max-steps",
    "6",
    "--no-progress",
    "--seed",
    "5",
    "--valid-every",
    "3",
]


@jax_only
def test_two_processes_on_one_machine_train_like_one(text, tmp_path):
    """Two local processes (2 virtual devices each, coordinator on the loopback address) train 6 steps on a
    4-device mesh; process 0's checkpoint equals a single-process run's; process 1 writes nothing."""
    rnnlm = [sys.executable, "-m", "rnnlm", "train", str(text), *TRAIN]
    single = subprocess.run(
        [*rnnlm, "--out", str(tmp_path / "one")], env=_env(1), capture_output=True, text=True, timeout=300
    )
    assert single.returncode == 0, single.stderr
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                *rnnlm,
                "--out",
                str(tmp_path / f"p{i}"),
                "--devices",
                "4",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                "--coordinator-timeout",
                "60s",
            ],
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (0, 1)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-3000:] for o in outs]
    assert "on 4 cpu devices (2 processes)" in outs[0][1]
    # Gloo's own chatter ("[Gloo] Rank 3 is connected to 3 peer ranks. Expected number of connected peer
    # ranks is : 3"), one message per device thread, written piece by piece: two threads' pieces interleave
    gloo = re.compile(r"(\[Gloo\]|Rank|is|connected|to|peer|ranks\.?|Expected|number|of|:|\d+)+")
    said = [word for word in outs[1][0].split() if not gloo.fullmatch(word)]
    assert not (tmp_path / "p1").exists() and said == []  # only process 0 writes and reports
    with np.load(tmp_path / "one" / "checkpoint.npz") as a, np.load(tmp_path / "p0" / "checkpoint.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            if k != "meta":
                np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
    logs = [(tmp_path / d / "log.jsonl").read_text().count('"event": "valid"') for d in ("one", "p0")]
    assert logs[0] == logs[1] >= 1  # a validation after 3 steps, on both processes at once


@jax_only
@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--devices", "3", "--batch-size", "64"], "--batch-size 64 does not divide by --devices 3"),
        (["--devices", "9", "--batch-size", "72"], "--devices 9: JAX sees only"),
        (["--devices", "two"], "devices must be a positive integer or 'all'"),
        (["--devices", "2", "--linker", "c"], "JAX-linker feature"),
        (
            ["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"],
            "--process-id 2 is out",
        ),
        (
            ["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "-1"],
            "--process-id -1 is out",
        ),
        (["--coordinator", "127.0.0.1", "--num-processes", "2", "--process-id", "1"], "expected HOST:PORT"),
        (["--num-processes", "2", "--process-id", "1"], "missing --coordinator"),
    ],
)
def test_settings_that_cannot_work_are_one_line(text, tmp_path, capsys, flags, says):
    out = tmp_path / "run"
    rc = main(["train", str(text), "--out", str(out), *TRAIN, *flags])
    assert rc == 2 and says in _one_error_line(capsys)
    assert not out.exists()


@jax_only
def test_an_unreachable_coordinator_times_out_in_bounded_time(text, tmp_path, capsys):
    out = tmp_path / "run"
    t0 = time.monotonic()
    flags = [
        "--coordinator",
        f"127.0.0.1:{_free_port()}",
        "--num-processes",
        "2",
        "--process-id",
        "1",
        "--coordinator-timeout",
        "1s",
    ]
    rc = main(["train", str(text), "--out", str(out), *TRAIN, *flags])
    assert rc == 2 and "not reachable within 1 s" in _one_error_line(capsys)
    assert time.monotonic() - t0 < 10 and not out.exists()
