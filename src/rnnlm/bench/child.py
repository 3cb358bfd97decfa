"""A benchmark candidate that runs in a child process of its own, timed from the parent step by step.

Why: PyTorch's CPU step, timed in rnnlm's process, ran slower than in a process of its own once rnnlm's
oneDNN kernels had run there (its OpenMP runtime and MKL shared with them: char GRU 114 → 143–175 ms,
V=8000 RNN 81 → 90 ms), which made every ratio to it flatter rnnlm.  In a child it runs as alone, and the
parent still alternates it with rnnlm's candidates (:func:`rnnlm.bench.timing.compare`): ``step()``
asks the child for one step and returns when it is done (a pipe's round trip, ~0.1 ms).  The child
configures malloc as rnnlm's process does (:mod:`rnnlm.engine`) and loads none of rnnlm's kernels.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os

from rnnlm.bench.timing import block, error_line

__all__ = ["ChildError", "in_child"]


class ChildError(RuntimeError):
    """An error in the child process; ``line`` is its one-line report there (type and message)."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


def in_child(maker: str, *args, **kwargs):
    """Build a candidate in a child process: ``maker`` ("module:function") returns ``(step_fn, first_s)``
    for ``*args, **kwargs``.  Returns ``(step, first_s)``: ``step()`` runs one step in the child; the
    child ends with the parent, or at ``step.close()``.  An error there is a :class:`ChildError` here."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this process's state
    conn, child_conn = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child_conn, maker, args, kwargs), daemon=True)
    proc.start()
    child_conn.close()

    def ask(msg):
        try:
            conn.send(msg)
            ok, value = conn.recv()
        except (EOFError, OSError):  # a closed pipe: the child is gone
            raise ChildError("RuntimeError: the child process ended") from None
        if not ok:
            raise ChildError(value)
        return value

    def step():
        return ask("step")

    def close():
        if proc.is_alive():
            conn.send("stop")
            proc.join(timeout=10)
        conn.close()

    first = ask("build")
    step.close = close
    return step, first


def _serve(conn, maker, args, kwargs):
    os.environ["RNNLM_DNNL"] = "off"  # none of rnnlm's kernels, nor their thread, in this process
    from rnnlm import engine  # noqa: F401  (malloc configured as in rnnlm's process)

    fn = None
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg == "stop":
            return
        try:
            if msg == "build":
                module, name = maker.split(":")
                fn, first = getattr(importlib.import_module(module), name)(*args, **kwargs)
                conn.send((True, first))
            else:
                block(fn())
                conn.send((True, None))
        except Exception as e:  # reported in the parent
            conn.send((False, error_line(e)))
