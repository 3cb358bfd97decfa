"""The graph-engine layer: the only module in rnnlm that imports ``pytensor`` or ``aesara``.

Both engines share Theano's API almost name for name.  This module picks one
(``RNNLM_ENGINE=pytensor|aesara``, else whichever is installed, PyTensor first), sets
``floatX=float32`` *before* any graph is built (``grad`` makes its seeds in floatX, and a
float64 seed breaks JAX's scan carry types), and re-exports what the models need:

``function``, ``shared``, ``grad``, ``config``, ``T`` (the tensor module), ``scan`` (one
calling convention for both engines), ``log_softmax`` / ``softmax``, and ``mode_for``, which
turns a linker name (``c``, ``jax``, ``numba``) into a compile mode.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings

from rnnlm.errors import EngineError

ENGINES = ("pytensor", "aesara")
LINKERS = ("c", "jax", "numba", "py")
INSTALL_HINT = {
    "pytensor": "pip install -e '.[pytensor]'  (or: make install)",
    "aesara": "pip install -e '.[aesara]'  (in its own venv: make .venv-aesara)",
}

# Engine messages that say nothing to an rnnlm user, silenced only around rnnlm's own calls into the
# engine (:func:`quiet`), never process-wide: the C linker of a pip-installed engine usually finds no
# BLAS (benchmarks report it: blas_info); float64 index arithmetic inside graphs is intended; PyTensor's
# JAX backend drops shape Asserts (rnnlm validates shapes in Python before every call).
_QUIET_MESSAGES = (
    r".*could not link to a BLAS.*",
    r".*Explicitly requested dtype float64.*",
    r"Skipping Assert",
    r"(?s).*(Optimized \(vendor\) Blas|Blas \(http).*",
)
_QUIET_LOGGERS = ("aesara.tensor.blas", "pytensor.tensor.blas")


@contextlib.contextmanager
def quiet():
    """Within this block, the engine's warnings listed in ``_QUIET_MESSAGES`` (and its BLAS loggers'
    warnings) are not shown. Filters and logger levels are restored afterwards."""
    loggers = [logging.getLogger(n) for n in _QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for pattern in _QUIET_MESSAGES:
            warnings.filterwarnings("ignore", message=pattern)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _import(name):
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # the engine is missing or broken in this environment
        raise EngineError(
            f"graph engine {name!r} is not importable ({exc}); install it with: {INSTALL_HINT[name]}"
        ) from None


def _select():
    wanted = os.environ.get("RNNLM_ENGINE", "").strip().lower()
    if wanted:
        if wanted not in ENGINES:
            raise EngineError(f"RNNLM_ENGINE={wanted!r} is not one of {', '.join(ENGINES)}")
        return wanted, _import(wanted)
    for name in ENGINES:
        try:
            return name, importlib.import_module(name)
        except ImportError:
            continue
    raise EngineError(
        "no graph engine installed: install PyTensor with "
        f"{INSTALL_HINT['pytensor']} or Aesara 2.9.4 with {INSTALL_HINT['aesara']}"
    )


with quiet():
    name, _lib = _select()
version = _lib.__version__
T = importlib.import_module(f"{name}.tensor")
_special = importlib.import_module(f"{name}.tensor.special")

config = _lib.config
config.floatX = "float32"
floatX = "float32"


def _find_mkl():
    """``(folder, file)`` of the MKL runtime library installed in this environment (``pip install mkl``,
    i.e. ``make install`` with ``RNNLM_BLAS=mkl``, the default), else None.  The wheel ships a versioned
    ``libmkl_rt.so.N`` in ``<prefix>/lib``, which the engines' own BLAS detection misses (it looks in the
    base interpreter's lib folder, for names ending in ``.so``)."""
    import glob
    import sys

    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        folder = os.path.join(prefix, "lib")
        found = sorted(glob.glob(os.path.join(folder, "libmkl_rt.so*")), key=len)
        if found:
            return folder, os.path.basename(found[0])
    return None


