"""Fused recurrent layers: one graph node runs a whole rnn/gru/lstm layer over all L steps.

``scan`` + autodiff gives a backward loop that accumulates ``dW += s_{t-1}ᵀ · dA_t`` step by step and
carries every intermediate of the forward step.  :class:`RecurrentLayer` replaces the layer's ``Scan``
by one node with a hand-written backward (:class:`RecurrentLayerGrad`): the backward loop only does
the per-step elementwise work and ``dA_t · Wᵀ``; ``dW`` is one GEMM over all steps afterwards
(``S_prevᵀ · dA``, (H, L·B) × (L·B, G·H)), and the input projection's gradient is ``dA`` itself.

Both ops run on every linker: a NumPy ``perform`` (C linker, Python linker) and a JAX implementation
(``lax.scan``) registered with PyTensor's JAX dispatcher.  The cell math is written once
(:func:`_forward_step`, :func:`_backward_step`) over an array namespace (NumPy or ``jax.numpy``).

Shapes (time-major, rows are batch entries; G gates, gate-major as in :mod:`rnnlm.models.cells`):
``P`` (L, B, G·H) the precomputed input projection ``U x_t + b``; ``mask`` (L, B) 1 real, 0 padding
(padding keeps the previous state); ``s0`` (B, H) (LSTM also ``c0``); ``Wt`` (H, G·H) the recurrent
weights, transposed.  Outputs: ``S`` (L, B, H) the states (LSTM also ``C``, the cells) and ``A``, the
activations the backward pass needs (rnn: f(a) (L, B, H); gru: z, r, c (L, B, 3H); lstm: i, f, o, g and
tanh(c_t) (L, B, 5H)); ``A`` is internal: no gradient flows through it.

With ``masked=False`` the mask input is ignored (a full batch: no blend per step).  With
``precision="bf16"`` every matrix product (per step and for dW) takes bfloat16 operands and accumulates
in float32, as :class:`rnnlm.engine_ops.base.MatMul` does for the products outside the layers; states,
gates and parameters stay float32.
"""

from __future__ import annotations

import numpy as np

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
    zeros_if_disconnected,
)

__all__ = ["GATES", "RecurrentLayer", "RecurrentLayerGrad", "jax_backward", "jax_forward", "numpy_backward",
           "numpy_forward", "recurrent_layer"]


GATES = {"rnn": 1, "gru": 3, "lstm": 4}


# ------------------------------------------------------------------------------------------------
# The cell math, once, over an array namespace
# ------------------------------------------------------------------------------------------------


def _act(bk, name, a):
    return bk.xp.tanh(a) if name == "tanh" else bk.xp.maximum(a, 0.0)


def _act_grad(bk, name, y):
    if name == "tanh":
        return 1.0 - y * y
    return (y > 0).astype(y.dtype)  # relu: the kink gets 0, as autodiff and the reference


def _gate(bk, name, a):
    if name == "sigmoid":
        return bk.sigmoid(a)
    return bk.xp.clip(0.2 * a + 0.5, 0.0, 1.0)


def _gate_grad(bk, name, y):
    if name == "sigmoid":
        return y * (1.0 - y)
    # hard_sigmoid: 0.2 inside the linear part; the output alone cannot tell a saturated value from one
    # exactly at a kink (a = ±2.5), a set of measure zero.
    return 0.2 * ((y > 0) & (y < 1)).astype(y.dtype)


def _forward_step(op, bk, p_t, m_t, s, c, Wt):
    """One step: returns ``(s_out, c_out, a_t)`` (c_out None unless LSTM)."""
    xp, H = bk.xp, s.shape[-1]
    c_new = None
    if op.cell == "rnn":
        s_new = _act(bk, op.activation, p_t + bk.dot(s, Wt))
        a_t = s_new
    elif op.cell == "gru":
        zr = _gate(bk, op.gate, p_t[:, : 2 * H] + bk.dot(s, Wt[:, : 2 * H]))
        z, r = zr[:, :H], zr[:, H:]
        cand = xp.tanh(p_t[:, 2 * H:] + bk.dot(s * r, Wt[:, 2 * H:]))
        s_new = (1.0 - z) * cand + z * s
        a_t = bk.concat([zr, cand])
    else:
        a = p_t + bk.dot(s, Wt)
        ifo = _gate(bk, op.gate, a[:, : 3 * H])
        g = xp.tanh(a[:, 3 * H:])
        c_new = ifo[:, H: 2 * H] * c + ifo[:, :H] * g
        tc = xp.tanh(c_new)
        s_new = ifo[:, 2 * H:] * tc
        a_t = bk.concat([ifo, g, tc])  # tanh(c_t) too: the backward pass would otherwise recompute it
    if op.masked:
        m = m_t[:, None]
        s_new = m * s_new + (1.0 - m) * s
        if c_new is not None:
            c_new = m * c_new + (1.0 - m) * c
    return s_new, c_new, a_t


