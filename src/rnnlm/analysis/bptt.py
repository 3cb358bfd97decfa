"""Backpropagation through time and the vanishing gradient, measured (the tutorial's part 3).

The blog post argues that ``∂L_t/∂s_k`` is a product of ``t − k`` per-step Jacobians
``∂s_j/∂s_{j-1} = diag(f'(a_j)) W`` (its ``W^T diag(f')`` is the same product in the transposed,
back-propagation form), so for a tanh RNN with small W it shrinks geometrically with the distance
``t − k``, and truncating BPTT after a few steps loses little.  This module measures all of that on
real sentences for any model:

- :func:`gradient_norms`: ``‖∂L_t/∂s_k‖`` for every k ≤ t and ``‖∂s_t/∂s_k‖`` (the Jacobian
  products; the general cell Jacobians for GRU and LSTM), per sentence and averaged over
  sentences as a function of the distance ``t − k``; :func:`fit_decay` turns a curve into a
  per-step decay factor (the slope of the log-norm against distance, exponentiated).
- :func:`truncation_error`: the relative error of truncated BPTT against full BPTT as a function
  of ``bptt_truncate``, for both definitions of :meth:`rnnlm.models.reference.RNNNumpy.bptt`;
  :func:`truncation_training`: what truncation costs in training loss (short SGD runs).
- :func:`exploding_gradients`: W rescaled to a growing spectral radius; gradient norms with and
  without global-norm clipping, and a short SGD run with and without it.
- ``plot_*``: matplotlib Figures (Agg, no pyplot state); :func:`save_figure` writes PNGs atomically.

Everything is NumPy float64 on the reference models of :mod:`rnnlm.models.reference` (no graph engine is
imported): the parameter layout is :class:`rnnlm.models.lm.LanguageModel`'s, so a trained model's
``get_params()`` loads straight in (:func:`reference_model`).

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
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from rnnlm.errors import ConfigError
from rnnlm.models.reference import (
    GatedRNNNumpy,
    RNNNumpy,
    _activation_grad,
    _gate_grad,
    init_params,
    init_tutorial_params,
    log_softmax,
    softmax,
)

__all__ = [
    "NORMS",
    "exploding_gradients",
    "fit_decay",
    "forward_with_perturbation",
    "fresh_model",
    "gradient_norms",
    "load_reference",
    "loss_state_gradients",
    "plot_decay",
    "plot_exploding",
    "plot_heatmap",
    "plot_truncation",
    "recurrent_summary",
    "reference_model",
    "save_figure",
    "scale_recurrent",
    "select_sentences",
    "sentence_norms",
    "spectral_radius",
    "state_jacobians",
    "to_jsonable",
    "truncation_error",
    "truncation_training",
    "tutorial_params",
]

NORMS = ("spectral", "fro")


def _one_blas_thread(fn):
    """Run ``fn`` with BLAS on one thread: its matrices are at most a few hundred wide, where
    threads cost more than they give (on a busy 2-core machine a batched 100×100 SVD ran 40×
    slower with two OpenBLAS threads than with one)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------
# Models: any model as a float64 reference model; rescaling W
# --------------------------------------------------------------------------------------------


def _layers_in(params) -> int:
    n = 0
    while f"W{n}" in params:
        n += 1
    return n


