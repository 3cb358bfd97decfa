"""rnnlm.engine's process settings: large blocks stay in the heap; OpenBLAS's idle workers sleep soon."""

import ctypes
import json
import os
import subprocess
import sys

import pytest

from rnnlm import bench, engine

pytestmark = pytest.mark.core


def _glibc_mallinfo2():
    try:
        return ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None


# A 64 MB array, freed and allocated again: with glibc's defaults it is an mmap'd block each time (counted
# in mallinfo2's hblks while it lives); with rnnlm's setting it comes from the heap and the second one reuses
# the first one's pages (the heap does not grow).
PROBE = """
import ctypes, numpy as np
from rnnlm import engine

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
before = mallinfo2()
a = np.ones(16 * 2**20, np.float32)
first = mallinfo2()
del a
b = np.ones(16 * 2**20, np.float32)
second = mallinfo2()
print(repr(engine.malloc_configured), first.hblks - before.hblks, first.arena - before.arena,
      second.arena - before.arena)
"""


def _probe(setting):
    env = {**os.environ, "RNNLM_MALLOC": setting}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    configured, hblks, arena1, arena2 = out.stdout.split()
    return eval(configured), int(hblks), int(arena1), int(arena2)  # noqa: S307 - our own repr of a str


@pytest.mark.skipif(_glibc_mallinfo2() is None, reason="needs glibc (mallinfo2)")
def test_large_blocks_stay_in_the_heap_and_are_reused():
    configured, hblks, arena1, arena2 = _probe("reuse")
    assert configured == "mmap_max=0,trim_threshold=2147483647,arena_max=1"
    assert hblks == 0 and arena1 >= 64 * 2**20  # the 64 MB block lives in the heap...
    assert arena2 == arena1  # ...and the next one reuses its pages instead of growing the heap


@pytest.mark.skipif(_glibc_mallinfo2() is None, reason="needs glibc (mallinfo2)")
def test_system_leaves_malloc_alone():
    configured, hblks, arena1, _ = _probe("system")
    assert configured == ""
    assert hblks >= 1 and arena1 < 64 * 2**20  # glibc's default: the block is mmap'd


def test_benchmarks_report_the_setting():
    import io

    from rnnlm.bench.report import print_report

    machine = bench.machine_info()
    assert machine["malloc"] == (engine.malloc_configured or "system defaults")
    assert machine["openblas_idle"] == engine.openblas_configured or "the user's" in machine["openblas_idle"]
    buf = io.StringIO()
    settings = {"cell": "gru", "vocab_size": 8, "hidden_dim": 4, "layers": 1, "tokens": 1, "linker": "c",
                "sampling": "greedy", "window": 1}
    print_report({"benchmark": "generate", "settings": settings, "batches": {}, "machine": machine}, buf)
    assert f"malloc (this process, PyTorch included): {machine['malloc']}" in buf.getvalue()
    assert f"NumPy's OpenBLAS idle workers: {machine['openblas_idle']}" in buf.getvalue()


# NumPy's OpenBLAS after rnnlm.engine: the timeout its thread server read, and the CPU time its idle workers
# burn while the caller sleeps 0.3 s right after a multi-threaded product.
OPENBLAS_PROBE = """
import json, resource, time, numpy as np
from threadpoolctl import ThreadpoolController
from rnnlm import engine

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

a = np.ones((512, 512), np.float32)
a @ a
a @ a
before = cpu()
time.sleep(0.3)
timeouts = [c.dynlib.openblas_thread_timeout() for c in
            ThreadpoolController().select(internal_api="openblas").lib_controllers]
print(json.dumps([engine.openblas_configured, cpu() - before, timeouts]))
"""


def _openblas_probe(timeout_env):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS",
                                                            "OMP_NUM_THREADS")}
    if timeout_env:
        env["OPENBLAS_THREAD_TIMEOUT"] = timeout_env
    out = subprocess.run([sys.executable, "-c", OPENBLAS_PROBE], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS runs one thread on one CPU")
def test_openblas_workers_sleep_after_a_product():
    configured, spent, timeouts = _openblas_probe(None)
    assert configured.startswith("thread_timeout=22") and timeouts and set(timeouts) == {22}
    assert spent < 0.02  # the workers sleep within ~1.5 ms (with OpenBLAS's default they spin ~0.1 s)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS runs one thread on one CPU")
def test_a_users_openblas_timeout_is_left_alone():
    configured, spent, timeouts = _openblas_probe("28")
    assert configured == "" and set(timeouts) == {28}
    assert spent > 0.03  # OpenBLAS's own behaviour: an idle worker spins after the product


# After a C-linker product with MKL linked (rnnlm.engine): which OpenMP runtime serves GOMP_parallel, the
# entry point of libgomp that oneDNN's wheel and rnnlm's kernels call, and whether MKL is loaded at all.
OPENMP_PROBE = """
import ctypes, json, numpy as np
from rnnlm import engine

x = engine.T.matrix("x")
f = engine.function([x], engine.T.dot(x, x), mode=engine.mode_for("c"))
f(np.ones((64, 64), np.float32))

class Info(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p), ("sname", ctypes.c_char_p),
                ("saddr", ctypes.c_void_p)]

gomp = ctypes.cast(ctypes.CDLL(None).GOMP_parallel, ctypes.c_void_p)
info = Info()
ctypes.CDLL("libdl.so.2").dladdr(gomp, ctypes.byref(info))
maps = open("/proc/self/maps").read()
print(json.dumps(["libmkl_core" in maps, "libiomp5" in maps, info.fname.decode()]))
"""


@pytest.mark.skipif("mkl" not in engine.blas_info(), reason="the C linker links no MKL here")
def test_mkl_runs_on_the_gnu_openmp_runtime():
    """MKL's default runtime is Intel's (libiomp5), whose GOMP_* entry points then serve oneDNN's and rnnlm's
    kernels too (the tutorial's SGD step's output node: 0.53 instead of 0.22 ms, 2 vCPUs)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_THREADING_LAYER", "KMP_BLOCKTIME")}
    out = subprocess.run([sys.executable, "-c", OPENMP_PROBE], env=env, capture_output=True, text=True,
                         check=True)
    mkl_loaded, iomp5_loaded, gomp_from = json.loads(out.stdout.strip().splitlines()[-1])
    assert mkl_loaded and not iomp5_loaded
    assert "libgomp" in os.path.basename(gomp_from)
