"""``rnnlm serve`` on the command line: bad input is one line and exit code 2; it serves, warns when exposed,
and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rnnlm.cli import serve as serve_cmd
from rnnlm.cli.app import main

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnlm: error: "), err
    return lines[0]


def test_bad_command_lines_are_one_line_and_exit_2(capsys, tmp_path, word_run):
    rc, out, err = run(capsys, "serve", tmp_path / "missing.npz", "--port", "0")
    assert rc == 2 and out == "" and "no such file" in one_error_line(err)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    rc, _, err = run(capsys, "serve", tmp_path / "junk.npz", "--port", "0")
    assert rc == 2 and "not an .npz" in one_error_line(err)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        rc, _, err = run(capsys, "serve", word_run, "--port", port)
        assert rc == 2 and f"cannot listen on 127.0.0.1:{port}: address already in use" in one_error_line(err)
    rc, _, err = run(capsys, "serve", word_run, "--host", "no-such-host.invalid", "--port", "0")
    assert rc == 2 and "cannot resolve" in one_error_line(err)
    for argv, fragment in (
        (["--port", "-1"], "--port"),
        (["--max-text", "0"], "positive"),
        (["--linker", "fortran"], "invalid choice"),
    ):
        rc, _, err = run(capsys, "serve", word_run, *argv)
        assert rc == 2 and fragment in one_error_line(err)
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and "serve" in out
    rc, out, _ = run(capsys, "serve", "--help")
    assert rc == 0 and "127.0.0.1" in out and "/api/score" in " ".join(out.split())


def test_loopback_by_default_and_a_warning_otherwise(capsys, word_run, monkeypatch):
    import uvicorn

    assert serve_cmd.is_loopback("127.0.0.1") and serve_cmd.is_loopback("localhost")
    assert serve_cmd.is_loopback("::1") and serve_cmd.is_loopback("127.0.0.2")
    assert not serve_cmd.is_loopback("0.0.0.0") and not serve_cmd.is_loopback("192.168.1.5")
    seen = {}
    real_bind = serve_cmd.bind

    def fake_bind(host, port):  # listen on loopback whatever was asked: nothing is exposed by this test
        seen["host"] = host
        return real_bind("127.0.0.1", 0)

    def fake_run(self, sockets=None):
        seen["app"] = self.config.app

    monkeypatch.setattr(serve_cmd, "bind", fake_bind)
    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    rc, _, err = run(capsys, "serve", word_run, "--host", "0.0.0.0", "--port", "0")
    assert rc == 0 and seen["host"] == "0.0.0.0"
    assert re.search(r"rnnlm: warning: listening on 0\.0\.0\.0, not a loopback address", err)
    assert not any(m.cls.__name__ == "TrustedHostMiddleware" for m in seen["app"].user_middleware)
    rc, _, err = run(capsys, "serve", word_run, "--port", "0")
    assert rc == 0 and seen["host"] == "127.0.0.1" and "warning" not in err and "serving best.npz" in err
    assert any(m.cls.__name__ == "TrustedHostMiddleware" for m in seen["app"].user_middleware)


def test_rnnlm_serve_serves_and_stops_on_ctrl_c(word_run):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnlm", "serve", str(word_run), "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "serving" not in line:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "rnnlm serve exited early"
            assert time.monotonic() < deadline
        url = re.search(r"at (http://127\.0\.0\.1:\d+/)", line).group(1)
        assert httpx.get(url + "api/model", timeout=30).json()["name"] == "best.npz"
        assert "<title>rnnlm</title>" in httpx.get(url, timeout=30).text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is a failure
            proc.kill()
            pytest.fail("rnnlm serve did not stop on SIGINT")
    assert rc == 0
