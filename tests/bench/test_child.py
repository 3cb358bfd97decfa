"""rnnlm.bench.child: a candidate built and stepped in a process of its own (PyTorch's, so that rnnlm's
kernels in the benchmark's process do not slow it)."""

import os

import pytest

from rnnlm.bench.child import ChildError, in_child
from rnnlm.bench.timing import compare, error_line


def test_the_candidate_is_built_and_stepped_in_another_process():
    step, child_pid = in_child("tests.bench.helpers:pid_candidate")
    assert int(child_pid) != os.getpid()
    assert step() is None and step() is None
    step.close()
    with pytest.raises(ChildError, match="ended"):  # closed: no process answers
        step()


def test_an_error_in_the_child_keeps_its_one_line_report():
    step, _ = in_child("tests.bench.helpers:failing_candidate", 2)
    step(), step()
    with pytest.raises(ChildError) as err:
        step()
    assert error_line(err.value) == "ValueError: step 3 failed"
    with pytest.raises(ChildError, match="no module named|No module named"):
        in_child("tests.bench.no_such_module:candidate")


def test_compare_records_a_child_that_fails_and_times_the_others():
    step, _ = in_child("tests.bench.helpers:failing_candidate", 3)
    failed = {}
    timings = compare({"child": step, "here": lambda: None}, repeat=4, rounds=2, failed=failed)
    assert failed == {"child": "ValueError: step 4 failed"} and set(timings) == {"here"}
    step.close()
