"""oneDNN's kernels as graph nodes, where the oneDNN wheels are installed (``pip install '.[onednn]'``):
the LSTM, GRU and tanh RNN layers, and the output layer's products and softmax.

Why: on a CPU the LSTM's and GRU's step is small products (B×H by H×GH) with elementwise work between
them.  PyTorch's ``nn.LSTM`` runs oneDNN's LSTM kernel (weights packed once for all steps, the gate math
fused with the products); rnnlm's fused layer runs the same steps as NumPy calls on the C linker (3–4×
slower).  :class:`DnnlLSTM` and :class:`DnnlGRU` (oneDNN's ``vanilla_gru``: rnnlm's gates and equations)
call oneDNN's kernels, forward training and backward, a whole layer per call: from the node's ``perform``
through ctypes on the **C and Python linkers** of both engines (on Aesara, whose only path is the C
linker, they replace ``scan`` and its autodiff: LSTM ×2 step 340 → 100 ms), and as XLA FFI handlers on
the **JAX linker** on a CPU (char LSTM ×2 step 88 → 60–66 ms, char GRU ×2 80 → 57 ms, 2 vCPUs).
:class:`DnnlRNN` (``vanilla_rnn`` with tanh) is rnnlm's RNN (char RNN ×2 step 29.9 → 21.8 ms).  The
output layer (:func:`softmax_nll`, used by :mod:`.output` on a CPU) runs oneDNN's sgemm, which ran its
three products faster than XLA's dots and adds each chunk's part of dWo inside the product.  Under XLA
the layers pay wherever the output layer runs on the library's thread too, which is everywhere now
(V=8000, H=128, 2 vCPUs, SGD step ms with / without: fp32 LSTM 40–42 / 50–55; bf16 LSTM 40.4 / 48.6);
split, the kernel's thread and XLA's took turns.

The GRU and LSTM layers are rnnlm's own at float32, and at bf16 where oneDNN's lose (the GRU wherever
oneDNN has bfloat16 instructions, the LSTM where it has AMX): oneDNN 3.2 trains ``vanilla_gru`` on its
reference path at both precisions, so ``native/rnn_own.cc`` builds both layers from oneDNN's matmul
primitive and GEMMs (char GRU layer, T=64, B=64, H=256, forward + backward at bf16 34–38 → 12–15 ms, at
float32 12–15% faster; the LSTM's at float32 even to 5% faster, at bf16 second layer 23–26 → 17 ms; 2 vCPUs
of a Xeon with AMX).  Their math is rnnlm's fused layers (at bf16 states float32; oneDNN's keep them
bfloat16), masked ones too: a padded batch runs them with its mask (``masked=True``), where oneDNN's layers
have none.  :func:`own_layer` says where they run, ``RNNLM_LAYERS=onednn`` runs oneDNN's everywhere (padded
batches then the fused layer) and ``RNNLM_LAYERS=own`` rnnlm's.

One thread of the library's own runs every call, whichever thread asks (Python's, or one of XLA's
workers), and ends after a second without work.  oneDNN's OpenMP is libgomp, which shortens every team's
spin-wait once it manages more threads than there are CPUs: called from XLA's workers (two teams), the
kernel ran 40% slower than alone.  A job already on that thread that calls the library runs in place.
(Benchmarks time PyTorch in a process of its own, :mod:`rnnlm.bench.child`: in this one it ran slower
once these kernels had run.)

Built on first use: ``native/rnn_dnnl.cc``, ``native/rnn_own.cc`` and ``native/output_dnnl.cc`` compiled by
the system's C++ compiler for this CPU (``-march=native``) against the ``onednn-cpu-gomp`` and
``onednn-devel-cpu-gomp`` wheels, into ``~/.cache/rnnlm/native`` (``RNNLM_NATIVE_CACHE`` chooses the
folder); :func:`why_not` says what is missing when it is not available.  ``RNNLM_DNNL=off`` (or
``RNNLM_FUSED_LAYERS=off``) keeps rnnlm's own fused layers and output drivers.

Shapes (float32, time-major): ``x`` (L, B, D) the layer's input; rnnlm's parameters as they are (G gates:
LSTM i, f, o, g; GRU z, r, h̃): ``U`` (G, H, D), ``W`` (G, H, H), ``b`` (G, H); ``h0`` and the LSTM's
``c0`` (B, H).  Outputs: ``y`` (L, B, H) the states, ``hT`` and the LSTM's ``cT`` (B, H), ``ws`` the
workspace the backward pass reads (float32 words).  The library puts the weights in oneDNN's layout (and
the LSTM's gates in its order i, f, c̃, o): done in the graph, their gradients were a chain of
scatter-adds under XLA (3.7 ms of a 62 ms char LSTM step).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from rnnlm import engine
from rnnlm.engine_ops.base import (
    PRECISIONS,
    Apply,
    Op,
    ShapeError,
    T,
    gradient,
    register_jax,
    tensor_type,
    zeros_if_disconnected,
)

__all__ = ["DnnlGRU", "DnnlGRUGrad", "DnnlLSTM", "DnnlLSTMGrad", "DnnlLayer", "DnnlLayerGrad", "DnnlRNN",
           "DnnlRNNGrad", "available", "bf16_amx", "jax_softmax_nll", "layer", "library", "on_worker",
           "softmax_nll", "softmax_nll_sgd", "why_not", "workspace_words", "xla_ready"]

NATIVE = Path(__file__).with_name("native")
SOURCES = (NATIVE / "rnn_dnnl.cc", NATIVE / "output_dnnl.cc", NATIVE / "rnn_own.cc")
HEADERS = (NATIVE / "worker.h", NATIVE / "bf16.h")
# -fopenmp: the kernels' row loops run on the OpenMP team oneDNN uses (the system's libgomp);
# -fno-math-errno lets their exp be vectorised
FLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp", "-fno-math-errno", "-std=c++17",
         "-shared", "-fPIC")
_state: dict = {}  # "lib": the loaded library or None, "why": why not


def _find_onednn():
    """(lib folder, include folder) of the oneDNN wheels in this environment, else None."""
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        lib, inc = Path(prefix) / "lib", Path(prefix) / "include"
        if (lib / "libdnnl.so.3").exists() and (inc / "oneapi" / "dnnl" / "dnnl.hpp").exists():
            return lib, inc
    return None


def _xla_include():
    """jaxlib's folder of XLA FFI headers (the handlers for the JAX linker are built when it exists)."""
    if engine.name != "pytensor":
        return None
    spec = importlib.util.find_spec("jaxlib")
    if spec is None or spec.origin is None:
        return None
    inc = Path(spec.origin).parent / "include"
    return inc if (inc / "xla" / "ffi" / "api" / "ffi.h").exists() else None


