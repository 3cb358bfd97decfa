"""rnnlm.bench.machine: the context reported with every number."""

import time

from rnnlm import bench, engine


def test_process_age_counts_from_process_start():
    a = bench.process_age()
    time.sleep(0.05)
    assert a is not None and a > 0 and bench.process_age() >= a + 0.04


def test_machine_info_names_the_blas_kernel_and_engine():
    m = bench.machine_info()
    assert m["engine"] == engine.name and m["cpus"] >= 1
    assert m["blas"] and {"library", "kernel", "threads"} <= set(m["blas"][0])
    assert bench.busy_warning({"load_average": [9.0], "cpus": 2})
    assert bench.busy_warning({"load_average": [0.1], "cpus": 2}) is None
