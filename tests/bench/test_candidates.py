"""rnnlm.bench.candidates: a missing optional dependency is skipped, a candidate that raises failed."""

import pytest

from rnnlm.bench.candidates import Candidates
from rnnlm.errors import ConfigError, EngineError


def test_add_keeps_skips_and_fails():
    c = Candidates()
    assert c.add("ok", lambda: (lambda: 1, {"what": "fine"}))

    def no_linker():
        raise EngineError("the numba linker needs Numba:\n pip install numba")

    def broken():
        raise TypeError("unsupported operand")

    assert not c.add("numba", no_linker)
    assert not c.add("broken", broken)
    c.skip("torch", "PyTorch is not installed")
    assert set(c.fns) == {"ok"} and c.info == {"ok": {"what": "fine"}}
    assert c.skipped == {"numba": "the numba linker needs Numba: pip install numba",
                         "torch": "PyTorch is not installed"}
    assert c.failed == {"broken": "TypeError: unsupported operand"}


def test_a_bad_setting_propagates():
    def bad_setting():
        raise ConfigError("hidden_dim must be positive")

    with pytest.raises(ConfigError):
        Candidates().add("x", bad_setting)


def test_a_candidate_that_raises_while_timed_is_failed_and_dropped():
    c = Candidates()
    state = {"n": 0}

    def flaky():
        state["n"] += 1
        if state["n"] > 2:
            raise RuntimeError("diverged")

    c.add("flaky", lambda: (flaky, {}))
    c.add("steady", lambda: ((lambda: None), {}))
    timings = c.compare(repeat=1, rounds=1)  # two calls each: untimed + timed
    assert set(timings) == {"flaky", "steady"} and c.failed == {}
    loops = c.time_loops(steps=2)
    assert set(loops) == {"steady"} and c.failed == {"flaky": "RuntimeError: diverged"}
    assert set(c.fns) == set(c.info) == {"steady"}