def _cpu_flags() -> str:
    """This CPU's feature flags (Linux), "" where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _build() -> Path:
    """Compile the library (once per source, oneDNN location and compiler) and return its path."""
    found = _find_onednn()
    if found is None:
        raise RuntimeError("oneDNN is not installed (pip install -e '.[onednn]')")
    lib_dir, inc_dir = found
    compiler = shutil.which(os.environ.get("CXX", "")) or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler (g++ or c++) to build the oneDNN kernels")
    xla = _xla_include()
    # built for this CPU (-march=native: the softmax's exp in AVX-512 where there is one), so its flags
    # are part of the key, as for a home folder shared by machines of different CPUs
    code = b"".join(f.read_bytes() for f in (*SOURCES, *HEADERS))
    build = f"{lib_dir}|{compiler}|{xla}|{_cpu_flags()}|{FLAGS}"  # the flags too: a new set rebuilds
    key = hashlib.sha256(code + build.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("RNNLM_NATIVE_CACHE") or Path.home() / ".cache" / "rnnlm" / "native")
    target = cache / f"rnnlm_dnnl-{key}.so"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    ffi = ["-DRNNLM_XLA_FFI", "-isystem", str(xla)] if xla else []
    cmd = [compiler, *FLAGS, "-isystem", str(inc_dir), *ffi, *map(str, SOURCES), f"-L{lib_dir}",
           "-l:libdnnl.so.3", f"-Wl,-rpath,{lib_dir}", "-o", tmp]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"building the oneDNN kernels failed: {done.stderr.strip()[-300:]}")
        os.replace(tmp, target)  # atomic: a concurrent build or a crash never leaves half a library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _load():
    lib = ctypes.CDLL(str(_build()))
    for name in ("rnnlm_lstm_workspace_bytes", "rnnlm_gru_workspace_bytes", "rnnlm_rnn_workspace_bytes"):
        getattr(lib, name).restype = ctypes.c_size_t
        getattr(lib, name).argtypes = [ctypes.c_int] * 6  # T, N, D, H, bf16, masked
    lib.rnnlm_error.restype = ctypes.c_char_p
    # T, N, D, H, bf16, then the arrays (native/rnn_dnnl.cc), the mask last: a call with one too few is an
    # error here, not a garbage pointer there
    arrays = {"lstm_forward": 11, "lstm_backward": 20, "gru_forward": 9, "gru_backward": 16, "rnn_forward": 9,
              "rnn_backward": 16}
    for name, n in arrays.items():
        getattr(lib, f"rnnlm_{name}").restype = ctypes.c_int
        getattr(lib, f"rnnlm_{name}").argtypes = [ctypes.c_int] * 5 + [ctypes.c_void_p] * n
    lib.rnnlm_dnnl_on_worker.argtypes = [_JOB, ctypes.c_void_p]
    lib.rnnlm_dnnl_on_worker.restype = None
    lib.rnnlm_softmax_nll.restype = ctypes.c_int
    lib.rnnlm_softmax_nll.argtypes = [ctypes.c_int64] * 4 + [ctypes.c_int] * 2 + [ctypes.c_void_p] * 9
    lib.rnnlm_softmax_nll_sgd.restype = ctypes.c_int
    lib.rnnlm_softmax_nll_sgd.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_float] + [ctypes.c_void_p] * 6
    lib.rnnlm_bf16_amx.restype = ctypes.c_int
    lib.rnnlm_own_layer.restype = ctypes.c_int
    lib.rnnlm_own_layer.argtypes = [ctypes.c_int, ctypes.c_int]
    return lib


_JOB = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def on_worker(fn):
    """``fn`` wrapped to run on the thread that runs oneDNN's kernels (when they are available; else
    ``fn``): other OpenMP work (libgomp's, as oneDNN's) then shares their team instead of starting a
    second one, which shortens every team's spin-wait once libgomp manages more threads than CPUs.  A
    call into the library from ``fn`` runs in place."""
    if not available():
        return fn

    def call(*args, **kwargs):
        box = {}

        def job(_):
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # re-raised on the caller's thread
                box["error"] = exc

        library().rnnlm_dnnl_on_worker(_JOB(job), None)
        if "error" in box:
            raise box["error"]
        return box["value"]

    return call


def library():
    """The loaded library (built on first use), or None (then :func:`why_not` says why)."""
    if "lib" not in _state:
        try:
            _state["lib"], _state["why"] = _load(), ""
        except Exception as exc:  # no wheel, no compiler, a failed build: rnnlm's own layer serves
            _state["lib"], _state["why"] = None, str(exc) or type(exc).__name__
    return _state["lib"]


def why_not() -> str:
    """Why the oneDNN kernels are not available ("" when they are)."""
    if os.environ.get("RNNLM_DNNL", "on").strip().lower() in ("off", "0", "no", "false"):
        return "RNNLM_DNNL=off"
    library()
    return _state["why"]


def available() -> bool:
    """Whether :class:`DnnlLSTM` can run here (the library builds and loads; ``RNNLM_DNNL`` is not off)."""
    return not why_not()


def bf16_amx() -> bool:
    """Whether the output kernel's bf16 products run oneDNN's matmul primitive on AMX tiles (oneDNN reports
    AMX on this CPU; ``ONEDNN_MAX_CPU_ISA`` can say otherwise), else its ``gemm_bf16bf16f32``."""
    return available() and bool(library().rnnlm_bf16_amx())


def own_layer(cell: str, precision: str = "fp32") -> bool:
    """Whether a layer of ``cell`` at ``precision`` runs rnnlm's own (``native/rnn_own.cc``) rather than
    oneDNN's: both at fp32; at bf16 the GRU where oneDNN has bfloat16 instructions, the LSTM where it has
    AMX; ``RNNLM_LAYERS=onednn`` keeps oneDNN's, ``RNNLM_LAYERS=own`` takes rnnlm's (read at each
    call; module docstring)."""
    index = {"gru": 0, "lstm": 1}.get(cell)
    return index is not None and available() and bool(
        library().rnnlm_own_layer(index, int(precision == "bf16")))


def workspace_words(L: int, B: int, D: int, H: int, precision: str = "fp32", cell: str = "lstm",
                    masked: bool = False) -> int:
    n = getattr(library(), f"rnnlm_{cell}_workspace_bytes")(L, B, D, H, int(precision == "bf16"), int(masked))
    if n == 0:
        raise RuntimeError(f"oneDNN {cell.upper()}: {library().rnnlm_error().decode()}")
    return (n + 3) // 4


def _call(name, ints, arrays, what="oneDNN LSTM"):
    lib = library()
    pointers = (None if a is None else a.ctypes.data_as(ctypes.c_void_p) for a in arrays)
    rc = getattr(lib, name)(*ints, *pointers)
    if rc != 0:
        raise RuntimeError(f"{what}: {lib.rnnlm_error().decode()}")


def _f32(*arrays):
    return [np.ascontiguousarray(a, np.float32) for a in arrays]


class DnnlLayer(Op):
    """oneDNN's layer of a cell (:class:`DnnlLSTM`, :class:`DnnlGRU`, :class:`DnnlRNN`): inputs ``x, U,
    W, b, h0``, the LSTM's ``c0`` and, ``masked``, the batch's ``mask`` (L, B); outputs ``y, hT``, the LSTM's
    ``cT``, and ``ws`` (module docstring).  ``precision="bf16"``: bfloat16 x, h and weights into the kernel
    (float32 accumulation, cell state and gradients), as the matrix products of rnnlm's bf16 graphs;
    oneDNN's kernels keep the states in bfloat16 (rnnlm's own GRU and LSTM layers, ``native/rnn_own.cc``,
    float32 as rnnlm's graphs).  ``masked`` (GRU and LSTM, rnnlm's own layers): padded rows, each state
    blended with the last as rnnlm's masked fused layer does, s_t = m·s_t' + (1 − m)·s_{t−1}."""

    __props__ = ("label", "precision", "masked")
    cell, n_states = "", 0  # the subclass's cell and its states (h, or h and c)

    def __init__(self, label=None, precision="fp32", masked=False):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}")
        if masked and self.cell not in ("gru", "lstm"):
            raise ValueError(f"no masked {self.cell.upper()} layer")
        self.label, self.precision, self.masked = str(label or self.cell), precision, bool(masked)
        super().__init__()

    def __str__(self):
        return f"{type(self).__name__}{{{self.label}{', masked' if self.masked else ''}}}"

    def make_node(self, x, U, W, b, *rest):
        x, U, W, b, *rest = (T.as_tensor_variable(v) for v in (x, U, W, b, *rest))
        init = rest[: self.n_states]
        if len(rest) != self.n_states + self.masked:
            raise TypeError(f"{type(self).__name__} takes {self.n_states} initial states"
                            + (" and a mask" if self.masked else ""))
        L, B = x.type.shape[0], x.type.shape[1]
        H = init[0].type.shape[1]
        words = None
        if None not in (L, B, x.type.shape[2], H):
            words = workspace_words(L, B, x.type.shape[2], H, self.precision, self.cell, self.masked)
        outs = [tensor_type("float32", (L, B, H))(), *(s.type() for s in init),
                tensor_type("float32", (words,))()]
        return Apply(self, [x, U, W, b, *rest], outs)

    def perform(self, node, inputs, output_storage):
        x, U, W, b, *rest = _f32(*inputs)
        init, mask = rest[: self.n_states], (rest[-1] if self.masked else None)
        L, B, D = x.shape
        H = init[0].shape[1]
        y = np.empty((L, B, H), np.float32)
        finals = [np.empty((B, H), np.float32) for _ in init]
        ws = np.empty(workspace_words(L, B, D, H, self.precision, self.cell, self.masked), np.float32)
        _call(f"rnnlm_{self.cell}_forward", (L, B, D, H, self.precision == "bf16"),
              (x, U, W, b, *init, y, *finals, ws, mask), f"oneDNN {self.cell.upper()}")
        for storage, value in zip(output_storage, (y, *finals, ws), strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        words = node.outputs[-1].type.shape[0]  # oneDNN's to say: known when the input shapes are static
        if words is None:
            raise ShapeError("the workspace's length")  # then the engine asks the outputs themselves
        x, h0 = shapes[0], shapes[4]
        return [(x[0], x[1], h0[1]), *shapes[4: 4 + self.n_states], (words,)]

    def connection_pattern(self, node):
        n = len(node.outputs)  # no gradient flows through the workspace, nor to the mask
        n_in = len(node.inputs)
        return [[j < n - 1 and not (self.masked and i == n_in - 1) for j in range(n)] for i in range(n_in)]

    def pullback(self, inputs, outputs, output_grads):
        grads = [zeros_if_disconnected(g, o) for g, o in zip(output_grads[:-1], outputs[:-1], strict=True)]
        if not self.masked:
            return list(_GRADS[self.cell](self.precision)(*inputs, *outputs, *grads))
        *layer_inputs, mask = inputs
        dgrads = _GRADS[self.cell](self.precision, masked=True)(*layer_inputs, *outputs, *grads, mask)
        return [*dgrads, gradient.disconnected_type()]

    L_op = pullback


class DnnlLSTM(DnnlLayer):
    """oneDNN's LSTM layer: inputs ``x, U, W, b, h0, c0``; outputs ``y, hT, cT, ws``."""

    cell, n_states = "lstm", 2


