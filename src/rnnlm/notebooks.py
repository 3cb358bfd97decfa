"""Execute the tutorial notebooks (``notebooks/*.ipynb``) top to bottom with nbclient.

``python -m rnnlm.notebooks [--in-place] [--output-dir DIR] [--timeout S] [PATH ...]``

- The kernel is *this* interpreter: a kernelspec named :data:`KERNEL_NAME` whose ``argv[0]`` is
  ``sys.executable`` is written into ``<sys.prefix>/share/jupyter/kernels`` (the venv's share dir;
  a temporary folder when that is read-only) and only that folder is searched, so a ``python3``
  kernel of some other environment in ``~/.local/share/jupyter`` can never be picked up.
- Each notebook runs with its own folder as the working directory and the caller's environment;
  when ``RNNLM_DATA`` is unset it defaults to ``<repo>/../shared/data`` if that exists (the folder
  the test suite falls back to), so ``make notebooks`` finds the offline data.
- Any cell error (or a dead kernel, or a cell over ``--timeout`` seconds) stops that notebook and
  is reported as one line naming the notebook, the cell and the exception; the exit code is 2 and
  an ``--in-place`` notebook is left untouched (the committed outputs stay readable).
- Without ``--in-place`` or ``--output-dir`` the notebooks are only checked (executed, not written).

Executed notebooks keep the standard ``python3`` kernelspec in their metadata (so they open in any
Jupyter) and no per-cell timing metadata (so a re-run changes outputs, not noise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rnnlm.errors import RnnlmError

KERNEL_NAME = "rnnlm"
KERNEL_DISPLAY_NAME = "Python (rnnlm)"
#: The kernelspec stored in executed notebooks: the standard one, so they open anywhere.
NOTEBOOK_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
DEFAULT_TIMEOUT = 600  # seconds per cell
REPO = Path(__file__).resolve().parents[2]


class NotebookError(RnnlmError):
    """A notebook could not be executed: a cell raised, the kernel died, or a cell timed out.

    ``traceback`` holds the kernel's traceback text (ANSI colours removed) when there is one.
    """

    def __init__(self, message: str, traceback: str = ""):
        super().__init__(message)
        self.traceback = traceback


def _require():
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as e:
        raise NotebookError(f"executing notebooks needs nbclient, nbformat and ipykernel ({e}); "
                            "install them with: pip install -e '.[test]'") from None


# --------------------------------------------------------------------------------------------------
# the kernel
# --------------------------------------------------------------------------------------------------
def _kernel_dict() -> dict:
    from ipykernel.kernelspec import get_kernel_dict

    spec = get_kernel_dict()  # argv = [sys.executable, "-m", "ipykernel_launcher", "-f", ...]
    spec["argv"][0] = sys.executable
    spec["display_name"] = KERNEL_DISPLAY_NAME
    return spec


def _write_spec(folder: Path, spec: dict) -> None:
    from rnnlm.fileio import atomic_write

    d = folder / KERNEL_NAME
    d.mkdir(parents=True, exist_ok=True)
    # Atomic: a parallel run (make notebooks beside pytest) never reads half a kernel.json.
    atomic_write(d / "kernel.json", lambda f: f.write(json.dumps(spec, indent=1).encode("utf-8")))


def ensure_kernel() -> Path:
    """The kernelspec folder holding :data:`KERNEL_NAME` for this interpreter (written if missing
    or stale): ``<sys.prefix>/share/jupyter/kernels``, or a temporary folder if that is read-only."""
    spec = _kernel_dict()
    folder = Path(sys.prefix) / "share" / "jupyter" / "kernels"
    current = folder / KERNEL_NAME / "kernel.json"
    try:
        if json.loads(current.read_text(encoding="utf-8")).get("argv") == spec["argv"]:
            return folder
    except (OSError, ValueError):
        pass
    try:
        _write_spec(folder, spec)
    except OSError:  # a read-only system prefix: a private folder for this process
        folder = Path(tempfile.mkdtemp(prefix="rnnlm-kernels-"))
        _write_spec(folder, spec)
    return folder


def kernel_environment(base=None) -> dict:
    """The kernel's environment: ``base`` (default ``os.environ``) with ``RNNLM_DATA`` filled in when
    unset and the offline data folder exists, and without ``MPLBACKEND`` (so plots go inline)."""
    env = dict(os.environ if base is None else base)
    if not env.get("RNNLM_DATA", "").strip():
        for candidate in (REPO.parent / "shared" / "data",):
            if candidate.is_dir():
                env["RNNLM_DATA"] = str(candidate)
                break
    env.pop("MPLBACKEND", None)
    return env


# --------------------------------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------------------------------
def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text or "")


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:80]
    return ""


def execute_notebook(path, timeout: int = DEFAULT_TIMEOUT, env=None):
    """Execute the notebook at ``path`` in its own folder; returns ``(notebook, seconds)``.

    The notebook object (nbformat v4) holds the new outputs; nothing is written.  Raises
    :class:`NotebookError` naming the cell (1-based, counting code cells) on any failure.
    """
    _require()
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as e:  # nbformat's NotJSONError is a ValueError
        raise NotebookError(f"{path}: cannot read the notebook ({e})") from None
    ksm = KernelSpecManager(kernel_dirs=[str(ensure_kernel())])
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
    where = {"cell": None}
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]

    def on_cell_start(cell, cell_index):
        where["cell"] = cell_index

    client = NotebookClient(nb, km=km, timeout=timeout, startup_timeout=180, record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}},
                            on_cell_start=on_cell_start,
                            # ipykernel warns on every start that a local TCP kernel is unencrypted
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])

    def describe():
        i = where["cell"]
        if i is None:
            return "before the first cell"
        n = code_cells.index(i) + 1 if i in code_cells else i + 1
        return f"code cell {n} ({_first_line(nb.cells[i].source)!r})"

    t0 = time.perf_counter()
    try:
        client.execute(env=kernel_environment(env))
    except CellExecutionError as e:
        raise NotebookError(f"{path}: {describe()} raised {e.ename}: {_strip_ansi(str(e.evalue))}",
                            _strip_ansi(e.traceback if isinstance(e.traceback, str) else str(e))) from None
    except CellTimeoutError:
        raise NotebookError(f"{path}: {describe()} ran longer than {timeout} s") from None
    except DeadKernelError as e:
        raise NotebookError(f"{path}: the kernel died in {describe()} ({e})") from None
    seconds = time.perf_counter() - t0
    nb.metadata["kernelspec"] = dict(NOTEBOOK_KERNELSPEC)
    return nb, seconds


def write_notebook(nb, path) -> Path:
    """Write ``nb`` to ``path`` atomically (nbformat's JSON, newline at the end)."""
    import nbformat

    from rnnlm.fileio import atomic_write

    text = nbformat.writes(nb) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def default_notebooks() -> list:
    """``notebooks/*.ipynb`` of the current folder, else of the source checkout, sorted."""
    for folder in (Path.cwd() / "notebooks", REPO / "notebooks"):
        found = sorted(folder.glob("*.ipynb"))
        if found:
            return found
    raise NotebookError("no notebooks found (looked in ./notebooks and the rnnlm checkout); give paths")


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rnnlm.notebooks",
        description="Execute notebooks top to bottom on a kernel running this interpreter; fail on any "
                    "cell error.")
    p.add_argument("paths", nargs="*", help="notebooks to run (default: notebooks/*.ipynb)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--in-place", action="store_true", help="write the outputs back into each notebook")
    out.add_argument("--output-dir", metavar="DIR", help="write executed copies into DIR")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, metavar="S",
                   help="seconds a single cell may run (default: %(default)s)")
    p.add_argument("--traceback", action="store_true", help="on failure, also print the cell's traceback")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = [Path(p) for p in args.paths] or default_notebooks()
        for p in paths:
            if not p.is_file():
                raise NotebookError(f"{p}: no such notebook")
        out_dir = Path(args.output_dir) if args.output_dir else None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        for p in paths:
            print(f"running {p} ...", flush=True)
            try:
                nb, seconds = execute_notebook(p, timeout=args.timeout)
            except NotebookError as e:
                if args.traceback and e.traceback:
                    print(e.traceback, file=sys.stderr)
                raise
            if args.in_place:
                write_notebook(nb, p)
            elif out_dir is not None:
                write_notebook(nb, out_dir / p.name)
            print(f"ok  {p}  {seconds:.1f} s", flush=True)
    except RnnlmError as e:
        print(f"rnnlm.notebooks: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