def reference_model(model=None, *, params=None, cell="rnn", activation="tanh",
                    gate="sigmoid") -> GatedRNNNumpy:
    """Any model as a :class:`~rnnlm.models.reference.GatedRNNNumpy` (float64 copy of its weights).

    ``model`` may be a ``GatedRNNNumpy`` (returned as is), the tutorial's ``RNNNumpy`` or graph
    ``RNN`` (U (H, C), V (C, H), W (H, H): a one-layer rnn without biases), or a
    :class:`~rnnlm.models.lm.LanguageModel` (its ``config`` and ``get_params()``).  Without a model,
    ``params`` (the LanguageModel layout: E?, U{l}, W{l}, b{l}, V, c?) with ``cell``,
    ``activation`` and ``gate``.  Tied output embeddings become the equivalent V; a missing
    output bias becomes zeros.  The bidirectional fill model has no left-to-right recurrence to
    analyse and is refused.
    """
    if isinstance(model, GatedRNNNumpy):
        return model
    if model is not None:
        config = getattr(model, "config", None)
        if config is not None:  # LanguageModel
            if config.bidirectional:
                raise ConfigError("gradient analysis needs a left-to-right model; this one is bidirectional")
            params = dict(model.get_params())
            cell, activation, gate = config.cell, config.activation, config.gate
        elif all(hasattr(model, k) for k in ("U", "V", "W")):  # RNNNumpy or the graph RNN
            p = model.get_params() if hasattr(model, "get_params") else model.params
            params = tutorial_params(p["U"], p["V"], p["W"])
            cell, activation = "rnn", getattr(model, "activation", "tanh")
        else:
            raise ConfigError(f"cannot analyse a {type(model).__name__}: expected a LanguageModel, "
                              "RNN, RNNNumpy or GatedRNNNumpy")
    if params is None:
        raise ConfigError("reference_model needs a model or params")
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    if any(k.endswith("_b") for k in params):
        raise ConfigError("gradient analysis needs a left-to-right model; these parameters are bidirectional")
    if "V" not in params:  # tied embeddings: logits = (h Pᵀ) E, i.e. V = Eᵀ P (or Eᵀ when D = H)
        if "E" not in params:
            raise ConfigError("params lack both V and E: no output layer")
        params["V"] = params["E"].T @ params.pop("P") if "P" in params else params["E"].T.copy()
    params.pop("P", None)
    C = params["V"].shape[0]
    params.setdefault("c", np.zeros(C))
    layers = _layers_in(params)
    if layers == 0:
        raise ConfigError("params hold no recurrent layer (W0)")
    H = params["W0"].shape[-1]
    D = params["E"].shape[0] if "E" in params else 0
    return GatedRNNNumpy(cell, C, H, embedding_dim=D, layers=layers, gate=gate, activation=activation,
                         params=params)


def tutorial_params(U, V, W) -> dict:
    """The tutorial's U (H, C), V (C, H), W (H, H) in the general layout (zero biases)."""
    U, V, W = (np.asarray(a, dtype=np.float64) for a in (U, V, W))
    H = W.shape[0]
    return {"U0": U[None], "W0": W[None], "b0": np.zeros((1, H)), "V": V, "c": np.zeros(V.shape[0])}


def spectral_radius(W) -> float:
    """Largest |eigenvalue| of a square matrix W (H, H)."""
    return _radius(np.asarray(W, dtype=np.float64))


def scale_recurrent(params: dict, scale=None, spectral_radius=None) -> dict:
    """A copy of ``params`` with every recurrent block ``W{l}[g]`` (H, H) rescaled.

    ``scale`` multiplies every block; ``spectral_radius`` instead rescales each block separately
    so that its largest |eigenvalue| equals the target (for an rnn cell: W itself).
    Exactly one of the two must be given.
    """
    if (scale is None) == (spectral_radius is None):
        raise ConfigError("give exactly one of scale and spectral_radius")
    out = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    for name in [k for k in out if k.startswith("W") and k[1:].split("_")[0].isdigit()]:
        W = out[name]
        for g in range(W.shape[0]):
            if scale is not None:
                W[g] *= float(scale)
            else:
                rho = _radius(W[g])
                if rho == 0.0:
                    raise ConfigError(f"{name}[{g}] is zero: cannot rescale it to a spectral radius")
                W[g] *= float(spectral_radius) / rho
    return out


def _radius(W):
    return float(np.max(np.abs(np.linalg.eigvals(W))))


def recurrent_summary(ref: GatedRNNNumpy) -> dict:
    """Spectral radius and spectral norm of every recurrent block: ``{"W0": {"radius": [...],
    "norm": [...]}, ...}`` (one entry per gate block, in :data:`rnnlm.models.reference.GATE_NAMES` order)."""
    out = {}
    for layer in range(ref.layers):
        W = ref.params[f"W{layer}"]
        out[f"W{layer}"] = {"radius": [_radius(w) for w in W],
                            "norm": [float(np.linalg.norm(w, 2)) for w in W]}
    return out