def _backward_step(op, bk, dh, dc, m_t, s_prev, c_prev, a_t, WtT):
    """One step back: from the state gradients ``dh`` (and ``dc``) arriving at step t, returns
    ``(dA_t, dh_prev, dc_prev)``; ``dA_t`` is the gradient of the gate pre-activations (B, G·H)."""
    H = s_prev.shape[-1]
    if op.masked:
        m = m_t[:, None]
        dh_keep, dh = (1.0 - m) * dh, m * dh
        if dc is not None:
            dc_keep, dc = (1.0 - m) * dc, m * dc
    dc_prev = None
    if op.cell == "rnn":
        dA = dh * _act_grad(bk, op.activation, a_t)
        ds = bk.dot(dA, WtT)
    elif op.cell == "gru":
        z, r, cand = a_t[:, :H], a_t[:, H: 2 * H], a_t[:, 2 * H:]
        dz = dh * (s_prev - cand)
        dac = dh * (1.0 - z) * (1.0 - cand * cand)
        dsr = bk.dot(dac, WtT[2 * H:])
        dzr = bk.concat([dz, dsr * s_prev]) * _gate_grad(bk, op.gate, a_t[:, : 2 * H])
        ds = dh * z + dsr * r + bk.dot(dzr, WtT[: 2 * H])
        dA = bk.concat([dzr, dac])
    else:
        i, f, o, g = a_t[:, :H], a_t[:, H: 2 * H], a_t[:, 2 * H: 3 * H], a_t[:, 3 * H: 4 * H]
        tc = a_t[:, 4 * H:]  # tanh of the cell before the mask blend
        dcc = dc + dh * o * (1.0 - tc * tc)
        dgates = bk.concat([dcc * g, dcc * c_prev, dh * tc]) * _gate_grad(bk, op.gate, a_t[:, : 3 * H])
        dA = bk.concat([dgates, dcc * i * (1.0 - g * g)])
        ds = bk.dot(dA, WtT)
        dc_prev = dcc * f
    if op.masked:
        ds = ds + dh_keep
        if dc_prev is not None:
            dc_prev = dc_prev + dc_keep
    return dA, ds, dc_prev


def _weight_grad(op, bk, s_prev, A, dA):
    """dWt (H, G·H) as one GEMM over all L·B rows (two for the GRU: its candidate sees s ⊙ r)."""
    H = s_prev.shape[-1]
    rows = s_prev.shape[0] * s_prev.shape[1]
    sp = s_prev.reshape(rows, H)
    dA2 = dA.reshape(rows, dA.shape[-1])
    if op.cell != "gru":
        return bk.dot(sp.T, dA2)
    sr = (s_prev * A[..., H: 2 * H]).reshape(rows, H)
    return bk.concat([bk.dot(sp.T, dA2[:, : 2 * H]), bk.dot(sr.T, dA2[:, 2 * H:])])


def _shift(first, seq, xp):
    """(first, seq[0], ..., seq[L-2]): the previous state of every step."""
    return xp.concatenate([first[None], seq[:-1]], axis=0)


# ------------------------------------------------------------------------------------------------
# NumPy drivers (perform)
# ------------------------------------------------------------------------------------------------


def numpy_forward(op, P, mask, s0, c0, Wt):
    L, bk = P.shape[0], numpy_backend(op.precision)
    S = np.empty(P.shape[:2] + s0.shape[-1:], P.dtype)
    C = np.empty_like(S) if op.cell == "lstm" else None
    A = None
    s, c = s0, c0
    for t in range(L):
        s, c, a_t = _forward_step(op, bk, P[t], mask[t], s, c, Wt)
        if A is None:
            A = np.empty((L,) + a_t.shape, P.dtype)
        S[t], A[t] = s, a_t
        if C is not None:
            C[t] = c
    return S, C, A


def numpy_backward(op, mask, s0, c0, Wt, S, C, A, gS, gC):
    L, bk = S.shape[0], numpy_backend(op.precision)
    WtT = np.ascontiguousarray(Wt.T)
    s_prev = _shift(s0, S, np)
    c_prev = _shift(c0, C, np) if C is not None else None
    dA = np.empty(S.shape[:2] + (Wt.shape[1],), S.dtype)
    dh = np.zeros_like(s0)
    dc = np.zeros_like(s0) if C is not None else None
    for t in range(L - 1, -1, -1):
        dh = dh + gS[t]
        if dc is not None:
            dc = dc + gC[t]
        cp = None if c_prev is None else c_prev[t]
        dA[t], dh, dc = _backward_step(op, bk, dh, dc, mask[t], s_prev[t], cp, A[t], WtT)
    return dA, dh, dc, _weight_grad(op, bk, s_prev, A, dA)


