"""∂L_t/∂s_k and ∂s_t/∂s_k measured: per-step Jacobians of the state recurrence, their products,
norms by distance t − k, and the per-step decay factor fitted to them.

The *state* of a model is what its recurrence carries: for one rnn/gru layer ``s_t`` (H,); for an
LSTM layer the pair ``(h_t, c_t)`` (2H,), since h alone does not determine the future; for a stack
of layers the concatenation of every layer's state (N = Σ n_l).  Norms of gradients are L2 norms;
norms of Jacobian products are Frobenius (``norm="fro"``, the default: cheap, and within a factor
√N of the spectral norm, so it decays at the same rate) or spectral (``norm="spectral"``: exact,
one SVD per (t, k) pair, about ten times slower).

Decay factors (:func:`fit_decay`) are fitted within chains, one chain per loss L_t followed back
in time, so that when every step back multiplies a norm by at most ρ (tanh or ReLU with
‖W‖₂ = ρ) the fitted factor is at most ρ: a property, not just a tendency.
"""

from __future__ import annotations

import math

import numpy as np

from rnnlm.analysis.common import check_ids, one_blas_thread
from rnnlm.analysis.models import recurrent_summary, reference_model
from rnnlm.errors import ConfigError
from rnnlm.models.reference import (
    GatedRNNNumpy,
    activation_grad,
    apply_activation,
    apply_gate,
    gate_grad,
    log_softmax,
    sentence_pair,
    softmax,
    word_ids,
)

__all__ = [
    "NORMS",
    "fit_decay",
    "forward_with_perturbation",
    "gradient_norms",
    "loss_state_gradients",
    "sentence_norms",
    "state_jacobians",
]


NORMS = ("spectral", "fro")


# --------------------------------------------------------------------------------------------
# Per-step Jacobians of the state recurrence
# --------------------------------------------------------------------------------------------


def _state_sizes(ref):
    n = 2 * ref.hidden_dim if ref.cell == "lstm" else ref.hidden_dim
    return [n] * ref.layers


def _cell_jacobians(ref, lc, U, W):
    """One layer's Jacobians for every step, from its forward cache ``lc``.

    Returns ``R`` (T, n, n) = ∂state_t/∂state_{t-1} and ``I`` (T, n, D_in) = ∂state_t/∂input_t,
    with n = H (rnn, gru) or 2H (lstm, state order (h, c)); J[t][i, j] = ∂out[i]/∂in[j].
    ``U`` (G, H, D_in) is None for a one-hot layer 0 (its input Jacobian is never needed).
    """
    a, act, s = lc["a"], lc["act"], lc["s"]
    T = len(a)
    s_prev = s[np.arange(T) - 1]  # s[-1] is the zero initial state
    if ref.cell == "rnn":
        d = activation_grad(ref.activation, act[:, 0])[:, :, None]  # f'(a_t) as a column
        return d * W[0], (None if U is None else d * U[0])
    if ref.cell == "gru":
        z, r, cand = act[:, 0], act[:, 1], act[:, 2]
        dz = gate_grad(ref.gate, a[:, 0], z)[:, :, None]
        dr = gate_grad(ref.gate, a[:, 1], r)[:, :, None]
        dc = (1.0 - cand * cand)[:, :, None]

        def through(Mz, Mr, Mc_direct):
            # s' = (1-z) c + z s_prev, c = tanh(U_c x + W_c (s_prev ⊙ r) + b_c); Mc_direct is the
            # direct derivative of a_c, the r path adds W_c diag(s_prev) ∂r.
            da_c = Mc_direct + np.einsum("hk,tk,tkj->thj", W[2], s_prev, dr * Mr)
            return (s_prev - cand)[:, :, None] * (dz * Mz) + (1.0 - z)[:, :, None] * (dc * da_c)

        R = through(W[0], W[1], W[2][None] * r[:, None, :]) + z[:, :, None] * np.eye(ref.hidden_dim)
        I = None if U is None else through(U[0], U[1], U[2][None])
        return R, I
    # lstm: state (h, c); c' = f c + i g, h' = o tanh(c')
    H = ref.hidden_dim
    i, f, o, g = (act[:, j] for j in range(4))
    di, df, do = (gate_grad(ref.gate, a[:, j], act[:, j])[:, :, None] for j in range(3))
    dg = (1.0 - g * g)[:, :, None]
    c_prev = lc["c"][np.arange(T) - 1]
    tc = lc["tanh_c"]
    dtc = (o * (1.0 - tc * tc))[:, :, None]  # ∂h'/∂c'

    def through(M):
        dcn = (c_prev[:, :, None] * df) * M[1] + (g[:, :, None] * di) * M[0] + (i[:, :, None] * dg) * M[3]
        dhn = (tc[:, :, None] * do) * M[2] + dtc * dcn
        return dhn, dcn

    dh_dh, dc_dh = through(W)
    R = np.zeros((T, 2 * H, 2 * H))
    R[:, :H, :H] = dh_dh
    R[:, H:, :H] = dc_dh
    R[:, H:, H:] = f[:, :, None] * np.eye(H)  # ∂c'/∂c = diag(f)
    R[:, :H, H:] = (dtc * f[:, :, None]) * np.eye(H)  # ∂h'/∂c = diag(o (1 - tanh²c') f)
    if U is None:
        return R, None
    dh_dx, dc_dx = through(U)
    return R, np.concatenate([dh_dx, dc_dx], axis=1)