def _configure_blas() -> str:
    """Point the C linker at MKL when it is installed here and nobody chose otherwise.

    ``RNNLM_BLAS=auto`` (default): MKL if :func:`_find_mkl` finds it, else the engine's own detection;
    ``RNNLM_BLAS=none``: leave the engine alone.  A ``blas__ldflags`` in ``PYTENSOR_FLAGS`` /
    ``AESARA_FLAGS`` always wins.  The library folder goes into the run path (``-Wl,-rpath``), so no
    ``LD_LIBRARY_PATH`` is needed.  Returns what was configured ("" if nothing)."""
    choice = os.environ.get("RNNLM_BLAS", "auto").strip().lower()
    if choice in ("none", "off", "0", "engine"):
        return ""
    if "blas__ldflags" in os.environ.get(f"{name.upper()}_FLAGS", ""):
        return ""
    mkl = _find_mkl()
    if mkl is None:
        return ""
    folder, lib = mkl
    flags = f"-L{folder} -l:{lib} -Wl,-rpath,{folder}"
    # MKL on the GNU OpenMP runtime (libgomp), the one oneDNN's wheel and rnnlm's kernels use: with Intel's
    # (libiomp5, MKL's default) loaded first, its GOMP_* entry points serve every libgomp caller in the
    # process, and each of their parallel regions then woke sleeping threads (the tutorial's SGD step,
    # 2 vCPUs: its output node 0.53 -> 0.22 ms, the step 0.83 -> 0.55 ms).  Set before MKL is loaded.
    os.environ.setdefault("MKL_THREADING_LAYER", "GNU")
    # Where Intel's runtime is chosen anyway: its threads spin for 200 ms after each call (KMP_BLOCKTIME),
    # on a 2-core machine against NumPy's OpenBLAS threads and XLA's.  Sleep at once instead.
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    try:
        config.blas__ldflags = flags
    except Exception:  # pragma: no cover - an engine version without the option
        return ""
    return flags


blas_configured = _configure_blas()

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def _configure_malloc() -> str:
    """Keep freed memory in the process for the next step, as PyTorch's caching allocator does.

    XLA's CPU runtime and NumPy allocate every step's large buffers (activations, gradients: 4-16 MB each)
    afresh.  glibc serves such blocks with ``mmap`` and hands them back on ``free``, so each step touches
    them anew: a page fault and a zeroed page per 4 KiB.  Measured on a 2-vCPU EPYC (char LSTM, H=256,
    B=64, L=64, one process): 60 -> 46 ms a training step; the bias add over the 16 MB input projection
    took 6.5 ms, 0.7 ms after.  So, on Linux with glibc: no ``mmap`` for large blocks, no trimming of the
    heap, one arena (XLA's worker threads would otherwise keep arenas whose heaps are unmapped when
    emptied).  The process's resident memory then stays at its peak.  ``RNNLM_MALLOC=system`` leaves
    malloc alone.  Returns what was set ("" if nothing)."""
    if os.environ.get("RNNLM_MALLOC", "reuse").strip().lower() in ("system", "off", "0", "none"):
        return ""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return ""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc only (musl has no mallopt)
    except (AttributeError, OSError):
        return ""
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = {"mmap_max": (_M_MMAP_MAX, 0), "trim_threshold": (_M_TRIM_THRESHOLD, 2**31 - 1),
                "arena_max": (_M_ARENA_MAX, 1)}
    done = [f"{k}={v}" for k, (param, v) in settings.items() if mallopt(param, v) == 1]
    return ",".join(done)


malloc_configured = _configure_malloc()

_OPENBLAS_TIMEOUT = 22  # 2^22 cycles, ~1-1.5 ms


