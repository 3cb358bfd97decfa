"""The output layer and its loss as one node: :class:`SoftmaxNLL`, chunked over rows.

Autodiff of ``−log softmax(h·Wo + c)[y]`` makes the (N, C) logits, keeps them for the backward pass and
walks them about seven times (max, exp, sum, the gather of the targets, and as many again for the
gradient).  With C = 8000 and N = 2048 that is 65 MB a pass, far outside the caches, and it costs as much
as the three matrix products.  This op takes the rows a chunk at a time (about 8 MB of logits, so the
chunk stays in the last-level cache) and, for each chunk, makes the logits, their log-sum-exp, the
targets' negative log-likelihoods and -- since the gradient of a weighted sum of NLLs is known in the
forward pass (``w_i · (softmax_i − onehot(y_i))``) -- the gradients ``dh``, ``dWo`` and ``dc``; the
logits are never stored.

Inputs: ``h`` (N, K) features, ``Wo`` (K, C) output weights, ``c`` (C,) bias, ``y`` (N,) int targets,
``w`` (N,) row weights (the mask: 0 rows add nothing).  Outputs: ``loss`` () = Σ_i w_i·nll_i, ``nll`` (N,)
the unweighted per-row NLLs, and with ``grads=True`` also ``dh`` (N, K), ``dWo`` (K, C), ``dc`` (C,), the
gradients of ``loss``.  Its gradient (``pullback``) scales those by the upstream gradient of ``loss``; when
``nll`` has an upstream gradient too, or the node was built with ``grads=False``, it applies a
``grads=True`` node to the per-row coefficients ``g_loss·w + g_nll`` instead (one more forward pass).
``precision="bf16"``: the three matrix products take bfloat16 operands (float32 accumulation).  On a GPU
the JAX driver takes all rows as one chunk (:func:`chunk_rows`).

On a CPU, where oneDNN's library builds (:mod:`.dnnl`), both drivers hand the whole op to its kernel
(``native/output_dnnl.cc``): oneDNN's sgemm for the products, which adds each chunk's part of ``dWo``
inside the product, and one loop per row for the softmax.  The op at N·K·C = 2048·128·8000 took 39–40 ms
under XLA and 31–34 ms so (2 vCPUs); NumPy's BLAS is slower still.  At bf16 it rounds the products'
operands as the drivers do and runs oneDNN's bf16 products.  ``RNNLM_DNNL=off`` keeps the drivers below.
"""

from __future__ import annotations

import numpy as np

from rnnlm.engine_ops import dnnl
from rnnlm.engine_ops.base import (
    PRECISIONS,
    Apply,
    Op,
    T,
    gradient,
    jax_backend,
    numpy_backend,
    register_jax,
    tensor_type,
)

__all__ = ["CHUNK_ELEMENTS", "SoftmaxNLL", "SoftmaxNLLSGD", "chunk_rows", "softmax_nll", "softmax_nll_sgd"]

CHUNK_ELEMENTS = 1 << 21  # logits per chunk: 8 MB of float32 (measured best at C=8000: 256-512 rows)