def fresh_model(cell="rnn", vocab_size=8000, hidden_dim=100, activation="tanh", gate="sigmoid", layers=1,
                embedding_dim=0, radius=None, scale=None, seed=0) -> GatedRNNNumpy:
    """A freshly initialised model (:func:`rnnlm.models.reference.init_params`: the tutorial's ±1/√fan_in),
    optionally with W rescaled (:func:`scale_recurrent`: ``radius`` or ``scale``)."""
    params = init_params(cell, vocab_size, hidden_dim, embedding_dim, layers, seed)
    if radius is not None or scale is not None:
        params = scale_recurrent(params, scale=scale, spectral_radius=radius)
    return GatedRNNNumpy(cell, vocab_size, hidden_dim, embedding_dim=embedding_dim, layers=layers, gate=gate,
                         activation=activation, params=params)


def load_reference(path):
    """A checkpoint as a reference model, without a graph engine: ``(GatedRNNNumpy, vocab, meta)``.

    Reads rnnlm checkpoints and the tutorial's ``trained-model-theano.npz`` (U, V, W; vocab None)
    with :func:`rnnlm.training.checkpoint.read_checkpoint`.
    """
    from rnnlm.errors import CheckpointError
    from rnnlm.training.checkpoint import read_checkpoint

    ck = read_checkpoint(path)
    meta = ck["meta"]
    try:
        if ck["tutorial"]:
            p = ck["params"]
            if any(np.ndim(p[k]) != 2 for k in "UVW"):
                raise ConfigError("U, V, W must be matrices")
            return reference_model(params=tutorial_params(p["U"], p["V"], p["W"])), None, meta
        cfg = meta.get("model") or {}
        if cfg.get("bidirectional"):
            raise ConfigError("a bidirectional fill model has no left-to-right recurrence to analyse")
        ref = reference_model(params=ck["params"], cell=cfg.get("cell", "rnn"),
                              activation=cfg.get("activation", "tanh"), gate=cfg.get("gate", "sigmoid"))
    except (ConfigError, KeyError, IndexError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    vocab = None
    if meta.get("vocab") is not None:
        from rnnlm.data import Vocabulary

        vocab = Vocabulary.from_json(meta["vocab"])
    return ref, vocab, meta


# --------------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------------


def select_sentences(sentences, n=None, min_len=2, max_len=None, seed=0):
    """Training pairs ``(x, y)`` (the tutorial's x = s[:-1], y = s[1:]) from encoded sentences.

    Keeps sentences whose x has at least ``min_len`` tokens, cuts x and y to ``max_len`` tokens,
    and draws ``n`` of them without replacement (``None``: all), returned in corpus order.
    """
    pairs = [(np.asarray(s[:-1]), np.asarray(s[1:])) for s in sentences if len(s) - 1 >= max(1, min_len)]
    if not pairs:
        raise ConfigError(f"no sentence has at least {min_len} tokens")
    if n is not None and n < len(pairs):
        keep = np.sort(np.random.default_rng(seed).choice(len(pairs), size=int(n), replace=False))
        pairs = [pairs[i] for i in keep]
    if max_len is not None:
        pairs = [(x[:max_len], y[:max_len]) for x, y in pairs]
    return pairs


def _check_ids(ref, pairs):
    C = ref.word_dim
    for x, y in pairs:
        if len(x) and (max(x.max(), y.max()) >= C or min(x.min(), y.min()) < 0):
            raise ConfigError(f"sentences hold word ids outside the model's vocabulary of {C}")


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
        d = _activation_grad(ref.activation, act[:, 0])[:, :, None]  # f'(a_t) as a column
        return d * W[0], (None if U is None else d * U[0])
    if ref.cell == "gru":
        z, r, cand = act[:, 0], act[:, 1], act[:, 2]
        dz = _gate_grad(ref.gate, a[:, 0], z)[:, :, None]
        dr = _gate_grad(ref.gate, a[:, 1], r)[:, :, None]
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
    di, df, do = (_gate_grad(ref.gate, a[:, j], act[:, j])[:, :, None] for j in range(3))
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
    from rnnlm.models.reference import _pair

    x, y = _pair(x, y, ref.word_dim)
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
    from rnnlm.models.reference import _activation, _gate, _ids

    x = _ids(x, ref.word_dim)
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
                new = _activation(ref.activation, xu[0] + W[0] @ h + b[0])
            elif ref.cell == "gru":
                z = _gate(ref.gate, xu[0] + W[0] @ h + b[0])
                r = _gate(ref.gate, xu[1] + W[1] @ h + b[1])
                cand = np.tanh(xu[2] + W[2] @ (h * r) + b[2])
                new = (1.0 - z) * cand + z * h
            else:
                a = xu + W @ h + b
                i, f, o = _gate(ref.gate, a[:3])
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
    from rnnlm.models.reference import _pair

    x, y = _pair(x, y, ref.word_dim)
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


@_one_blas_thread
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
    _check_ids(ref, pairs)
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


# --------------------------------------------------------------------------------------------
# Truncated BPTT
# --------------------------------------------------------------------------------------------


def _rnn_numpy(model, bptt_truncate=-1):
    """The tutorial's RNNNumpy for a one-layer rnn model without biases (or an RNNNumpy itself)."""
    if isinstance(model, RNNNumpy):
        return model
    ref = reference_model(model)
    if ref.cell != "rnn" or ref.layers != 1 or ref.embedding_dim:
        raise ConfigError("truncated-BPTT analysis needs the tutorial's model: one rnn layer with one-hot "
                          f"input (got cell={ref.cell}, layers={ref.layers}, embedding={ref.embedding_dim})")
    p = ref.params
    if np.any(p["b0"]) or np.any(p["c"]):
        raise ConfigError("truncated-BPTT analysis uses the tutorial's RNNNumpy, which has no biases; "
                          "this model's biases are not zero")
    return RNNNumpy(ref.word_dim, ref.hidden_dim, bptt_truncate=bptt_truncate, activation=ref.activation,
                    params={"U": p["U0"][0], "V": p["V"], "W": p["W0"][0]})


@_one_blas_thread
def truncation_error(model, sentences, truncations=None, modes=("tutorial", "scan")) -> dict:
    """Relative error of truncated BPTT against full BPTT, per ``bptt_truncate`` k.

    ``model``: an :class:`~rnnlm.models.reference.RNNNumpy` or any one-layer, bias-free rnn model
    :func:`reference_model` accepts (the tutorial's).  ``truncations``: the k to try (default
    0 .. longest sentence, which reaches full BPTT for both definitions).  For each mode
    (:meth:`RNNNumpy.bptt`'s ``truncation``) and k, with g = (∂L/∂U, ∂L/∂W) of a sentence's sum
    loss (V's gradient is exact under both truncations and is left out):

    - ``mean`` / ``max``: over sentences of ‖g_k − g‖ / ‖g‖;
    - ``batch``: the same for the gradient summed over all sentences (what a mini-batch sees);
    - ``U`` / ``W``: the mean relative error of each parameter alone;
    - ``bound``: mean over sentences of Σ_{j>k} ‖g_j − g_{j−1}‖ / ‖g‖ (over the k tried), an upper
      bound on the error that never grows with k (the error itself can: contributions of
      different distances may cancel).

    Returns ``{"truncations": [...], "sentences": n, "lengths": [...], "modes": {mode: {...}}}``.
    """
    rnn = _rnn_numpy(model)
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in sentences if len(x)]
    if not pairs:
        raise ConfigError("truncation_error needs at least one non-empty sentence")
    Tmax = max(len(x) for x, _ in pairs)
    ks = list(range(Tmax + 1)) if truncations is None else [int(k) for k in truncations]
    if any(k < 0 for k in ks):
        raise ConfigError("truncations must be >= 0 (full BPTT is the reference)")
    full = [rnn.bptt(x, y, truncation="tutorial", bptt_truncate=-1) for x, y in pairs]
    full_flat = [np.concatenate([dU.ravel(), dW.ravel()]) for dU, _, dW in full]
    batch_full = np.sum(full_flat, axis=0)
    out = {"truncations": ks, "sentences": len(pairs), "lengths": [len(x) for x, _ in pairs], "modes": {}}
    for mode in modes:
        rel = np.zeros((len(pairs), len(ks)))
        rel_u = np.zeros_like(rel)
        rel_w = np.zeros_like(rel)
        steps = np.zeros_like(rel)  # ‖g_k − g_{k_prev}‖ / ‖g‖ for the bound
        batch = np.zeros((len(ks), batch_full.size))
        for i, ((x, y), (fU, _, fW), ff) in enumerate(zip(pairs, full, full_flat)):
            nf, nu, nw = (max(np.linalg.norm(a), 1e-300) for a in (ff, fU, fW))
            prev = None
            for j, k in enumerate(ks):
                dU, _, dW = rnn.bptt(x, y, truncation=mode, bptt_truncate=k)
                flat = np.concatenate([dU.ravel(), dW.ravel()])
                rel[i, j] = np.linalg.norm(flat - ff) / nf
                rel_u[i, j] = np.linalg.norm(dU - fU) / nu
                rel_w[i, j] = np.linalg.norm(dW - fW) / nw
                steps[i, j] = 0.0 if prev is None else np.linalg.norm(flat - prev) / nf
                batch[j] += flat
                prev = flat
        # bound at k_j: the changes still to come after k_j, plus what the last k tried misses.
        bound = np.cumsum(steps[:, ::-1], axis=1)[:, ::-1] - steps + rel[:, -1:]
        out["modes"][mode] = {
            "mean": rel.mean(axis=0), "max": rel.max(axis=0),
            "batch": np.linalg.norm(batch - batch_full, axis=1) / max(np.linalg.norm(batch_full), 1e-300),
            "U": rel_u.mean(axis=0), "W": rel_w.mean(axis=0), "bound": bound.mean(axis=0),
            "per_sentence": rel,
        }
    return out


