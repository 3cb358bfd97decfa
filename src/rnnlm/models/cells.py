"""Symbolic recurrent cells: one step ``s_t = f(x_t, s_{t-1})`` each, batched over rows.

Only the recurrence lives here.  The input projection ``U x_t + b`` of every step is computed
for the whole sequence with one matrix product *outside* the scan (it does not depend on the
state) and arrives as ``p_t``; the output layer is also outside.  Shapes, for a batch of B rows:

- ``p_t``: (B, G·H) — the precomputed ``U x_t + b`` for all G gates, gate-major
  (rnn G=1; gru G=3, gates z, r, c; lstm G=4, gates i, f, o, g)
- ``s_prev``: (B, H) — the previous state (for the LSTM also ``c_prev``: (B, H))
- ``Wt``: (H, G·H) — the recurrent weights W (G, H, H) flattened and transposed *outside* the
  scan (``W[g] @ s`` in the tutorial's column convention is ``s @ W[g].T`` for row-vector
  states); a reshape inside the step would not trace under the JAX linker
- ``m_t``: (B,) mask, 1 for a real token, 0 for padding: padding keeps the previous state, so a
  right-padded sentence's final state is its true final state and a backwards scan starts at
  the sentence's own end.
"""

from __future__ import annotations

from rnnlm import engine
from rnnlm.errors import ConfigError

T = engine.T

CELLS = {"rnn": 1, "gru": 3, "lstm": 4}


def gate_count(cell: str) -> int:
    try:
        return CELLS[cell]
    except KeyError:
        raise ConfigError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}") from None


def _f32(value):
    return T.constant(value, dtype=engine.floatX)


def activation(name: str):
    """The vanilla cell's nonlinearity (part 1 names tanh and ReLU)."""
    if name == "tanh":
        return T.tanh
    if name == "relu":
        return lambda a: T.maximum(a, _f32(0.0))
    raise ConfigError(f"unknown activation {name!r}; choose tanh or relu")


def gate_function(name: str):
    """``sigmoid`` or the tutorial's ``hard_sigmoid`` = clip(0.2·a + 0.5, 0, 1)."""
    if name == "sigmoid":
        return T.sigmoid
    if name == "hard_sigmoid":
        return lambda a: T.clip(_f32(0.2) * a + _f32(0.5), _f32(0.0), _f32(1.0))
    raise ConfigError(f"unknown gate nonlinearity {name!r}; choose sigmoid or hard_sigmoid")


def _keep(m_t, new, old):
    m = m_t.dimshuffle(0, "x")
    return m * new + (_f32(1.0) - m) * old


def make_step(cell: str, hidden_dim: int, act: str = "tanh", gate: str = "sigmoid"):
    """Return ``step(p_t, m_t, *states_prev, Wt) -> new state(s)`` for ``scan``.

    rnn:  s_t = f(p_t + s_{t-1} W^T)
    gru:  z = σ(p_z + s W_z^T), r = σ(p_r + s W_r^T), c = tanh(p_c + (s ⊙ r) W_c^T),
          s_t = (1 − z) ⊙ c + z ⊙ s          (part 4 of the tutorial)
    lstm: i, f, o = σ(·), g = tanh(·), c_t = f ⊙ c + i ⊙ g, h_t = o ⊙ tanh(c_t)
    """
    H = hidden_dim
    if cell == "rnn":
        f = activation(act)

        def step(p_t, m_t, s_prev, Wt):
            s_t = f(p_t + T.dot(s_prev, Wt))
            return _keep(m_t, s_t, s_prev)

        return step
    sig = gate_function(gate)
    if cell == "gru":

        def step(p_t, m_t, s_prev, Wt):
            # z and r in one product: (B, H) @ (H, 2H)
            zr = sig(p_t[:, : 2 * H] + T.dot(s_prev, Wt[:, : 2 * H]))
            z, r = zr[:, :H], zr[:, H:]
            c = T.tanh(p_t[:, 2 * H:] + T.dot(s_prev * r, Wt[:, 2 * H:]))
            s_t = (_f32(1.0) - z) * c + z * s_prev
            return _keep(m_t, s_t, s_prev)

        return step
    if cell == "lstm":

        def step(p_t, m_t, h_prev, c_prev, Wt):
            a = p_t + T.dot(h_prev, Wt)
            ifo = sig(a[:, : 3 * H])
            i, f, o = ifo[:, :H], ifo[:, H: 2 * H], ifo[:, 2 * H:]
            g = T.tanh(a[:, 3 * H:])
            c_t = f * c_prev + i * g
            h_t = o * T.tanh(c_t)
            return [_keep(m_t, h_t, h_prev), _keep(m_t, c_t, c_prev)]

        return step
    gate_count(cell)  # raises