class DnnlGRU(DnnlLayer):
    """oneDNN's GRU layer (``vanilla_gru``: rnnlm's gates and equations): inputs ``x, U, W, b, h0``;
    outputs ``y, hT, ws``."""

    cell, n_states = "gru", 1


class DnnlRNN(DnnlLayer):
    """oneDNN's tanh RNN layer (``vanilla_rnn``: rnnlm's RNN, s_t = tanh(U x_t + W s_{t-1} + b)): inputs
    ``x, U, W, b, h0``; outputs ``y, hT, ws``."""

    cell, n_states = "rnn", 1


class DnnlLayerGrad(Op):
    """The backward pass of :class:`DnnlLayer`: inputs the layer's inputs (but the mask), its outputs and
    the gradients of its outputs but ``ws``, and ``masked`` the mask; outputs the gradients of its inputs
    (float32 at either precision)."""

    __props__ = ("precision", "masked")
    cell, n_inputs = "", 0  # the subclass's cell and its layer's inputs (x, U, W, b and the states)

    def __init__(self, precision="fp32", masked=False):
        self.precision, self.masked = precision, bool(masked)
        super().__init__()

    def make_node(self, *inputs):
        inputs = [T.as_tensor_variable(v) for v in inputs]
        n = self.n_inputs
        want = 3 * n - 5 + self.masked  # inputs; y, the last states, ws; the gradients of y and the states
        if len(inputs) != want:
            raise TypeError(f"{type(self).__name__} takes {want} inputs")
        return Apply(self, inputs, [v.type() for v in inputs[:n]])

    def infer_shape(self, fgraph, node, shapes):
        return list(shapes[: self.n_inputs])

    def perform(self, node, inputs, output_storage):
        arrays = _f32(*inputs)
        arrays, mask = (arrays[:-1], arrays[-1]) if self.masked else (arrays, None)
        x, h0 = arrays[0], arrays[4]
        L, B, D = x.shape
        outs = [np.empty_like(a) for a in arrays[: self.n_inputs]]
        _call(f"rnnlm_{self.cell}_backward", (L, B, D, h0.shape[1], self.precision == "bf16"),
              (*arrays, *outs, mask), f"oneDNN {self.cell.upper()}")
        for storage, value in zip(output_storage, outs, strict=True):
            storage[0] = value

    def pullback(self, inputs, outputs, output_grads):
        why = f"second derivatives of the oneDNN {self.cell.upper()}"
        return [gradient.grad_not_implemented(self, i, v, why) for i, v in enumerate(inputs)]

    L_op = pullback