@_one_blas_thread
def truncation_training(train, valid, word_dim, hidden_dim=32, truncations=(1, 2, 4, -1),
                        modes=("tutorial", "scan"), epochs=2, learning_rate=0.005, activation="tanh", seed=0,
                        progress=None) -> dict:
    """What truncation costs: one short SGD run (the tutorial's per-sentence ``sgd_step``) per
    truncation setting.

    ``train``, ``valid``: (x, y) pairs.  Every run starts from the same weights
    (:func:`~rnnlm.models.reference.init_tutorial_params` with ``seed``) and sees the sentences in the
    same order; runs differ only in ``bptt_truncate`` k and the truncation definition (``modes``;
    k = -1, full BPTT, runs once as mode ``full``).  Returns ``runs``: a list of
    ``{"truncation", "bptt_truncate", "train_loss", "valid_loss", "seconds"}`` with losses (mean
    nats per word) before training and after every epoch, the settings, and ``models``
    (``(mode, k)`` -> the trained :class:`~rnnlm.models.reference.RNNNumpy`).
    """
    train = [(np.asarray(x), np.asarray(y)) for x, y in train if len(x)]
    valid = [(np.asarray(x), np.asarray(y)) for x, y in valid if len(x)]
    if not train:
        raise ConfigError("truncation_training needs training sentences")
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    settings = [("full", -1)] if any(int(k) < 0 for k in truncations) else []
    settings += [(m, int(k)) for m in modes for k in truncations if int(k) >= 0]
    init = init_tutorial_params(word_dim, hidden_dim, seed=seed)
    order = [np.random.default_rng(seed + 1 + e).permutation(len(train)) for e in range(epochs)]
    X, Y = [x for x, _ in train], [y for _, y in train]
    VX, VY = [x for x, _ in valid], [y for _, y in valid]
    runs, models = [], {}
    for mode, k in settings:
        rnn = RNNNumpy(word_dim, hidden_dim, bptt_truncate=k, activation=activation, params=init)
        tl, vl = [rnn.calculate_loss(X, Y)], [rnn.calculate_loss(VX, VY) if valid else None]
        t0 = time.perf_counter()
        for e in range(epochs):
            for i in (progress(order[e]) if progress else order[e]):
                rnn.sgd_step(train[i][0], train[i][1], learning_rate,
                             truncation="tutorial" if mode == "full" else mode)
            tl.append(rnn.calculate_loss(X, Y))
            vl.append(rnn.calculate_loss(VX, VY) if valid else None)
        runs.append({"truncation": mode, "bptt_truncate": k, "train_loss": tl, "valid_loss": vl,
                     "seconds": time.perf_counter() - t0})
        models[(mode, k)] = rnn
    return {"epochs": epochs, "learning_rate": learning_rate, "hidden_dim": hidden_dim,
            "vocab_size": word_dim,
            "activation": activation, "train_sentences": len(train), "valid_sentences": len(valid),
            "runs": runs, "models": models}