# ------------------------------------------------------------------------------------------------
# JAX drivers (lax.scan), registered with PyTensor's JAX dispatcher
# ------------------------------------------------------------------------------------------------


def jax_forward(op, P, mask, s0, c0, Wt):
    import jax

    bk = jax_backend(op.precision)
    if bk.low is not None:
        Wt = bk.low(Wt)  # once, not at every step

    def step(carry, xs):
        s, c = carry
        p_t, m_t = xs
        s, c, a_t = _forward_step(op, bk, p_t, m_t, s, c, Wt)
        return (s, c), (s, c, a_t)

    c_init = c0 if op.cell == "lstm" else None
    _, (S, C, A) = jax.lax.scan(step, (s0, c_init), (P, mask))
    return S, C, A


def jax_backward(op, mask, s0, c0, Wt, S, C, A, gS, gC):
    import jax
    import jax.numpy as jnp

    bk = jax_backend(op.precision)
    WtT = Wt.T if bk.low is None else bk.low(Wt).T
    s_prev = _shift(s0, S, jnp)
    lstm = op.cell == "lstm"
    c_prev = _shift(c0, C, jnp) if lstm else s_prev  # (a placeholder sequence for rnn/gru)
    gC = gC if lstm else gS

    def step(carry, xs):
        dh, dc = carry
        g_s, g_c, m_t, sp, cp, a_t = xs
        dh = dh + g_s
        if lstm:
            dc = dc + g_c
        dA_t, dh, dc = _backward_step(op, bk, dh, dc, m_t, sp, cp, a_t, WtT)
        return (dh, dc), dA_t

    zero = jnp.zeros_like(s0)
    (ds0, dc0), dA = jax.lax.scan(step, (zero, zero if lstm else None),
                                  (gS, gC, mask, s_prev, c_prev, A), reverse=True)
    # The barrier keeps XLA from folding the caller's transpose of dWt into the GEMM: (H, L·B)·(L·B, G·H)
    # runs at ~350 GFLOP/s here, the transposed form (G·H, L·B)·(L·B, H) at ~220 (2-core EPYC).
    dWt = jax.lax.optimization_barrier(_weight_grad(op, bk, s_prev, A, dA))
    return dA, ds0, dc0, dWt


# ------------------------------------------------------------------------------------------------
# The graph ops
# ------------------------------------------------------------------------------------------------



class _LayerOp(Op):
    __props__ = ("cell", "activation", "gate", "masked", "label", "precision")

    def __init__(self, cell, activation="tanh", gate="sigmoid", masked=True, label="layer", precision="fp32"):
        if cell not in GATES:
            raise ValueError(f"unknown cell {cell!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}")
        self.cell, self.activation, self.gate = cell, activation, gate
        self.masked, self.label, self.precision = bool(masked), str(label), precision
        super().__init__()

    @property
    def lstm(self) -> bool:
        return self.cell == "lstm"

    def __str__(self):
        extra = ", masked" if self.masked else ""
        extra += "" if self.precision == "fp32" else f", {self.precision}"
        return f"{type(self).__name__}{{{self.label}, {self.cell}{extra}}}"