class DnnlLSTMGrad(DnnlLayerGrad):
    cell, n_inputs = "lstm", 6


class DnnlGRUGrad(DnnlLayerGrad):
    cell, n_inputs = "gru", 5


class DnnlRNNGrad(DnnlLayerGrad):
    cell, n_inputs = "rnn", 5


_GRADS = {"lstm": DnnlLSTMGrad, "gru": DnnlGRUGrad, "rnn": DnnlRNNGrad}
_LAYERS = {"lstm": DnnlLSTM, "gru": DnnlGRU, "rnn": DnnlRNN}


def xla_ready() -> bool:
    """Whether the JAX linker can call the kernel: the library has its XLA FFI handlers (built where
    jaxlib's headers are) and JAX runs on the CPU; registers the handlers with XLA on first use."""
    if "xla" in _state:
        return _state["xla"]
    lib, ok = library(), False
    if lib is not None and hasattr(lib, "rnnlm_lstm_forward_xla"):
        import jax

        if jax.default_backend() == "cpu":
            for name in ("rnnlm_lstm_forward_xla", "rnnlm_lstm_backward_xla", "rnnlm_gru_forward_xla",
                         "rnnlm_gru_backward_xla", "rnnlm_rnn_forward_xla", "rnnlm_rnn_backward_xla",
                         "rnnlm_lstm_forward_masked_xla", "rnnlm_lstm_backward_masked_xla",
                         "rnnlm_gru_forward_masked_xla", "rnnlm_gru_backward_masked_xla",
                         "rnnlm_softmax_nll_xla", "rnnlm_softmax_nll_grads_xla"):
                jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
            ok = True
    _state["xla"] = ok
    return ok