def state_jacobians(ref: GatedRNNNumpy, x, cache=None):
    """``J`` (T, N, N): J[t] = ∂S_t/∂S_{t-1}, S the whole stack's state (see the module docstring).

    For one tanh/relu layer J[t] = diag(f'(a_t)) W.  For a stack, layer l at step t depends on its
    own previous state and on layer l-1's state at step t, so block (l, m) of J[t] is
    ``I^l_t I^{l-1}_t ⋯ I^{m+1}_t R^m_t`` (R: a layer's recurrent Jacobian, I: its input Jacobian).
    ``cache``: the ``forward(x)`` cache, to reuse one forward pass.
    """
    if cache is None:
        _, cache = ref.forward(x)
    sizes = _state_sizes(ref)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    T, N = len(cache["x"]), int(offsets[-1])
    J = np.zeros((T, N, N))
    rows_below = None  # (T, n_{l-1}, N): ∂S^{l-1}_t/∂S_{t-1}
    for layer in range(ref.layers):
        U = None if layer == 0 else ref.params[f"U{layer}"]
        R, I = _cell_jacobians(ref, cache["layers"][layer], U, ref.params[f"W{layer}"])
        rows = np.zeros((T, sizes[layer], N))
        if layer > 0:
            # The layer reads h of the layer below (its first H entries; an LSTM's c is not passed up).
            rows = I @ rows_below[:, : ref.hidden_dim]
        rows[:, :, offsets[layer]:offsets[layer + 1]] += R
        J[:, offsets[layer]:offsets[layer + 1]] = rows
        rows_below = rows
    return J


def _direct_loss_gradients(ref, cache, y):
    """(T, N): ∂L_t/∂S_t, nonzero only in the top layer's h (the output layer reads nothing else)."""
    T = len(y)
    delta_o = softmax(cache["logits"])
    delta_o[np.arange(T), y] -= 1.0  # dL_t/dlogits_t for softmax + NLL
    sizes = _state_sizes(ref)
    e = np.zeros((T, sum(sizes)))
    top = sum(sizes[:-1])
    e[:, top:top + ref.hidden_dim] = delta_o @ ref.params["V"]
    return e


def loss_state_gradients(ref: GatedRNNNumpy, x, y):
    """``G`` (T, T, N): G[t, k] = ∂L_t/∂S_k (zero for k > t), L_t = −log o_t[y_t]."""
    x, y = sentence_pair(x, y, ref.word_dim)
    _, cache = ref.forward(x)
    J = state_jacobians(ref, x, cache)
    e = _direct_loss_gradients(ref, cache, y)
    T, N = e.shape
    G = np.zeros((T, T, N))
    G[np.arange(T), np.arange(T)] = e
    # Carry g_t = ∂L_t/∂S_{t-d} one step further back for every t at once; row t = d-1 drops out.
    g = e
    for d in range(1, T):
        t = np.arange(d, T)
        g = np.einsum("tn,tnm->tm", g[1:], J[t - d + 1])
        G[t, t - d] = g
    return G