def _configure_openblas() -> str:
    """Let NumPy's OpenBLAS workers spin ~1 ms after a product instead of ~0.1 s.

    OpenBLAS's idle workers busy-wait 2^28 cycles after each call (``OPENBLAS_THREAD_TIMEOUT``, read when
    the library loads).  On a 2-core machine that takes a core from whatever runs next: oneDNN's or
    PyTorch's OpenMP team, XLA's threads.  Measured (EPYC, 2 vCPUs; one process; ms per step by the
    timeout's exponent 4 / 22 / 24 / 26 / 28): the C linker's char LSTM ×2, whose softmax runs in NumPy
    between oneDNN's kernels, 73 / 70 / 71 / 80 / 131-146; Aesara's V=8000 GRU, a loop of small NumPy
    products that a sleeping worker must be woken for, 136-141 / 134 / 133 / 126 / 126.  PyTorch's tutorial
    step after NumPy work 5.5 -> 4.4 ms; NumPy's own reference step unchanged (7.4 ms).  So 2^22 cycles:
    the environment variable (for OpenBLAS loaded later and child processes), then NumPy's loaded OpenBLAS
    re-reads it and restarts its thread server (the next product starts it again).  A
    ``OPENBLAS_THREAD_TIMEOUT`` already set is the user's choice and is left alone.  Returns what was set
    ("" if nothing)."""
    if os.environ.get("OPENBLAS_THREAD_TIMEOUT"):
        return ""
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(_OPENBLAS_TIMEOUT)
    setting = f"thread_timeout={_OPENBLAS_TIMEOUT}"
    try:
        from threadpoolctl import ThreadpoolController

        libs = ThreadpoolController().select(internal_api="openblas").lib_controllers
    except Exception:  # no threadpoolctl, or a platform it cannot inspect: later OpenBLAS loads still see it
        return f"{setting} (for OpenBLAS loaded later)"
    restarted = 0
    for lib in libs:
        try:
            read_env, shutdown = lib.dynlib.openblas_read_env, lib.dynlib.blas_thread_shutdown_
        except AttributeError:  # a build without these symbols keeps its timeout
            continue
        read_env()
        shutdown()
        restarted += 1
    return f"{setting} ({restarted} loaded OpenBLAS restarted)"


openblas_configured = _configure_openblas()

shared = _lib.shared
grad = _lib.grad
disconnected_grad = importlib.import_module(f"{name}.gradient").disconnected_grad
softmax = _special.softmax


def log_softmax(a, axis=-1):
    """Log-softmax over ``axis`` in the stable subtract-max form, as plain elementwise and reduction nodes.

    PyTensor 3's ``special.log_softmax`` is a symbolic op whose gradient leaves a ``Softmax`` node that the
    C linker runs in Python (6.9 ms for a 4×8000 block; everything else of the tutorial's SGD step takes
    under 1 ms); written out, forward and gradient compile to C (and fuse under JAX).  The max is a
    constant to the gradient: the result does not depend on the shift.  Aesara keeps its own op (it has
    C code there)."""
    if name != "pytensor":
        return _special.log_softmax(a, axis=axis)
    z = a - disconnected_grad(T.max(a, axis=axis, keepdims=True))
    return z - T.log(T.sum(T.exp(z), axis=axis, keepdims=True))


class Compiled:
    """A compiled function; calls it as the engine's own. The first call (where the JAX linker traces
    the graph) runs under :func:`quiet`; attributes (``maker``, ``trust_input``...) are the engine's."""

    __slots__ = ("fn", "_called")

    def __init__(self, fn):
        self.fn, self._called = fn, False

    def __call__(self, *args):
        if self._called:
            return self.fn(*args)
        with quiet():
            out = self.fn(*args)
        self._called = True
        return out

    def __getattr__(self, item):
        return getattr(self.fn, item)


def function(inputs, outputs=None, **kwargs) -> Compiled:
    """The engine's ``function`` (compile a graph), with the engine's noise silenced (:func:`quiet`)."""
    with quiet():
        return Compiled(_lib.function(inputs, outputs, **kwargs))