def _jax_forward(op):
    import jax
    import jax.numpy as jnp

    def forward(x, U, W, b, *rest):
        init = rest[: op.n_states]
        (L, B, D), H = x.shape, init[0].shape[1]
        words = workspace_words(L, B, D, H, op.precision, op.cell, op.masked)
        out = [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((L, B, H), *((B, H) for _ in init), (words,))]
        name = f"rnnlm_{op.cell}_forward{'_masked' if op.masked else ''}_xla"
        return jax.ffi.ffi_call(name, out)(x, U, W, b, *rest, bf16=np.int32(op.precision == "bf16"))

    return forward


def _jax_backward(op):
    import jax
    import jax.numpy as jnp

    def backward(*inputs):
        out = [jax.ShapeDtypeStruct(v.shape, jnp.float32) for v in inputs[: op.n_inputs]]
        bf16 = np.int32(op.precision == "bf16")
        name = f"rnnlm_{op.cell}_backward{'_masked' if op.masked else ''}_xla"
        return jax.ffi.ffi_call(name, out)(*inputs, bf16=bf16)

    return backward


for _op in (DnnlLSTM, DnnlGRU, DnnlRNN):
    register_jax(_op, _jax_forward)
for _op in (DnnlLSTMGrad, DnnlGRUGrad, DnnlRNNGrad):
    register_jax(_op, _jax_backward)