def forward_with_perturbation(ref: GatedRNNNumpy, x, perturb=None):
    """The stack's states with an additive perturbation, for finite differences.

    Runs the recurrence over ``x`` (T,) adding ``perturb[t]`` (T, N) to S_t once step t is
    computed for every layer (within step t, layer l reads layer l-1's unperturbed state; the
    output layer and step t+1 read the perturbed S_t).  Returns ``(S (T, N), logp (T, C))``.
    With ``perturb`` None or zero this is exactly :meth:`GatedRNNNumpy.forward`; the derivatives
    of S_t and of L_t w.r.t. ``perturb[k]`` are ∂S_t/∂S_k and ∂L_t/∂S_k.
    """
    x = word_ids(x, ref.word_dim)
    p, H, T = ref.params, ref.hidden_dim, len(x)
    sizes = _state_sizes(ref)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    N = int(offsets[-1])
    perturb = np.zeros((T, N)) if perturb is None else np.asarray(perturb, dtype=np.float64)
    S = np.zeros((T, N))
    prev = np.zeros(N)
    for t in range(T):
        inp = p["E"][:, x[t]] if ref.embedding_dim else None
        for layer in range(ref.layers):
            U, W, b = p[f"U{layer}"], p[f"W{layer}"], p[f"b{layer}"]
            xu = U[:, :, x[t]] if inp is None else U @ inp  # (G, H)
            st = prev[offsets[layer]:offsets[layer + 1]]
            h = st[:H]
            if ref.cell == "rnn":
                new = apply_activation(ref.activation, xu[0] + W[0] @ h + b[0])
            elif ref.cell == "gru":
                z = apply_gate(ref.gate, xu[0] + W[0] @ h + b[0])
                r = apply_gate(ref.gate, xu[1] + W[1] @ h + b[1])
                cand = np.tanh(xu[2] + W[2] @ (h * r) + b[2])
                new = (1.0 - z) * cand + z * h
            else:
                a = xu + W @ h + b
                i, f, o = apply_gate(ref.gate, a[:3])
                c = f * st[H:] + i * np.tanh(a[3])
                new = np.concatenate([o * np.tanh(c), c])
            S[t, offsets[layer]:offsets[layer + 1]] = new
            inp = new[:H]
        # Perturb the whole carried state after the step: S_t's coordinates are what J[t+1] maps.
        S[t] += perturb[t]
        prev = S[t]
    logits = S[:, offsets[-2]:offsets[-2] + H] @ p["V"].T + p["c"]
    return S, log_softmax(logits)


# --------------------------------------------------------------------------------------------
# Norms by distance
# --------------------------------------------------------------------------------------------


def _matrix_norms(P, norm):
    if norm == "spectral":
        return np.linalg.norm(P, ord=2, axis=(-2, -1))
    return np.linalg.norm(P, ord="fro", axis=(-2, -1))


def sentence_norms(ref: GatedRNNNumpy, x, y, norm="fro", max_distance=None) -> dict:
    """Norms for one sentence: ``loss_grad`` (T, T) with [t, k] = ‖∂L_t/∂S_k‖ and ``jacobian``
    (T, T) with [t, k] = ‖∂S_t/∂S_k‖ (the product J[t] ⋯ J[k+1]; the identity for k = t), NaN
    for k > t or beyond ``max_distance``."""
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    x, y = sentence_pair(x, y, ref.word_dim)
    _, cache = ref.forward(x)
    J = state_jacobians(ref, x, cache)
    e = _direct_loss_gradients(ref, cache, y)
    T, N = e.shape
    D = T - 1 if max_distance is None else min(int(max_distance), T - 1)
    gn = np.full((T, T), np.nan)
    jn = np.full((T, T), np.nan)
    diag = np.arange(T)
    gn[diag, diag] = np.linalg.norm(e, axis=1)
    jn[diag, diag] = _matrix_norms(np.eye(N)[None], norm)[0]
    g, P = e, None
    for d in range(1, D + 1):
        t = np.arange(d, T)
        Jd = J[t - d + 1]  # the Jacobian that takes S_{t-d} to S_{t-d+1}
        # Row t of the running arrays holds ∂L_t/∂S_{t-d+1} and ∂S_t/∂S_{t-d+1}; drop the first row
        # (t = d-1 has no state d steps back) and extend every product by one more Jacobian.
        g = np.einsum("tn,tnm->tm", g[1:], Jd)
        P = Jd if P is None else P[1:] @ Jd
        gn[t, t - d] = np.linalg.norm(g, axis=1)
        jn[t, t - d] = _matrix_norms(P, norm)
    return {"loss_grad": gn, "jacobian": jn}