# --------------------------------------------------------------------------------------------
# Exploding gradients
# --------------------------------------------------------------------------------------------


def _global_norm(grads):
    return float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))


def _clip(grads, clip):
    norm = _global_norm(grads)
    if not clip or norm <= clip:
        return grads, norm
    scale = clip / (norm + 1e-6)  # the same rule as rnnlm.training.optim's global-norm clipping
    return {k: g * scale for k, g in grads.items()}, norm


@_one_blas_thread
def exploding_gradients(model, sentences, radii=(0.5, 1.0, 1.5, 2.0, 3.0, 4.0), clip=5.0, sgd_steps=None,
                        learning_rate=0.005, max_distance=20) -> dict:
    """Rescale W to each spectral radius in ``radii`` and measure the gradients.

    Per radius: ``norm`` — the global L2 norm of the full-BPTT parameter gradient of each
    sentence's sum loss (``mean``, ``median``, ``max`` over sentences) and ``clipped_norm``, the
    same after global-norm clipping at ``clip``; ``decay``: the per-step factor of ‖∂L_t/∂s_k‖
    (:func:`gradient_norms` up to ``max_distance``; > 1 means gradients grow going back in time);
    ``sgd``: the mean loss per word after one pass of per-sentence SGD over the sentences (at
    most ``sgd_steps``) without and with clipping (None when the weights went to inf/NaN).
    """
    ref0 = reference_model(model)
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in sentences if len(x)]
    if not pairs:
        raise ConfigError("exploding_gradients needs at least one non-empty sentence")
    _check_ids(ref0, pairs)
    if clip is None or clip <= 0:
        raise ConfigError(f"clip must be positive, got {clip}")
    steps = pairs if sgd_steps is None else pairs[: int(sgd_steps)]
    rows = []
    for rho in radii:
        params = scale_recurrent(ref0.params, spectral_radius=float(rho))
        ref = _like(ref0, params)
        norms = np.array([_global_norm(ref.bptt(x, y)) for x, y in pairs])
        clipped = np.minimum(norms, clip)
        g = gradient_norms(ref, pairs, norm="fro", max_distance=max_distance)
        row = {"radius": float(rho),
               "norm": {"mean": float(norms.mean()), "median": float(np.median(norms)),
                        "max": float(norms.max())},
               "clipped_norm": {"mean": float(clipped.mean()), "median": float(np.median(clipped)),
                                "max": float(clipped.max())},
               "norms": norms, "decay": g["decay"]["loss_grad"], "sgd": {}}
        if steps:
            for label, c in (("no_clip", 0.0), ("clip", clip)):
                row["sgd"][label] = _sgd_pass(_like(ref0, params), steps, learning_rate, c)
        rows.append(row)
    return {"radii": [float(r) for r in radii], "clip": float(clip), "learning_rate": learning_rate,
            "sgd_steps": len(steps), "sentences": len(pairs), "model": {
                "cell": ref0.cell, "activation": ref0.activation, "hidden_dim": ref0.hidden_dim},
            "rows": rows}


