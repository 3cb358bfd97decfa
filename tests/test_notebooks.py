"""The tutorial notebooks: the runner (rnnlm.notebooks), the committed files, and a full execution of each.

Executing a notebook takes about a minute (``slow``); every test that starts a kernel is marked
``notebooks`` (deselect them with ``-m "not notebooks"``).  Executions run on copies in a temporary
folder, never on the committed files.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from rnnlm import notebooks as runner  # noqa: E402  (after the importorskips: skip without the extras)
from rnnlm.errors import RnnlmError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
#: Each notebook and the least number of inline plots it must produce.
NOTEBOOKS = {
    "01-introduction-to-rnns.ipynb": 2,
    "02-implementing-a-language-model.ipynb": 3,
    "03-bptt-and-vanishing-gradients.ipynb": 5,
    "04-gru-and-lstm.ipynb": 1,
}


def _write(path: Path, *sources: str) -> Path:
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [new_markdown_cell("# a test notebook")] + [new_code_cell(s) for s in sources]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def _outputs(nb, kind):
    return [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == kind
    ]


def _images(nb) -> int:
    return sum(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def _text(nb) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            parts.append(
                o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
            )
    return "".join(parts)


# ------------------------------------------------------------------------------------------------
# the committed notebooks (no kernel)
# ------------------------------------------------------------------------------------------------
def test_the_four_tutorial_notebooks_exist_and_nothing_else():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_notebook_is_executed_in_order_with_outputs_and_no_errors(name):
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # Executed top to bottom in one session: counts 1, 2, 3, ... (a partial or out-of-order run fails).
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not _outputs(nb, "error")
    assert _images(nb) >= NOTEBOOKS[name]
    assert nb.metadata["kernelspec"]["name"] == "python3"
    # The notebooks call the library: every one imports rnnlm and reports the engine it ran on.
    assert "import rnnlm" in code[0].source
    assert "engine: " in _text(nb)


def _code(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebooks_use_only_public_names(name):
    """No private hooks: no attribute, import or call of a name starting with one underscore."""
    source = _code(nbformat.read(NOTEBOOK_DIR / name, as_version=4))
    private = re.findall(
        r"\.(_[A-Za-z][A-Za-z0-9_]*)|\bimport\s+(_[A-Za-z]\w*)|,\s*(_[A-Za-z]\w*)\s*(?:,|$)", source, re.M
    )
    assert not [p for group in private for p in group if p], private


def _lines(nb) -> str:
    """Every text output, one after the other, each starting on its own line."""
    return "\n".join(_text(c) for c in [nbformat.v4.new_notebook(cells=[c]) for c in nb.cells])


#: The least number of source listings (``show(...)``) each notebook prints.
SHOWN = {
    "02-implementing-a-language-model.ipynb": 8,
    "03-bptt-and-vanishing-gradients.ipynb": 1,
    "04-gru-and-lstm.ipynb": 3,
}


@pytest.mark.parametrize("name", sorted(SHOWN))
def test_notebooks_show_the_code_they_run(name):
    """Parts 2-4 are about writing the code: each notebook prints the library's source next to the math."""
    shown = re.findall(
        r"^# src/rnnlm/\S+\.py, ", _lines(nbformat.read(NOTEBOOK_DIR / name, as_version=4)), re.M
    )
    assert len(shown) >= SHOWN[name], shown


def test_notebooks_reproduce_the_tutorials_experiments():
    nb02 = nbformat.read(NOTEBOOK_DIR / "02-implementing-a-language-model.ipynb", as_version=4)
    code, text = _code(nb02), _lines(nb02)
    # the blog's run: RNNNumpy, H=100, the first 100 sentences, 10 epochs, the loss after each
    assert "RNNNumpy(C, hidden_dim=100, bptt_truncate=4" in code and "X[:100], Y[:100]" in code
    assert len(re.findall(r"^Loss after num_examples_seen=\d+ epoch=\d+", text, re.M)) == 10
    assert "learning rate halved" in text  # the halving rule fires
    # the SGD-step timing: the library call, its load and BLAS threads, and the quiet figure beside it
    assert (
        "bench.bench_sgd_step(" in code
        and "docs/benchmarks.md" in text
        and "threads" in text
        and "load" in text
    )
    nb03 = nbformat.read(NOTEBOOK_DIR / "03-bptt-and-vanishing-gradients.ipynb", as_version=4)
    epochs = re.search(r"after epochs 0\.\.(\d+)", _lines(nb03))
    assert epochs and int(epochs.group(1)) >= 5
    assert "RNN(fast=False), the tutorial's graph" in _lines(nb03)
    nb04 = nbformat.read(NOTEBOOK_DIR / "04-gru-and-lstm.ipynb", as_version=4)
    text = _lines(nb04)
    assert "'embedding_dim': 128" in text  # part 4's code, not its text's 48
    for cell in ("rnn", "gru", "lstm"):  # equal time budget, with sentences from each
        assert re.search(rf"^\s*{cell}: [\d,]+ parameters, \d+ steps", text, re.M), cell
        assert re.search(rf"^{cell}:\n(   .+\n){{3}}", text, re.M), cell


