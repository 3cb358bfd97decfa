"""What the engine layer's own graph ops share: the base classes of the engine in use, the array
backends their math runs on (NumPy for ``perform``, ``jax.numpy`` for the JAX linker), bfloat16 rounding,
and :class:`MatMul`, the matrix product at a chosen precision.

``precision="bf16"``: a product's operands are rounded to bfloat16 and it accumulates in float32 (on the
JAX linker a real bf16 dot; in NumPy the rounding is emulated); everything else stays float32.
"""

from __future__ import annotations

import importlib

import numpy as np

from rnnlm import engine
from rnnlm.errors import ConfigError

__all__ = ["PRECISIONS", "MatMul", "check_precision", "matmul", "register_jax", "round_bf16"]

PRECISIONS = ("fp32", "bf16")  # of the matrix products; bf16: bfloat16 operands, float32 accumulation

Op = importlib.import_module(f"{engine.name}.graph.op").Op
Apply = importlib.import_module(f"{engine.name}.graph.basic").Apply
gradient = importlib.import_module(f"{engine.name}.gradient")
ShapeError = importlib.import_module(f"{engine.name}.tensor.exceptions").ShapeError
T = engine.T


class Backend:
    """The few array functions the cell math needs: NumPy (float32 throughout) or jax.numpy; ``low``
    (a function or None): rounds a matrix product's operands to bfloat16 (``precision="bf16"``)."""

    def __init__(self, xp, sigmoid, low=None):
        self.xp, self.sigmoid, self.low = xp, sigmoid, low

    def concat(self, parts):
        return self.xp.concatenate(parts, axis=-1)

    def dot(self, a, b):
        if self.low is None:
            return self.xp.dot(a, b)
        if self.xp is np:
            return np.dot(self.low(a), self.low(b))
        return self.xp.dot(self.low(a), self.low(b), preferred_element_type=np.float32)


def np_sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # stays float32, cannot overflow


def round_bf16(x):
    """float32 -> the nearest bfloat16 value (ties to even), kept as float32: what a bf16 operand holds."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    u = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return u.view(np.float32)


def jax_bf16(x):
    import jax.numpy as jnp

    return x.astype(jnp.bfloat16)


def numpy_backend(precision):
    return Backend(np, np_sigmoid, round_bf16 if precision == "bf16" else None)


def jax_backend(precision):
    import jax
    import jax.numpy as jnp

    return Backend(jnp, jax.nn.sigmoid, jax_bf16 if precision == "bf16" else None)


def tensor_type(dtype, shape):
    return T.TensorType(dtype, shape=tuple(shape))


def zeros_if_disconnected(g, like):
    return T.zeros_like(like) if isinstance(g.type, gradient.DisconnectedType) else g


class MatMul(Op):
    """``a · b`` for 2-D float32 ``a`` (M, K) and ``b`` (K, N) with bfloat16 operands and float32
    accumulation (``precision="bf16"``; the output is float32).  Its gradient is two more of the same
    (``g · bᵀ``, ``aᵀ · g``), so the backward GEMMs run at the same precision, as under PyTorch's autocast."""

    __props__ = ("precision",)

    def __init__(self, precision="bf16"):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}")
        self.precision = precision
        super().__init__()

    def make_node(self, a, b):
        a, b = T.as_tensor_variable(a), T.as_tensor_variable(b)
        if a.type.ndim != 2 or b.type.ndim != 2:
            raise TypeError("MatMul takes two matrices")
        return Apply(self, [a, b], [tensor_type(a.type.dtype, (a.type.shape[0], b.type.shape[1]))()])

    def perform(self, node, inputs, output_storage):
        a, b = inputs
        output_storage[0][0] = numpy_backend(self.precision).dot(a, b).astype(node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0], shapes[1][1])]

    def pullback(self, inputs, outputs, output_grads):
        a, b = inputs
        (g,) = output_grads
        return [self(g, b.T), self(a.T, g)]

    L_op = pullback


def check_precision(precision: str, linker: str) -> None:
    """Refuse a precision that is unknown, or bf16 on a linker without bf16 products (all but jax)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}: {precision!r}")
    if precision != "fp32" and linker != "jax":
        raise ConfigError(f"--precision {precision} needs the jax linker (and PyTensor, full BPTT)")


def matmul(a, b, precision="fp32"):
    """``a · b`` in the graph: ``T.dot`` at fp32, :class:`MatMul` at bf16."""
    return T.dot(a, b) if precision == "fp32" else MatMul(precision)(a, b)


def register_jax(op_type, implementation):
    """Make ``implementation(op)`` -- a function of the node's input arrays -- the JAX translation of
    ``op_type``.  Without JAX (or on Aesara) nothing is registered: ``perform`` serves every linker."""
    if engine.name != "pytensor":
        return
    try:
        dispatch = importlib.import_module("pytensor.link.jax.dispatch")
    except ImportError:
        return

    @dispatch.jax_funcify.register(op_type)
    def _funcify(op, node=None, **kwargs):
        return implementation(op)


register_jax(MatMul, lambda op: jax_backend(op.precision).dot)