def scan(
    fn,
    sequences=None,
    outputs_info=None,
    non_sequences=None,
    n_steps=None,
    truncate_gradient=-1,
    go_backwards=False,
    label=None,
):
    """``scan`` with one calling convention on both engines; returns only the outputs.

    PyTensor ≥ 2.26 can return outputs alone (``return_updates=False``); Aesara always returns
    ``(outputs, updates)``.  Our step functions use no random streams, so updates are always
    empty and are checked, not returned.  ``strict=True``: every parameter must come through
    ``non_sequences``, which is what the JAX linker needs.
    """
    kwargs = dict(
        sequences=sequences,
        outputs_info=outputs_info,
        non_sequences=non_sequences,
        n_steps=n_steps,
        truncate_gradient=truncate_gradient,
        go_backwards=go_backwards,
        strict=True,
        name=label,
    )
    if name == "pytensor":
        kwargs["return_updates"] = False
    with quiet():
        result = _lib.scan(fn, **kwargs)
    if name == "pytensor":
        return result
    outputs, updates = result
    if updates:
        raise RuntimeError("rnnlm step functions must not create scan updates")
    return outputs


def mode_for(linker: str = "c"):
    """The compile mode for a linker name: ``c`` (variable shapes), ``jax`` (static shapes,
    CPU or GPU), ``numba`` (optional), ``py`` (pure Python; debugging)."""
    linker = (linker or "c").lower()
    if linker not in LINKERS:
        raise EngineError(f"unknown linker {linker!r}; choose one of {', '.join(LINKERS)}")
    if linker == "c":
        # PyTensor 3 made Numba the FAST_RUN default; "CVM" is its C linker.  Aesara: FAST_RUN.
        return "CVM" if name == "pytensor" else "FAST_RUN"
    if linker == "py":
        return _lib.compile.mode.Mode(linker="py", optimizer="fast_run")
    if name == "aesara":
        # Aesara's JAX linker cannot convert Scan (aesara#186); its C linker is its only path.
        raise EngineError(f"the {linker!r} linker is not supported on Aesara {version}; use --linker c")
    if linker == "jax":
        try:
            import jax  # noqa: F401  (only to give a clear error)
        except ImportError:
            raise EngineError("the jax linker needs JAX: pip install jax") from None
        _enable_jax_cache()
        return "JAX"
    try:
        import numba  # noqa: F401
    except ImportError:
        raise EngineError("the numba linker needs Numba: pip install numba") from None
    return "NUMBA"


_jax_cache_dir = None