def _like(ref, params):
    return GatedRNNNumpy(ref.cell, ref.word_dim, ref.hidden_dim, embedding_dim=ref.embedding_dim,
                         layers=ref.layers, gate=ref.gate, activation=ref.activation, params=params)


def _sgd_pass(ref, pairs, lr, clip):
    """Per-sentence SGD over ``pairs``; mean loss per word before and after, the largest norm seen."""
    n = sum(len(y) for _, y in pairs)
    before = sum(ref.loss(x, y) for x, y in pairs) / n
    largest = 0.0
    with np.errstate(all="ignore"):  # divergence is the point of the experiment, not an error
        for x, y in pairs:
            grads, norm = _clip(ref.bptt(x, y), clip)
            largest = max(largest, norm) if np.isfinite(norm) else math.inf
            for k, g in grads.items():
                ref.params[k] -= lr * g
            if not all(np.all(np.isfinite(p)) for p in ref.params.values()):
                return {"before": before, "after": None, "largest_norm": largest, "diverged": True}
        after = sum(ref.loss(x, y) for x, y in pairs) / n
    ok = np.isfinite(after)
    return {"before": before, "after": float(after) if ok else None, "largest_norm": largest,
            "diverged": not ok}


# --------------------------------------------------------------------------------------------
# JSON and plots
# --------------------------------------------------------------------------------------------