def _by_distance(mats, D):
    """Statistics of the entries [t, t-d] of every (T, T) matrix in ``mats``, per distance d."""
    count = np.zeros(D + 1, dtype=np.int64)
    total = np.zeros(D + 1)
    log_total = np.zeros(D + 1)
    nonzero = np.zeros(D + 1, dtype=np.int64)
    for m in mats:
        T = len(m)
        for d in range(min(D, T - 1) + 1):
            v = np.diagonal(m, offset=-d)
            v = v[np.isfinite(v)]
            count[d] += v.size
            total[d] += v.sum()
            pos = v[v > 0]
            nonzero[d] += pos.size
            log_total[d] += np.log(pos).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        log_mean = np.where(nonzero > 0, log_total / np.maximum(nonzero, 1), np.nan)
        zero_fraction = np.where(count > 0, 1.0 - nonzero / np.maximum(count, 1), np.nan)
    return {"count": count, "mean": mean, "log_mean": log_mean, "geomean": np.exp(log_mean),
            "zero_fraction": zero_fraction}


def _heatmap(mats, L):
    total, count = np.zeros((L, L)), np.zeros((L, L), dtype=np.int64)
    for m in mats:
        T = min(len(m), L)
        sub = m[:T, :T]
        ok = np.isfinite(sub)
        total[:T, :T][ok] += sub[ok]
        count[:T, :T] += ok
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan), count


@one_blas_thread
def gradient_norms(model, sentences, norm="fro", max_distance=None, heatmap_len=None, fit_range=(1, None),
                   progress=None) -> dict:
    """``‖∂L_t/∂s_k‖`` and ``‖∂s_t/∂s_k‖`` on real sentences, averaged by distance d = t − k.

    ``model``: anything :func:`reference_model` accepts.  ``sentences``: (x, y) pairs of 1-D word
    ids (:func:`select_sentences`).  ``norm`` of the Jacobian products: ``fro`` (default; within a
    factor √N of the spectral norm, cheap) or ``spectral`` (exact, one SVD per (t, k) pair).
    Returns a dict:

    - ``model``: cell, activation, gate, hidden_dim, layers, state_dim, vocab_size;
      ``recurrent``: :func:`recurrent_summary`; ``norm``; ``sentences`` (count) and ``lengths``.
    - ``distance`` (D+1,) = 0..D; ``loss_grad`` and ``jacobian``: dicts of (D+1,) arrays ``count``
      (pairs (t, k) at that distance), ``mean`` (arithmetic), ``log_mean`` (mean of log-norms over
      the nonzero ones), ``geomean`` = exp(log_mean), ``zero_fraction`` (exactly zero norms, e.g.
      all ReLU units off).
    - ``decay``: :func:`fit_decay` of both quantities over distances ``fit_range`` = (first, last).
    - ``heatmap`` (L, L): mean over the sentences long enough of ‖∂L_t/∂s_k‖ at [t, k] (NaN for
      k > t), L = ``heatmap_len`` or the longest sentence; ``heatmap_count`` (L, L).
    - ``per_sentence``: ``{"loss_grad": [...], "jacobian": [...]}``, the (T, T) matrices of
      :func:`sentence_norms` (to refit with another range).
    """
    ref = reference_model(model)
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in sentences]
    check_ids(ref, pairs)
    per = []
    for x, y in (progress(pairs) if progress else pairs):
        if len(x):
            per.append(sentence_norms(ref, x, y, norm=norm, max_distance=max_distance))
    if not per:
        raise ConfigError("gradient_norms needs at least one non-empty sentence")
    Tmax = max(len(p["loss_grad"]) for p in per)
    D = Tmax - 1 if max_distance is None else min(int(max_distance), Tmax - 1)
    mats = {q: [p[q] for p in per] for q in ("loss_grad", "jacobian")}
    heat, heat_count = _heatmap(mats["loss_grad"], heatmap_len or Tmax)
    lo, hi = fit_range
    return {
        "model": {"cell": ref.cell, "activation": ref.activation if ref.cell == "rnn" else "tanh",
                  "gate": ref.gate if ref.cell != "rnn" else None, "hidden_dim": ref.hidden_dim,
                  "layers": ref.layers, "state_dim": int(sum(_state_sizes(ref))),
                  "vocab_size": ref.word_dim},
        "recurrent": recurrent_summary(ref),
        "norm": norm,
        "sentences": len(per),
        "lengths": [len(p["loss_grad"]) for p in per],
        "distance": np.arange(D + 1),
        "loss_grad": _by_distance(mats["loss_grad"], D),
        "jacobian": _by_distance(mats["jacobian"], D),
        "decay": {q: fit_decay(mats[q], d_min=lo, d_max=hi) for q in mats},
        "heatmap": heat,
        "heatmap_count": heat_count,
        "per_sentence": mats,
    }