def layer(cell, x, U, W, b, init, label=None, precision="fp32", mask=None):
    """One LSTM, GRU or tanh RNN layer through oneDNN, from rnnlm's parameters: ``x`` (L, B, D); ``U`` (G, H,
    D), ``W`` (G, H, H), ``b`` (G, H) in rnnlm's gate order (LSTM i, f, o, g; GRU z, r, h̃); ``init`` the
    list of initial states (B, H): ``h0`` and the LSTM's ``c0``; ``mask`` (L, B) a padded batch's (GRU and
    LSTM: rnnlm's own layers), None for a full one.  Returns the states ``S`` (L, B, H) and the last state
    (and the LSTM's last cell)."""
    masked = mask is not None
    y, *finals, _ = _LAYERS[cell](label, precision, masked)(x, U, W, b, *init, *([mask] if masked else []))
    return (y, *finals)


def softmax_nll(h, W, c, y, w, rows: int, by_rows: bool, grads: bool, bf16: bool = False):
    """The output layer's kernel (``native/output_dnnl.cc``) on NumPy arrays: ``h`` (N, K); ``W`` the
    weights as rows (C, K) when ``by_rows``, else as Wo (K, C); ``c`` (C,); ``y`` (N,) ids in [0, C);
    ``w`` (N,); ``rows`` per chunk; ``bf16``: the products' operands rounded to bfloat16 (float32
    accumulation).  Returns ``nll`` (N,) and, with ``grads``, ``dh`` (N, K), ``dW`` in ``W``'s layout and
    ``dc`` (C,) (float32)."""
    h, W, c, w = _f32(h, W, c, w)
    y = np.ascontiguousarray(y, np.int32)
    (N, K), C = h.shape, W.shape[0 if by_rows else 1]
    nll = np.empty(N, np.float32)
    outs = (np.empty_like(h), np.empty_like(W), np.empty_like(c)) if grads else (None, None, None)
    _call("rnnlm_softmax_nll", (N, K, C, rows, int(by_rows), int(bf16)), (h, W, c, y, w, nll, *outs),
          "oneDNN output layer")
    return (nll, *outs) if grads else nll