def to_jsonable(obj):
    """numpy arrays and scalars -> lists and Python numbers; NaN/inf -> None; dict keys -> str."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _figure(nrows=1, ncols=1, width=6.0, height=4.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _named(results):
    if isinstance(results, dict) and "loss_grad" in results:
        return {"model": results}
    return dict(results)


def plot_heatmap(results, max_len=None):
    """Heat maps of the mean ‖∂L_t/∂s_k‖ over (t, k), one panel per model, log colour scale.

    ``results``: one :func:`gradient_norms` result or a dict name -> result.  Returns a Figure.
    """
    from matplotlib.colors import LogNorm

    named = _named(results)
    n = len(named)
    ncols = min(n, 3)
    fig, axes = _figure((n + ncols - 1) // ncols, ncols, 4.6, 4.0)
    for ax, (name, r) in zip(axes.flat, named.items()):
        h = np.asarray(r["heatmap"], dtype=float)
        if max_len:
            h = h[:max_len, :max_len]
        pos = h[np.isfinite(h) & (h > 0)]
        lo, hi = (pos.min(), pos.max()) if pos.size else (1e-3, 1.0)
        im = ax.imshow(np.where(h > 0, h, np.nan), origin="lower", cmap="viridis",
                       norm=LogNorm(vmin=max(lo, hi * 1e-12), vmax=hi), interpolation="nearest")
        ax.set_xlabel("k (state s_k)")
        ax.set_ylabel("t (loss L_t)")
        ax.set_title(f"{name}: ‖∂L_t/∂s_k‖", fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.85)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig


def plot_decay(results, curve="geomean"):
    """Decay curves per model on a log axis: ‖∂L_t/∂s_k‖ (left) and ‖∂s_t/∂s_k‖ (right) against
    the distance t − k, with the fitted exponential dashed.  ``curve``: ``geomean`` (what is fitted)
    or ``mean``.  Returns a Figure."""
    named = _named(results)
    fig, axes = _figure(1, 2, 6.0, 4.2)
    for ax, key, title in ((axes[0, 0], "loss_grad", "‖∂L_t/∂s_k‖"), (axes[0, 1], "jacobian", "‖∂s_t/∂s_k‖")):
        for name, r in named.items():
            d = np.asarray(r["distance"])
            y = np.asarray(r[key][curve], dtype=float)
            fit = r["decay"][key]
            label = name if fit["factor"] is None else f"{name} (×{fit['factor']:.3g}/step)"
            line, = ax.plot(d, np.where(y > 0, y, np.nan), marker=".", label=label)
            if fit["factor"] is not None:
                lo, hi = fit["distances"]
                dd = np.arange(lo, hi + 1)
                ax.plot(dd, np.exp(fit["intercept"] + fit["slope"] * dd), ls="--", color=line.get_color(),
                        lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("distance t − k (steps back in time)")
        ax.set_title(f"{title} ({curve} over sentences)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def plot_truncation(trunc, training=None):
    """Relative error of truncated BPTT against ``bptt_truncate`` (with the non-increasing bound
    dotted); ``trunc``: one :func:`truncation_error` result or a dict name -> result; with
    ``training`` (:func:`truncation_training`) a second panel of validation (or
    training) loss per epoch for each k.  Returns a Figure."""
    named = {"": trunc} if "modes" in trunc else dict(trunc)
    fig, axes = _figure(1, 2 if training else 1, 6.0, 4.2)
    ax = axes[0, 0]
    top = 0.0
    for name, tr in named.items():
        ks = tr["truncations"]
        for mode, m in tr["modes"].items():
            label = f"{name} {mode}".strip()
            line, = ax.plot(ks, m["mean"], marker=".", label=f"{label}: error")
            ax.plot(ks, m["bound"], ls=":", color=line.get_color(), lw=1, label=f"{label}: bound")
            top = max(top, float(np.max(m["mean"])))
    ax.set_xlabel("bptt_truncate k")
    ax.set_ylabel("‖g_k − g‖ / ‖g‖  (g = ∂L/∂U, ∂L/∂W)")
    ax.set_title("truncated BPTT vs full BPTT (mean over sentences)", fontsize=10)
    ax.set_ylim(0, 1.08 * top if top > 0 else 1.0)  # the bound may run far above; the error is the point
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    if training:
        ax = axes[0, 1]
        key = "valid_loss" if training.get("valid_sentences") else "train_loss"
        styles = {"full": "-", "tutorial": "--", "scan": ":"}
        for run in training["runs"]:
            label = ("full BPTT" if run["truncation"] == "full"
                     else f"{run['truncation']}, k = {run['bptt_truncate']}")
            ax.plot(range(len(run[key])), run[key], marker=".", ls=styles.get(run["truncation"], "-"),
                    label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{key.replace('_', ' ')} (nats/word)")
        ax.set_title("what truncation costs (per-sentence SGD)", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def plot_exploding(expl):
    """Gradient norm against the spectral radius of W, without and with global-norm clipping
    (log axis; the clip threshold dashed); a second panel with the loss after one SGD pass.
    ``expl``: one :func:`exploding_gradients` result or a dict name -> result.  Returns a Figure."""
    named = {"model": expl} if "rows" in expl else dict(expl)
    fig, axes = _figure(1, 2, 6.0, 4.2)
    ax, ax2 = axes[0, 0], axes[0, 1]
    clip = None
    for name, e in named.items():
        r = [row["radius"] for row in e["rows"]]
        line, = ax.plot(r, [row["norm"]["median"] for row in e["rows"]], marker="o",
                        label=f"{name}: no clipping")
        ax.plot(r, [row["clipped_norm"]["median"] for row in e["rows"]], marker="x", ls="--",
                color=line.get_color(), label=f"{name}: clipped")
        clip = e["clip"]
        before = [next(iter(row["sgd"].values()), {}).get("before") for row in e["rows"]]
        ax2.plot(r, [np.nan if v is None else v for v in before], ls=":", color=line.get_color(),
                 label=f"{name}: before")
        for label, ls, mk in (("no_clip", "-", "o"), ("clip", "--", "x")):
            ys = [row["sgd"].get(label, {}).get("after") for row in e["rows"]]
            ax2.plot(r, [np.nan if v is None else v for v in ys], marker=mk, ls=ls, color=line.get_color(),
                     label=f"{name}: after, {label.replace('_', ' ')}")
    if clip:
        ax.axhline(clip, color="grey", ls=":", lw=1, label=f"clip = {clip:g}")
    ax.set_yscale("log")
    ax.set_xlabel("spectral radius of W")
    ax.set_ylabel("‖∂L/∂θ‖ (median over sentences)")
    ax.set_title("exploding gradients", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax2.set_yscale("log")
    ax2.set_xlabel("spectral radius of W")
    ax2.set_ylabel("loss, nats/word (missing point: weights went to inf/NaN)")
    ax2.set_title("one pass of per-sentence SGD without and with clipping", fontsize=10)
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8)
    return fig


def save_figure(fig, path, dpi=100) -> Path:
    """Write ``fig`` as a PNG atomically (temporary file in the same folder, then os.replace)."""
    from rnnlm.fileio import atomic_savefig

    return atomic_savefig(fig, path, dpi=dpi)