def _enable_jax_cache():
    """JAX's persistent compilation cache, so a second run starts in seconds.

    ``RNNLM_JAX_CACHE=DIR`` chooses the folder (default ``~/.cache/rnnlm/jax``); ``off`` disables.
    """
    global _jax_cache_dir
    if _jax_cache_dir is not None:
        return
    where = os.environ.get("RNNLM_JAX_CACHE", "")
    if where.lower() in ("off", "0", "none"):
        _jax_cache_dir = ""
        return
    import jax

    path = where or os.path.join(os.path.expanduser("~"), ".cache", "rnnlm", "jax")
    try:
        os.makedirs(path, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
        _jax_cache_dir = path
    except (OSError, AttributeError, ValueError):  # an unwritable home: compile without a cache
        _jax_cache_dir = ""


def default_linker() -> str:
    """``jax`` when PyTensor and JAX are both installed, else ``c``."""
    if name == "pytensor":
        try:
            import jax  # noqa: F401

            return "jax"
        except ImportError:
            pass
    return "c"


def select_device(device: str = "cpu") -> str:
    """Point JAX at ``cpu`` or ``gpu``; returns the platform actually used.

    Must run before the first JAX computation.  Asking for a GPU where JAX sees none is an
    :class:`EngineError`, not a silent fallback to the CPU.
    """
    device = (device or "cpu").lower()
    if device not in ("cpu", "gpu", "auto"):
        raise EngineError(f"unknown device {device!r}; choose cpu, gpu or auto")
    try:
        import jax
    except ImportError:
        if device == "gpu":
            raise EngineError("--device gpu needs JAX with CUDA (pip install 'jax[cuda12]')") from None
        return "cpu"
    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")
        return "cpu"
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        if device == "gpu":
            raise EngineError(
                "--device gpu was asked for, but JAX sees no GPU "
                "(install 'jax[cuda12]' on a machine with an NVIDIA GPU, or use --device cpu)"
            )
        return "cpu"
    return "gpu"


def pprint(graph, depth: int = -1, file=None) -> str:
    """Print a symbolic variable or a compiled function as the engine's ``debugprint`` tree (the public
    way to look at a graph); returns the text."""
    import io

    buf = io.StringIO()
    _lib.dprint(graph, depth=depth, file=buf)
    text = buf.getvalue()
    print(text, end="", file=file)
    return text


def scan_loops(fn) -> list:
    """The recurrent loops of a compiled function, in execution order: a list of
    ``{"name", "non_sequence_shapes"}`` (static shapes of the weights each loop carries).

    A loop is a ``Scan`` node or a fused recurrent layer (:class:`rnnlm.engine_ops.RecurrentLayer`, whose
    recurrent weights ``Wt`` are its last input, or oneDNN's ``DnnlLSTM``/``DnnlGRU``; backward nodes are not
    listed)."""
    loops = []
    for node in fn.maker.fgraph.toposort():
        kind = type(node.op).__name__
        if kind == "Scan":
            n = node.op.info.n_non_seqs
            weights = node.inputs[len(node.inputs) - n :]
            shapes = [tuple(v.type.shape) for v in weights]
            loops.append({"name": node.op.name, "non_sequence_shapes": shapes})
        elif kind == "RecurrentLayer":
            loops.append({"name": node.op.label, "non_sequence_shapes": [tuple(node.inputs[-1].type.shape)]})
        elif kind in ("DnnlLSTM", "DnnlGRU"):  # oneDNN's layers (rnnlm.engine_ops.dnnl): W is the third input
            loops.append({"name": node.op.label, "non_sequence_shapes": [tuple(node.inputs[2].type.shape)]})
    return loops


def blas_info() -> str:
    """What the C linker links for BLAS (empty string: none, NumPy fallbacks are used).  MKL installed in
    this environment (``pip install mkl``; ``make install`` does it) is linked by default
    (:func:`_configure_blas`; ``RNNLM_BLAS=none`` leaves the engine's own detection)."""
    try:
        with quiet():  # reading the flag may run the engine's BLAS detection, which warns
            return str(config.blas__ldflags)
    except Exception:  # pragma: no cover - option names differ across versions
        return ""


def describe() -> dict:
    """Engine facts for checkpoints, logs and benchmarks."""
    return {"engine": name, "engine_version": version, "floatX": config.floatX}


def tensor(label: str, dtype: str, shape):
    """A symbolic input of ``dtype``; ``shape`` entries are ints (static, for JAX) or None.

    Static shapes matter only to the JAX linker (it traces with concrete shapes); Aesara runs
    on its C linker, so its inputs are always declared with unknown lengths.
    """
    shape = tuple(shape)
    if name == "pytensor":
        return T.tensor(name=label, dtype=dtype, shape=shape)
    return T.TensorType(dtype, shape=(None,) * len(shape))(label)


# -- devices: raw access for the placement of shared values (rnnlm.devices) ------------------------------
def stored(variable):
    """The value a shared variable holds as it is (a NumPy array, or a JAX array the JAX linker left there),
    without the copy ``get_value`` makes."""
    return variable.container.storage[0]


def store(variable, value) -> None:
    """Put ``value`` (e.g. a JAX array placed on a device mesh) into a shared variable as it is: ``set_value``
    would turn it back into a NumPy array. The caller vouches for its dtype and shape."""
    variable.container.storage[0] = value


def trust_inputs(fn) -> None:
    """Pass a compiled function's inputs through unchecked (PyTensor's ``trust_input``): placed JAX arrays
    then reach the JAX linker as they are (its input check would copy them to NumPy). The caller validates."""
    inner = fn.fn if isinstance(fn, Compiled) else fn
    inner.trust_input = True


def jax_hlo(fn, *args) -> str:
    """The optimized HLO text XLA compiles a JAX-linked function to for these explicit inputs (placed JAX
    arrays: it then shows what the SPMD partitioner did, e.g. the all-reduce of the gradients)."""
    inner = fn.fn if isinstance(fn, Compiled) else fn
    shared = [storage[0] for storage in inner.vm.inputs[len(args):]]
    return inner.vm.jit_fn.lower(*args, *shared).compile().as_text()
