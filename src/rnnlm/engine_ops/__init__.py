"""The engine layer's own graph ops: nodes with hand-written gradients where ``scan`` + autodiff is slow.

- :mod:`.base`: what they share (array backends, bfloat16, :class:`MatMul` at a chosen precision).
- :mod:`.recurrent`: a whole rnn/gru/lstm layer as one node (:class:`RecurrentLayer`).
- :mod:`.output`: the output layer and its loss as one node (:class:`SoftmaxNLL`), chunked over rows;
  with an SGD step on its weights made in place (:class:`SoftmaxNLLSGD`, the tutorial's ``sgd_step``).
- :mod:`.rows`: rows of a matrix by index (embeddings), whose gradient adds the rows as a sparse product.
- :mod:`.dnnl`: oneDNN's LSTM, GRU and RNN layers as one node each (:class:`~.dnnl.DnnlLSTM`,
  :class:`~.dnnl.DnnlGRU`, :class:`~.dnnl.DnnlRNN`) and the output layer's kernel, where the oneDNN wheels
  are installed: a C++ library built on first use, called through ctypes (C linker) and XLA FFI (JAX
  linker).

Every op runs on every linker: a NumPy ``perform`` (C and Python linkers) and a JAX implementation
registered with PyTensor's JAX dispatcher.  Only ``engine`` (and ``errors``) is imported from rnnlm: this
package belongs to the engine layer.
"""

from __future__ import annotations

import os

from rnnlm import engine
from rnnlm.engine_ops import dnnl
from rnnlm.engine_ops.base import PRECISIONS, MatMul, check_precision, matmul, round_bf16
from rnnlm.engine_ops.output import SoftmaxNLL, SoftmaxNLLSGD, softmax_nll, softmax_nll_sgd
from rnnlm.engine_ops.recurrent import (
    GATES,
    RecurrentLayer,
    RecurrentLayerGrad,
    jax_backward,
    jax_forward,
    numpy_backward,
    numpy_forward,
    recurrent_layer,
)
from rnnlm.engine_ops.rows import AddRows, TakeRows, take_rows

__all__ = ["GATES", "PRECISIONS", "AddRows", "MatMul", "RecurrentLayer", "RecurrentLayerGrad", "SoftmaxNLL",
           "SoftmaxNLLSGD", "TakeRows", "available", "check_precision", "dnnl", "dnnl_lstm", "fused_output",
           "fused_sgd", "jax_backward", "jax_forward", "matmul", "numpy_backward", "numpy_forward",
           "recurrent_layer", "round_bf16", "softmax_nll", "softmax_nll_sgd", "take_rows"]


def _switched_off() -> bool:
    return os.environ.get("RNNLM_FUSED_LAYERS", "on").strip().lower() in ("off", "0", "no", "false")


def available() -> bool:
    """Whether models run each recurrent layer as one fused node: on PyTensor (every linker), unless
    ``RNNLM_FUSED_LAYERS=off`` (then every layer is a ``scan``, as on Aesara, where the layer ops are
    not tested)."""
    return not _switched_off() and engine.name == "pytensor"


def fused_output() -> bool:
    """Whether models compute the output layer and its loss as one :class:`SoftmaxNLL` node: on both
    engines, unless ``RNNLM_FUSED_LAYERS=off`` (then plain logits, log-softmax and autodiff)."""
    return not _switched_off()


def fused_sgd() -> bool:
    """Whether the tutorial's ``RNN.sgd_step`` makes its output layer and V's SGD step as one node
    (:class:`SoftmaxNLLSGD`): where the fused output layer is (PyTensor), and on Aesara where oneDNN's
    kernel runs it (there plain nodes beat the NumPy drivers for the window's few rows)."""
    return available() or (fused_output() and dnnl.available())


def dnnl_lstm(linker: str) -> bool:
    """Whether LSTM, GRU and RNN layers run as oneDNN's kernels (:mod:`.dnnl`) on ``linker``: the C and Python
    linkers (its ``perform``) of either engine and, on a CPU, the JAX linker (XLA FFI handlers) — unless
    ``RNNLM_FUSED_LAYERS=off``, where the library builds."""
    if linker not in ("c", "py", "jax") or _switched_off():  # (asked at every step: cheap tests first)
        return False
    return dnnl.available() and (linker != "jax" or dnnl.xla_ready())