def fit_decay(norms, d_min=1, d_max=None) -> dict:
    """The per-step decay factor: the slope of log-norm against distance, exponentiated.

    ``norms``: one (T, T) matrix with [t, k] = a norm at distance t − k (NaN where undefined), as
    :func:`sentence_norms` gives, a list of such matrices, or a 1-D array of norms indexed by
    distance.  Each row t is a *chain*: one loss L_t (or state s_t) followed back in time.  The
    slope is the pooled within-chain least-squares slope (every chain has its own intercept, so
    chains of different magnitude or length do not bias it) over distances in [d_min, d_max];
    zero norms (ReLU) are left out.  When every step back multiplies a chain's norm by at most ρ
    (for tanh/ReLU, ρ = ‖W‖₂), every chain's slope, and so the pooled one, is at most log ρ.

    Returns ``slope`` (natural log per step), ``factor`` = exp(slope) (< 1: the norm shrinks by
    that factor per step back), ``half_life`` (steps to halve, when factor < 1), ``r2`` (within
    chains), ``intercept`` (of the line through the mean log-norm, for plotting), ``distances``
    [first, last] used, ``points`` and ``chains``; all None/0 when no chain has two points.
    """
    if isinstance(norms, np.ndarray) and norms.ndim == 1:
        chains = [np.asarray(norms, dtype=np.float64)]
    else:
        mats = [norms] if isinstance(norms, np.ndarray) else list(norms)
        chains = []
        for m in mats:
            m = np.asarray(m, dtype=np.float64)
            for t in range(len(m)):
                chains.append(m[t, t::-1][: t + 1])  # index d = t - k: distance 0..t
    sxx = sxy = syy = 0.0
    n_pts = n_chains = 0
    sum_y = np.zeros(0)
    cnt_y = np.zeros(0)
    d_lo, d_hi = None, None
    for c in chains:
        d = np.arange(len(c))
        hi = len(c) - 1 if d_max is None else min(int(d_max), len(c) - 1)
        use = (d >= d_min) & (d <= hi) & np.isfinite(c) & (c > 0)
        if use.sum() < 2:
            continue
        dd = d[use].astype(np.float64)
        yy = np.log(c[use])
        dc, yc = dd - dd.mean(), yy - yy.mean()
        sxx += float(dc @ dc)
        sxy += float(dc @ yc)
        syy += float(yc @ yc)
        n_pts += int(use.sum())
        n_chains += 1
        if len(sum_y) < len(c):
            sum_y = np.pad(sum_y, (0, len(c) - len(sum_y)))
            cnt_y = np.pad(cnt_y, (0, len(c) - len(cnt_y)))
        sum_y[d[use]] += yy
        cnt_y[d[use]] += 1
        d_lo = int(dd.min()) if d_lo is None else min(d_lo, int(dd.min()))
        d_hi = int(dd.max()) if d_hi is None else max(d_hi, int(dd.max()))
    out = {"slope": None, "factor": None, "half_life": None, "r2": None, "intercept": None,
           "distances": None if d_lo is None else [d_lo, d_hi], "points": n_pts, "chains": n_chains}
    if n_chains == 0 or sxx <= 0:
        return out
    slope = sxy / sxx
    seen = cnt_y > 0
    intercept = float(np.mean(sum_y[seen] / cnt_y[seen] - slope * np.nonzero(seen)[0]))
    out.update(slope=float(slope), factor=float(math.exp(slope)), intercept=intercept,
               r2=float(slope * sxy / syy) if syy > 0 else 1.0,
               half_life=float(math.log(0.5) / slope) if slope < 0 else None)
    return out
