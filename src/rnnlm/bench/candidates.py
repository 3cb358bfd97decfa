"""The candidates of one benchmark, and what became of those that did not run: skipped or failed."""

from __future__ import annotations

from collections.abc import Callable

from rnnlm.bench.timing import compare, error_line, time_loop
from rnnlm.errors import EngineError, RnnlmError

__all__ = ["Candidates"]


class Candidates:
    """Name -> zero-argument callable to time (``fns``) and the facts to report beside each
    timing (``info``), with the candidates that did not run.

    - ``skipped`` (name -> reason): the candidate cannot run here because an optional library or
      device is missing -- PyTorch not installed, no GPU, a linker this engine or installation
      lacks (:class:`~rnnlm.errors.EngineError`).  Not an error.
    - ``failed`` (name -> one-line error): building or timing it raised anything else.  The
      result reports it and ``rnnlm bench`` exits with code 1.

    Any other :class:`~rnnlm.errors.RnnlmError` (a bad setting, which every candidate would hit
    alike) propagates to the caller.
    """

    def __init__(self):
        self.fns: dict = {}
        self.info: dict = {}
        self.skipped: dict = {}
        self.failed: dict = {}

    def skip(self, name: str, reason: str) -> None:
        self.skipped[name] = reason

    def add(self, name: str, make: Callable) -> bool:
        """Build a candidate: ``make()`` returns ``(fn, info)``.  True if it was added, False if it
        was skipped or failed (recorded)."""
        try:
            fn, info = make()
        except EngineError as e:
            self.skipped[name] = " ".join(str(e).split())
            return False
        except RnnlmError:
            raise
        except Exception as e:  # recorded as failed; `rnnlm bench` then exits with 1
            self.failed[name] = error_line(e)
            return False
        self.fns[name] = fn
        self.info[name] = dict(info)
        return True

    def compare(self, repeat: int, **kwargs) -> dict:
        """:func:`~rnnlm.bench.timing.compare` of the candidates; one that raises becomes failed."""
        timings = compare(self.fns, repeat=repeat, failed=self.failed, **kwargs)
        self._drop_failed()
        return timings

    def time_loops(self, steps: int) -> dict:
        """:func:`~rnnlm.bench.timing.time_loop` of each candidate; one that raises becomes failed."""
        loops = {}
        for name, fn in self.fns.items():
            try:
                loops[name] = time_loop(fn, steps=steps)
            except Exception as e:  # recorded as failed
                self.failed[name] = error_line(e)
        self._drop_failed()
        return loops

    def close(self) -> None:
        """End what the candidates hold outside this process (:func:`rnnlm.bench.child.in_child`)."""
        for fn in self.fns.values():
            if hasattr(fn, "close"):
                fn.close()

    def _drop_failed(self) -> None:
        for name in self.failed:
            self.fns.pop(name, None)
            self.info.pop(name, None)