# ------------------------------------------------------------------------------------------------
# the runner
# ------------------------------------------------------------------------------------------------
@pytest.mark.notebooks
def test_kernel_is_this_interpreter_in_the_notebook_folder_with_the_data_path(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLM_DATA", str(tmp_path / "data-here"))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # must not leak into the kernel: plots would not show inline
    nb_path = _write(
        tmp_path / "probe.ipynb",
        "import json, os, sys\n"
        "print(json.dumps([sys.executable, os.getcwd(), os.environ.get('RNNLM_DATA'),"
        " os.environ.get('MPLBACKEND')]))",
        "import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()",
    )
    nb, seconds = runner.execute_notebook(nb_path, timeout=120)
    executable, cwd, data, backend = json.loads(_outputs(nb, "stream")[0]["text"])
    assert Path(executable).resolve() == Path(sys.executable).resolve()
    assert Path(cwd).resolve() == tmp_path.resolve()
    assert data == str(tmp_path / "data-here")
    assert backend != "Agg"
    assert _images(nb) == 1  # the kernel's default backend is the inline one, whatever the caller's
    assert nb.metadata["kernelspec"] == runner.NOTEBOOK_KERNELSPEC
    assert not any("execution" in c.metadata for c in nb.cells)  # no timing noise in committed files
    assert seconds > 0


@pytest.mark.notebooks
def test_a_failing_cell_is_one_error_naming_the_cell_and_the_file_is_left_alone(tmp_path, capsys):
    nb_path = _write(
        tmp_path / "bad.ipynb",
        "x = 41",
        "# the culprit\nraise ValueError(f'boom {x + 1}')",
        "print('never reached')",
    )
    before = nb_path.read_bytes()
    with pytest.raises(runner.NotebookError) as info:
        runner.execute_notebook(nb_path, timeout=120)
    message = str(info.value)
    assert "bad.ipynb" in message and "code cell 2" in message and "ValueError: boom 42" in message
    assert "\n" not in message
    assert "ValueError" in info.value.traceback

    assert runner.main(["--in-place", str(nb_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlm.notebooks: error:") and "boom 42" in err[0]
    assert nb_path.read_bytes() == before  # --in-place never writes a failed run


@pytest.mark.notebooks
def test_in_place_and_output_dir_write_the_executed_notebook(tmp_path, capsys):
    nb_path = _write(tmp_path / "ok.ipynb", "print(6 * 7)")
    out = tmp_path / "out"
    assert runner.main(["--output-dir", str(out), str(nb_path)]) == 0
    assert not _outputs(nbformat.read(nb_path, as_version=4), "stream")  # the source is untouched
    assert "42" in _text(nbformat.read(out / "ok.ipynb", as_version=4))
    assert runner.main(["--in-place", str(nb_path)]) == 0
    nb = nbformat.read(nb_path, as_version=4)
    assert _text(nb).strip() == "42" and nb.cells[1].execution_count == 1
    assert "ok.ipynb" in capsys.readouterr().out


def test_missing_notebook_is_a_one_line_error(tmp_path, capsys):
    assert runner.main([str(tmp_path / "nope.ipynb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rnnlm.notebooks: error: {tmp_path / 'nope.ipynb'}: no such notebook"]
    assert issubclass(runner.NotebookError, RnnlmError)


def test_kernelspec_is_rewritten_when_it_names_another_interpreter(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    spec = tmp_path / "share" / "jupyter" / "kernels" / runner.KERNEL_NAME / "kernel.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({"argv": ["/some/other/python", "-m", "ipykernel_launcher"]}))
    folder = runner.ensure_kernel()
    assert folder == tmp_path / "share" / "jupyter" / "kernels"
    assert json.loads(spec.read_text())["argv"][0] == sys.executable
    mtime = spec.stat().st_mtime_ns
    runner.ensure_kernel()  # already right: not rewritten
    assert spec.stat().st_mtime_ns == mtime


# ------------------------------------------------------------------------------------------------
# every notebook, top to bottom (make test / CI)
# ------------------------------------------------------------------------------------------------
@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_top_to_bottom(name, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("RNNLM_DATA", str(data_dir))
    copy = tmp_path / name
    shutil.copy(NOTEBOOK_DIR / name, copy)
    try:
        nb, seconds = runner.execute_notebook(copy, timeout=400)
    except runner.NotebookError as e:
        pytest.fail(f"{e}\n{e.traceback}")
    print(f"{name}: {seconds:.1f} s")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not _outputs(nb, "error")
    assert _images(nb) >= NOTEBOOKS[name]
    # Nothing is written beside the notebook (models, plots and corpora stay in memory).
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
