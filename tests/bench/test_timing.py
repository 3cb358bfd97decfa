"""rnnlm.bench.timing: a timer must wait for asynchronous results, inside the timed region."""

import time

import pytest

from rnnlm import bench


class FakeAsync:
    """A result that is not ready until someone waits for it (like a JAX array)."""

    delay = 0.03

    def __init__(self):
        self.ready = False

    def block_until_ready(self):
        time.sleep(self.delay)
        self.ready = True
        return self


def test_timer_waits_for_asynchronous_results():
    made = []

    def call():
        r = FakeAsync()
        made.append(r)
        return [1.0, {"nested": (r,)}]  # the array hides inside containers

    t = bench.time_calls(call, repeat=3, warmup=1)
    assert t["runs"] == 3
    assert all(r.ready for r in made) and len(made) == 4
    assert t["min_ms"] >= 1e3 * FakeAsync.delay  # the wait is inside the timed region


def test_a_timer_without_sync_would_be_caught():
    # the same fake with the sync switched off measures the dispatch only: far below the delay
    t = bench.time_calls(FakeAsync, repeat=3, warmup=0, sync=lambda r: r)
    assert t["median_ms"] < 1e3 * FakeAsync.delay / 2


def test_time_loop_blocks_on_the_last_result():
    made = []

    def call():
        made.append(FakeAsync())
        return made[-1]

    t = bench.time_loop(call, steps=4, loops=2)
    assert t["runs"] == 2
    # only the last call of each loop (and the warm-up) is waited for, and its wait is timed
    assert [r.ready for r in made] == [True, False, False, False, True, False, False, False, True]
    assert t["min_ms"] >= 1e3 * FakeAsync.delay / 4


def test_compare_times_every_candidate_with_sync_in_rotating_blocks():
    order = []

    def make(name):
        def fn():
            order.append(name)
            return FakeAsync()
        return fn

    res = bench.compare({"a": make("a"), "b": make("b")}, repeat=4, rounds=2)
    assert {k: v["runs"] for k, v in res.items()} == {"a": 4, "b": 4}
    assert all(v["min_ms"] >= 1e3 * FakeAsync.delay for v in res.values())
    # two rounds, each a block of one untimed + two timed calls per candidate
    assert "".join(order) == "aaabbbaaabbb"


def test_summarize():
    s = bench.summarize([0.003, 0.001, 0.002])
    assert s == {"median_ms": pytest.approx(2.0), "min_ms": pytest.approx(1.0),
                 "mean_ms": pytest.approx(2.0), "runs": 3}
    with pytest.raises(ValueError):
        bench.summarize([])


def test_compare_records_a_candidate_that_raises_and_times_the_others():
    calls = {"ok": 0, "bad": 0}

    def ok():
        calls["ok"] += 1

    def bad():
        calls["bad"] += 1
        if calls["bad"] == 3:  # fails in the middle of its first block
            raise ValueError("third call\nmore detail")

    failed = {}
    res = bench.compare({"bad": bad, "ok": ok}, repeat=4, rounds=2, failed=failed)
    assert failed == {"bad": "ValueError: third call"}
    assert set(res) == {"ok"} and res["ok"]["runs"] == 4
    assert calls == {"ok": 6, "bad": 3}  # not called again after it failed
    with pytest.raises(ZeroDivisionError):  # without a dict to record it in, the error propagates
        bench.compare({"bad": lambda: 1 / 0}, repeat=1)


def test_error_line():
    assert bench.error_line(RuntimeError("boom\nsecond")) == "RuntimeError: boom"
    assert bench.error_line(KeyError()) == "KeyError"
    assert bench.error_line(ValueError("x" * 300)) == "ValueError: " + "x" * 200