def chunk_rows(n_classes: int, n_features: int = 0, platform: str = "cpu") -> int | None:
    """Rows per chunk for ``n_classes`` columns and ``n_features`` (K) inputs.  On a CPU the largest
    power of two not above max(CHUNK_ELEMENTS / C, K / 2, 8): a chunk's logits stay in the last-level
    cache, and a chunk has enough rows that adding its (K, C) part of dWo (a pass over dWo) stays small
    beside its products (measured, N·K·C: 2048·128·8000 best at 256–512 rows, 2048·512·8000 at 256,
    1024·1024·10000 at 256–512, 1024·256·50000 at 128).  On an accelerator (``platform`` as
    ``jax.default_backend()`` names it) None: one chunk, since its memory makes the passes cheap and
    chunk-sized products would leave it idle."""
    if platform != "cpu":
        return None
    rows = max(8, CHUNK_ELEMENTS // max(int(n_classes), 1), int(n_features) // 2)
    return 1 << (rows.bit_length() - 1)


def _chunk(bk, h, Wo, WoT, c, y, w, grads):
    """One chunk: ``(nll (n,), p (n, C))``, ``p = w·(softmax − onehot(y))`` the gradient of the chunk's
    weighted NLL with respect to its logits (None without grads).  ``c=None``: the bias is in ``Wo``."""
    xp = bk.xp
    z = bk.dot(h, Wo) if c is None else bk.dot(h, Wo) + c
    m = z.max(axis=1, keepdims=True)
    rows = xp.arange(z.shape[0])
    zy = z[rows, y]
    e = xp.exp(z - m)
    s = e.sum(axis=1)
    nll = xp.log(s) + m[:, 0] - zy
    if not grads:
        return nll, None
    p = e * (w / s)[:, None]  # w·softmax
    if xp is np:
        p[rows, y] -= w  # one target per row: no repeated index
    else:
        p = p.at[rows, y].add(-w)
    return nll, p


def _kernel(h, Wo, c, w) -> bool:
    """Whether the op goes to oneDNN's kernel: float32 arrays and the library available — at every shape
    and both precisions.  Narrow logits gain too (2 vCPUs, char step, 4096·256·65: LSTM ×1 26.7 → 25.3
    ms, GRU ×2 47.3 → 45.9 ms; C linker LSTM ×1 30 → 27 ms, GRU ×1 24–28 → 21–22 ms), and bf16's
    products run at twice sgemm's rate (2048·128·8000: 13.8 against 29.4 ms, avx512_bf16)."""
    return all(a.dtype == np.float32 for a in (h, Wo, c, w)) and dnnl.available()


def _loss(w, nll, dtype):
    """``Σ w·nll`` summed in float64 (NumPy drivers), as a 0-d array of ``dtype``."""
    return np.asarray(np.dot(w.astype(np.float64), nll.astype(np.float64)), dtype)


def numpy_softmax_nll(op, h, Wo, c, y, w):
    """The NumPy driver (``perform``): oneDNN's kernel, else a Python loop over chunks.  ``dWo`` is made
    in ``Wo``'s own layout (``Wo`` is often ``Vᵀ``, a transposed view), so that the update of ``V`` reads
    it in order."""
    if _kernel(h, Wo, c, w):
        if y.size and (y.min() < 0 or y.max() >= Wo.shape[1]):
            raise IndexError(f"a target is outside the {Wo.shape[1]} classes")
        by_rows = Wo.flags.f_contiguous and not Wo.flags.c_contiguous
        outs = dnnl.softmax_nll(h, Wo.T if by_rows else Wo, c, y, w, chunk_rows(Wo.shape[1], Wo.shape[0]),
                                by_rows, op.grads, op.precision == "bf16")
        nll = outs[0] if op.grads else outs
        loss = _loss(w, nll, h.dtype)
        if not op.grads:
            return loss, nll
        dh, dW, dc = outs[1:]
        return loss, nll, dh, dW.T if by_rows else dW, dc
    bk = numpy_backend(op.precision)
    N = h.shape[0]
    nll = np.empty(N, h.dtype)
    dh = np.empty_like(h) if op.grads else None
    dWo = dc = None
    WoT = Wo.T
    by_columns = Wo.flags.f_contiguous and not Wo.flags.c_contiguous
    step = chunk_rows(Wo.shape[1], Wo.shape[0])
    for a in range(0, N, step):
        b = min(N, a + step)
        nll[a:b], p = _chunk(bk, h[a:b], Wo, WoT, c, y[a:b], w[a:b], op.grads)
        if not op.grads:
            continue
        dh[a:b] = bk.dot(p, WoT)
        part = bk.dot(p.T, h[a:b]).T if by_columns else bk.dot(h[a:b].T, p)
        if dWo is None:
            dWo, dc = part, p.sum(axis=0)
        else:
            dWo += part
            dc += p.sum(axis=0)
    if op.grads and dWo is None:  # no rows
        dWo, dc = np.zeros_like(Wo), np.zeros_like(c)
    loss = _loss(w, nll, h.dtype)
    return (loss, nll, dh, dWo, dc) if op.grads else (loss, nll)


def jax_softmax_nll(op, h, Wo, c, y, w):
    """The JAX driver: oneDNN's kernel through XLA FFI where it serves (module docstring), else ``lax.scan``
    over chunks (rows padded with weight 0 to a whole chunk).  At fp32 the bias is a last row of ``Wo``
    against a column of ones in ``h``: the products then add it, and ``dc``
    comes out of the ``dWo`` product, saving two passes over each chunk's logits (N·K·C = 2048·128·8000:
    the op 42.5 → 40 ms) for one copy of ``h``, so only where the logits are wider than ``h`` (a char
    model's 4096·256·65 lost 0.3–0.5 ms to the copy), and on a CPU (a GPU makes the passes cheap and
    prefers products whose K is a multiple of 8).  At bf16 it would round the bias: added after."""
    import jax
    import jax.numpy as jnp

    bk = jax_backend(op.precision)
    N, K = h.shape
    platform = jax.default_backend()
    if platform == "cpu" and N and _kernel(h, Wo, c, w) and dnnl.xla_ready():
        # Wo is most often Vᵀ: the kernel takes V's rows, and XLA cancels the two transposes
        step = chunk_rows(Wo.shape[1], K)
        outs = dnnl.jax_softmax_nll(h, Wo.T, c, y, w, step, True, op.grads, op.precision == "bf16")
        nll = outs[0] if op.grads else outs
        loss = jnp.dot(w, nll)
        return (loss, nll, outs[1], outs[2].T, outs[3]) if op.grads else (loss, nll)
    if bk.low is not None:
        Wo = bk.low(Wo)  # once, not per chunk
    WoT = Wo.T  # dh's product (without a bias row)
    if bk.low is None and Wo.shape[1] > K and platform == "cpu":
        Wo, h, c = jnp.concatenate([Wo, c[None, :]]), jnp.concatenate([h, jnp.ones((N, 1), h.dtype)], 1), None

    def grads(h_c, p):  # the chunk's dh, and its part of dWo and dc (no dc where it is dWo's last row)
        return bk.dot(p, WoT), (bk.dot(h_c.T, p), () if c is None else p.sum(axis=0))

    step = chunk_rows(Wo.shape[1], K, platform)
    if step is None or N <= step:
        nll, p = _chunk(bk, h, Wo, WoT, c, y, w, op.grads)
        if op.grads:
            dh, acc = grads(h, p)
    else:
        n = -(-N // step)
        pad = n * step - N
        hs = jnp.pad(h, ((0, pad), (0, 0))).reshape(n, step, h.shape[1])
        ys = jnp.pad(y, (0, pad)).reshape(n, step)
        ws = jnp.pad(w, (0, pad)).reshape(n, step)

        def body(acc, xs):
            h_c, y_c, w_c = xs
            nll_c, p = _chunk(bk, h_c, Wo, WoT, c, y_c, w_c, op.grads)
            if not op.grads:
                return acc, (nll_c, ())
            dh_c, part = grads(h_c, p)
            return jax.tree_util.tree_map(jnp.add, acc, part), (nll_c, dh_c)

        acc = (jnp.zeros(Wo.shape, jnp.float32), () if c is None else jnp.zeros_like(c)) if op.grads else ()
        acc, (nll, dh) = jax.lax.scan(body, acc, (hs, ys, ws))
        nll = nll.reshape(-1)[:N]
        if op.grads:
            dh = dh.reshape(n * step, K)[:N]
    loss = jnp.dot(w, nll)
    if not op.grads:
        return loss, nll
    dWo, dc = acc
    if c is None:  # the bias row's gradient is dc
        dWo, dc = dWo[:K], dWo[K]
    return loss, nll, dh, dWo, dc


class SoftmaxNLL(Op):
    """``(loss, nll[, dh, dWo, dc]) = SoftmaxNLL(grads, precision)(h, Wo, c, y, w)``; see the module."""

    __props__ = ("grads", "precision")

    def __init__(self, grads=True, precision="fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}")
        self.grads, self.precision = bool(grads), precision
        super().__init__()

    def make_node(self, h, Wo, c, y, w):
        h, Wo, c, y, w = (T.as_tensor_variable(v) for v in (h, Wo, c, y, w))
        if (h.type.ndim, Wo.type.ndim, c.type.ndim, y.type.ndim, w.type.ndim) != (2, 2, 1, 1, 1):
            raise TypeError("SoftmaxNLL takes h (N, K), Wo (K, C), c (C,), y (N,), w (N,)")
        dt = h.type.dtype
        outs = [tensor_type(dt, ())(), tensor_type(dt, (h.type.shape[0],))()]
        if self.grads:
            outs += [h.type(), Wo.type(), c.type()]
        return Apply(self, [h, Wo, c, y, w], outs)

    def perform(self, node, inputs, output_storage):
        for storage, value in zip(output_storage, numpy_softmax_nll(self, *inputs), strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        h, Wo, c = shapes[:3]
        return [(), (h[0],), h, Wo, c] if self.grads else [(), (h[0],)]

    def connection_pattern(self, node):
        n_out = len(node.outputs)
        # y gets no gradient; w only through loss; h, Wo, c through loss and nll (and, formally, through
        # the gradient outputs, whose own gradient is refused below)
        return [[True] * n_out, [True] * n_out, [True] * n_out, [False] * n_out,
                [j == 0 for j in range(n_out)]]

    def pullback(self, inputs, outputs, output_grads):
        h, Wo, c, y, w = inputs
        disconnected = [isinstance(g.type, gradient.DisconnectedType) for g in output_grads]
        if not all(disconnected[2:]):
            return [gradient.grad_not_implemented(self, i, v, "second derivatives of SoftmaxNLL")
                    for i, v in enumerate(inputs)]
        g_loss = T.zeros((), dtype=h.dtype) if disconnected[0] else output_grads[0]
        if self.grads and disconnected[1]:
            dh, dWo, dc = (g_loss * o for o in outputs[2:])
        else:
            coef = g_loss * w if disconnected[1] else g_loss * w + output_grads[1]
            dh, dWo, dc = SoftmaxNLL(True, self.precision)(h, Wo, c, y, coef)[2:]
        return [dh, dWo, dc, gradient.disconnected_type(), g_loss * outputs[1]]

    L_op = pullback


def softmax_nll(h, Wo, c, y, w, grads=True, precision="fp32"):
    """``(loss, nll)`` of the rows of ``h`` (N, K) under ``softmax(h·Wo + c)``; see the module."""
    outs = SoftmaxNLL(grads, precision)(h, Wo, c, y, w)
    return outs[0], outs[1]


register_jax(SoftmaxNLL, lambda op: lambda h, Wo, c, y, w: jax_softmax_nll(op, h, Wo, c, y, w))


class SoftmaxNLLSGD(Op):
    """``(loss, nll, dh, V_new) = SoftmaxNLLSGD()(h, V, y, w, lr)``: the output layer without a bias
    (``o = softmax(h·Vᵀ)``, the tutorial's ``o_t = softmax(V s_t)``), its loss ``Σ w·nll`` and one SGD step
    on its weights: ``V_new = V − lr·∂loss/∂V``, made **in place** of ``V`` (C, K), for a function that
    updates ``V`` to ``V_new``.  ``dh`` (N, K) is the loss's gradient with respect to ``h``, as
    :class:`SoftmaxNLL`'s; ``nll`` (N,) and ``dh`` are those of ``V`` before the step.

    Why: the tutorial's ``sgd_step`` has a window of a few rows, so its output layer is three passes over
    ``V`` (C=8000, K=100: 3.2 MB) and one over a dense ``dV`` of the same size, plus the update's pass over
    both -- memory, not arithmetic.  On a CPU with oneDNN's kernel and a window within one chunk, each
    thread keeps its own rows of ``V`` for every product and no ``dV`` is made (``dnnl.softmax_nll_sgd``);
    elsewhere :class:`SoftmaxNLL`'s drivers and the update in place (NumPy) or as a new array (JAX).
    Its gradient is ``loss``'s with respect to ``h`` (and ``w``); none flows through ``nll``, ``V_new``
    or into ``V``."""

    __props__ = ()
    destroy_map = {3: [1]}

    def make_node(self, h, V, y, w, lr):
        h, V, y, w, lr = (T.as_tensor_variable(v) for v in (h, V, y, w, lr))
        if (h.type.ndim, V.type.ndim, y.type.ndim, w.type.ndim, lr.type.ndim) != (2, 2, 1, 1, 0):
            raise TypeError("SoftmaxNLLSGD takes h (N, K), V (C, K), y (N,), w (N,), lr ()")
        dt = h.type.dtype
        return Apply(self, [h, V, y, w, lr],
                     [tensor_type(dt, ())(), tensor_type(dt, (h.type.shape[0],))(), h.type(), V.type()])

    def perform(self, node, inputs, output_storage):
        h, V, y, w, lr = inputs
        C, K = V.shape
        few_rows = h.shape[0] <= chunk_rows(C, K)
        kernel = all(a.dtype == np.float32 for a in (h, V, w)) and dnnl.available()
        if kernel and few_rows and V.flags.c_contiguous and V.flags.writeable:
            nll, dh = dnnl.softmax_nll_sgd(h, V, y, w, float(lr))
        else:
            nll, dh, dWo = numpy_softmax_nll(SoftmaxNLL(True), h, V.T, np.zeros(C, V.dtype), y, w)[1:4]
            V -= np.asarray(lr, V.dtype) * dWo.T  # in place (dWo in V.T's layout: dWo.T reads in order)
        loss = _loss(w, nll, h.dtype)
        for storage, value in zip(output_storage, (loss, nll, dh, V), strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        return [(), (shapes[0][0],), shapes[0], shapes[1]]

    def connection_pattern(self, node):
        return [[True] * 4, [True] * 4, [False] * 4, [True, False, True, True], [False, False, False, True]]

    def pullback(self, inputs, outputs, output_grads):
        disconnected = [isinstance(g.type, gradient.DisconnectedType) for g in output_grads]
        if disconnected[0] or not all(disconnected[1:]):
            why = "SoftmaxNLLSGD: a gradient other than the loss's"
            return [gradient.grad_not_implemented(self, i, v, why) for i, v in enumerate(inputs)]
        g_loss = output_grads[0]
        into_V = gradient.grad_not_implemented(self, 1, inputs[1], "the weights it updates")
        return [g_loss * outputs[2], into_V, gradient.disconnected_type(), g_loss * outputs[1],
                gradient.disconnected_type()]

    L_op = pullback


def softmax_nll_sgd(h, V, y, w, lr):
    """``(loss, V_new)`` of :class:`SoftmaxNLLSGD`: ``Σ w·nll`` of the rows of ``h`` (N, K) under
    ``softmax(h·Vᵀ)``, and ``V`` (C, K) after one SGD step of rate ``lr`` on it (in place)."""
    outs = SoftmaxNLLSGD()(h, V, y, w, lr)
    return outs[0], outs[3]


def _jax_softmax_nll_sgd(h, V, y, w, lr):
    import jax.numpy as jnp

    loss, nll, dh, dWo = jax_softmax_nll(SoftmaxNLL(True), h, V.T, jnp.zeros(V.shape[0], V.dtype), y, w)[:4]
    return loss, nll, dh, V - lr.astype(V.dtype) * dWo.T


register_jax(SoftmaxNLLSGD, lambda op: _jax_softmax_nll_sgd)