def softmax_nll_sgd(h, V, y, w, lr: float):
    """The output layer's loss and an SGD step on its weights (``native/output_dnnl.cc``, few rows): ``h``
    (N, K); ``V`` (C, K) the weights as rows, float32 and C-contiguous, **updated in place**: ``V −= lr·dV``
    with ``dV`` the gradient of ``Σ w·nll`` (no bias); ``y`` (N,) ids in [0, C); ``w`` (N,).  Returns
    ``nll`` (N,) and ``dh`` (N, K), both of the weights before the step."""
    if V.dtype != np.float32 or not V.flags.c_contiguous or not V.flags.writeable:
        raise ValueError("softmax_nll_sgd updates V in place: it takes a writeable C-contiguous float32 V")
    h, w = _f32(h, w)
    y = np.ascontiguousarray(y, np.int32)
    (N, K), C = h.shape, V.shape[0]
    nll, dh = np.empty(N, np.float32), np.empty_like(h)
    _call("rnnlm_softmax_nll_sgd", (N, K, C, float(lr)), (h, V, y, w, nll, dh), "oneDNN output layer")
    return nll, dh


def jax_softmax_nll(h, W, c, y, w, rows: int, by_rows: bool, grads: bool, bf16: bool = False):
    """:func:`softmax_nll` inside a JAX function on a CPU (XLA FFI; needs :func:`xla_ready`)."""
    import jax
    import jax.numpy as jnp

    f32 = jnp.float32
    out = [jax.ShapeDtypeStruct((h.shape[0],), f32)]
    if grads:
        out += [jax.ShapeDtypeStruct(v.shape, f32) for v in (h, W, c)]
    name = "rnnlm_softmax_nll_grads_xla" if grads else "rnnlm_softmax_nll_xla"
    args = (h.astype(f32), W.astype(f32), c.astype(f32), y.astype(jnp.int32), w.astype(f32))
    res = jax.ffi.ffi_call(name, out)(*args, rows=np.int64(rows), by_rows=np.int32(by_rows),
                                       bf16=np.int32(bf16))
    return res if grads else res[0]
