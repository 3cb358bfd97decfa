"""The shape of the code: layers and cycles (import-linter), ruff, module size, private names, and every
module importable on its own."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
MAX_LINES = 600


def _modules() -> list[str]:
    out = []
    for path in sorted((SRC / "rnnlm").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__":
            out.append(".".join(parts))
    return out


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def test_import_contracts_hold():
    """Layers point down, only rnnlm.engine imports pytensor/aesara, no import cycles (setup.cfg)."""
    proc = subprocess.run(
        [_tool("lint-imports"), "--no-cache"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "KEPT" in proc.stdout


def test_ruff_is_clean():
    proc = subprocess.run(
        [_tool("ruff"), "check", "src", "tests", "scripts"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_no_module_is_over_600_lines():
    long = {
        str(p.relative_to(SRC)): n
        for p in (SRC / "rnnlm").rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these by responsibility: {long}"


def test_no_private_name_is_imported_from_another_module():
    bad = []
    for path in (SRC / "rnnlm").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnnlm"):
                bad += [
                    f"{path.relative_to(SRC)}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not bad, bad


def test_every_module_imports_on_its_own():
    """``python -c "import rnnlm.x"`` for every module, each in a fresh interpreter (no import order hides
    a missing import or a cycle)."""

    def one(module):
        proc = subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        return module, proc.returncode, proc.stderr.strip().splitlines()[-1:] if proc.returncode else []

    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [r for r in pool.map(one, _modules()) if r[1] != 0]
    assert not failed, failed