class RecurrentLayer(_LayerOp):
    """A whole recurrent layer as one node: inputs ``P, mask, s0, [c0], Wt``; outputs ``S, [C], A``."""

    def make_node(self, P, mask, s0, *rest):
        P, mask, s0 = (T.as_tensor_variable(v) for v in (P, mask, s0))
        rest = [T.as_tensor_variable(v) for v in rest]
        if len(rest) != (2 if self.lstm else 1):
            raise TypeError(f"{self.cell} layer: expected {'c0, Wt' if self.lstm else 'Wt'} after s0")
        Wt = rest[-1]
        L, B = P.type.shape[0], P.type.shape[1]
        H = s0.type.shape[1]
        GH = Wt.type.shape[1]
        dt = P.type.dtype
        outs = [tensor_type(dt, (L, B, H))()]
        if self.lstm:
            outs.append(tensor_type(dt, (L, B, H))())
        A_width = {"rnn": H, "gru": GH, "lstm": GH + H}[self.cell]
        outs.append(tensor_type(dt, (L, B, A_width))())
        return Apply(self, [P, mask, s0, *rest], outs)

    def perform(self, node, inputs, output_storage):
        if self.lstm:
            P, mask, s0, c0, Wt = inputs
        else:
            (P, mask, s0, Wt), c0 = inputs, None
        S, C, A = numpy_forward(self, P, mask, s0, c0, Wt)
        outs = [S, C, A] if self.lstm else [S, A]
        for storage, value in zip(output_storage, outs, strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        P, s0, Wt = shapes[0], shapes[2], shapes[-1]
        state = (P[0], P[1], s0[1])
        width = {"rnn": s0[1], "gru": Wt[1], "lstm": Wt[1] + s0[1]}[self.cell]
        return [state, state, (P[0], P[1], width)] if self.lstm else [state, (P[0], P[1], width)]

    def connection_pattern(self, node):
        n_out = len(node.outputs)
        pattern = []
        for i in range(len(node.inputs)):
            connected = i != 1  # the mask gets no gradient
            pattern.append([connected and j < n_out - 1 for j in range(n_out)])  # nor flows through A
        return pattern

    def pullback(self, inputs, outputs, output_grads):
        if self.lstm:
            P, mask, s0, c0, Wt = inputs
            S, C, A = outputs
            gS, gC = (zeros_if_disconnected(g, o) for g, o in zip(output_grads[:2], (S, C), strict=True))
            grads = RecurrentLayerGrad(*self._props())(
                mask, s0, c0, Wt, S, C, A, gS, gC)
            dP, ds0, dc0, dWt = grads
            return [dP, gradient.disconnected_type(), ds0, dc0, dWt]
        P, mask, s0, Wt = inputs
        S, A = outputs
        gS = zeros_if_disconnected(output_grads[0], S)
        dP, ds0, dWt = RecurrentLayerGrad(*self._props())(
            mask, s0, Wt, S, A, gS)
        return [dP, gradient.disconnected_type(), ds0, dWt]

    L_op = pullback  # Aesara's and older PyTensor's name for the same method


class RecurrentLayerGrad(_LayerOp):
    """The backward pass of :class:`RecurrentLayer`: inputs ``mask, s0, [c0], Wt, S, [C], A, gS, [gC]``;
    outputs ``dP, ds0, [dc0], dWt``."""

    def make_node(self, *inputs):
        inputs = [T.as_tensor_variable(v) for v in inputs]
        if len(inputs) != (9 if self.lstm else 6):
            raise TypeError("wrong number of inputs for RecurrentLayerGrad")
        s0, Wt, A = inputs[1], inputs[3 if self.lstm else 2], inputs[6 if self.lstm else 4]
        L, B = A.type.shape[0], A.type.shape[1]
        dt = A.type.dtype
        outs = [tensor_type(dt, (L, B, Wt.type.shape[1]))(), s0.type()]
        if self.lstm:
            outs.append(s0.type())
        outs.append(Wt.type())
        return Apply(self, inputs, outs)

    def _split(self, inputs):
        if self.lstm:
            return inputs
        mask, s0, Wt, S, A, gS = inputs
        return mask, s0, None, Wt, S, None, A, gS, None

    def perform(self, node, inputs, output_storage):
        dA, ds0, dc0, dWt = numpy_backward(self, *self._split(inputs))
        outs = [dA, ds0, dc0, dWt] if self.lstm else [dA, ds0, dWt]
        for storage, value in zip(output_storage, outs, strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        A, s0, Wt = shapes[6 if self.lstm else 4], shapes[1], shapes[3 if self.lstm else 2]
        dP = (A[0], A[1], Wt[1])
        return [dP, s0, s0, Wt] if self.lstm else [dP, s0, Wt]

    def pullback(self, inputs, outputs, output_grads):
        return [gradient.grad_not_implemented(self, i, v, "second derivatives of a fused recurrent layer")
                for i, v in enumerate(inputs)]

    L_op = pullback


def recurrent_layer(cell, P, mask, states, Wt, activation="tanh", gate="sigmoid", masked=True,
                    label="layer", precision="fp32"):
    """Apply one fused layer; returns the state sequences ``[S]`` or ``[S, C]`` (each (L, B, H)),
    in processing order, like ``scan`` would."""
    op = RecurrentLayer(cell, activation, gate, masked, label, precision)
    outs = op(P, mask, *states, Wt)
    return list(outs[:-1])


def _jax_layer(op):
    def layer(P, mask, s0, *rest):
        c0, Wt = (rest[0], rest[1]) if op.lstm else (None, rest[0])
        S, C, A = jax_forward(op, P, mask, s0, c0, Wt)
        return (S, C, A) if op.lstm else (S, A)

    return layer


def _jax_layer_grad(op):
    def layer_grad(*inputs):
        dA, ds0, dc0, dWt = jax_backward(op, *op._split(inputs))
        return (dA, ds0, dc0, dWt) if op.lstm else (dA, ds0, dWt)

    return layer_grad


register_jax(RecurrentLayer, _jax_layer)
register_jax(RecurrentLayerGrad, _jax_layer_grad)
