"""rnnlm.bench.machine: the context reported with every number."""

import time

from rnnlm import bench, engine, engine_ops


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
    # measured share of the CPUs others used wins over the lagging load average
    assert bench.busy_warning({"load_average": [1.9], "others_busy": 0.02, "cpus": 2}) is None
    assert "60%" in bench.busy_warning({"load_average": [0.1], "others_busy": 0.6, "cpus": 2})


def test_others_busy_leaves_out_this_process_and_sees_another():
    """This process spinning is not counted; a child process spinning on one CPU is."""
    import os
    import subprocess
    import sys
    import threading

    stop = time.perf_counter() + 0.6
    spin = threading.Thread(target=lambda: [0 for _ in iter(lambda: time.perf_counter() < stop, False)])
    spin.start()
    mine = bench.others_busy(0.4)
    spin.join()
    busy_loop = "import time\nt = time.time() + 3\nwhile time.time() < t: pass"
    child = subprocess.Popen([sys.executable, "-c", busy_loop])
    try:
        time.sleep(0.3)
        theirs = bench.others_busy(0.5)
    finally:
        child.kill()
        child.wait()
    cpus = len(os.sched_getaffinity(0))
    assert mine is not None and theirs is not None
    assert theirs >= mine + 0.5 / cpus  # one CPU's worth, less what else runs on a shared machine


def test_machine_info_says_which_graph_ops_ran(monkeypatch):
    """The report follows the switch: RNNLM_FUSED_LAYERS=off turns both fused ops off."""
    from rnnlm.bench.report import print_report

    on = bench.machine_info()["graph_ops"]
    fused = engine.name == "pytensor"
    assert (on["fused_layers"], on["fused_output"]) == (fused, True)
    assert on["dnnl_lstm"] == engine_ops.dnnl.available()  # the C linker's, on either engine
    why = "" if on["dnnl_lstm"] else engine_ops.dnnl.why_not()
    assert on.get("dnnl_lstm_why_not", "") == why
    assert on["dnnl_lstm_jax"] == (on["dnnl_lstm"] and engine_ops.dnnl.xla_ready())
    assert on["fused_sgd"] == (fused or on["dnnl_lstm"])
    flags = engine_ops.dnnl._cpu_flags().split()
    assert on["dnnl_bf16_amx"] == (on["dnnl_lstm"] and "amx_bf16" in flags)
    assert on["own_layers"] == {
        "fp32": ["gru", "lstm"] if on["dnnl_lstm"] else [],
        "bf16": [c for c, flag in (("gru", "avx512_bf16"), ("lstm", "amx_bf16"))
                 if on["dnnl_lstm"] and (flag in flags or "amx_bf16" in flags)]}
    monkeypatch.setenv("RNNLM_FUSED_LAYERS", "off")
    off = bench.machine_info()
    assert off["graph_ops"] == {"fused_layers": False, "fused_output": False, "fused_sgd": False,
                                "dnnl_lstm": False, "dnnl_lstm_jax": False, "dnnl_bf16_amx": False,
                                "own_layers": {"fp32": [], "bf16": []}}
    import io

    buf = io.StringIO()
    settings = {"cell": "gru", "vocab_size": 8, "hidden_dim": 4, "layers": 1, "tokens": 1, "linker": "c",
                "sampling": "greedy", "window": 1}
    print_report({"benchmark": "generate", "settings": settings, "batches": {}, "machine": off}, buf)
    assert "graph ops: none (scan and plain autodiff)" in buf.getvalue()
    buf = io.StringIO()
    report = {"benchmark": "generate", "settings": settings, "batches": {}, "machine": {"graph_ops": on}}
    print_report(report, buf)
    bf16 = "/".join(c.upper() for c in on["own_layers"]["bf16"])
    want = "rnnlm's own GRU/LSTM at fp32" + (f", {bf16} at bf16" if bf16 else "") + " layers"
    assert (want in buf.getvalue()) == on["dnnl_lstm"]
