"""The tutorial's model as shipped (issue 15, target B): the ``shipped`` part of ``rnnlm bench sgd-step``.

``RNN(word_dim, hidden_dim, bptt_truncate)`` with its defaults, called as the tutorial does
(``model.sgd_step(x, y, lr)``), against the NumPy reference (``RNNNumpy.sgd_step``), PyTorch eager doing
the same step (``shared/anchors/torch_sgd_step.py``: PyTorch has no ``truncate_gradient``, so it runs full
BPTT -- the tutorial's truncation only removes work) and the blog's literal NumPy code (per-step softmax,
``np.outer``: the 2015 anchor).  Timed in alternation in one process; ratios are what to compare.
"""

from __future__ import annotations

import time

import numpy as np

from rnnlm.bench.candidates import Candidates
from rnnlm.bench.machine import optional_module
from rnnlm.bench.timing import compare

__all__ = ["SHIPPED_TARGETS", "bench_shipped", "torch_sgd_step", "tutorial_numpy_sgd_step"]

SHIPPED_TARGETS = {"vs_numpy": 8.0, "vs_torch": 1.0}  # issue 15 B


def torch_sgd_step(params: dict, x, y, lr: float):
    """The same step in PyTorch eager, float32, full BPTT (the anchor's code).  Returns a callable."""
    import torch

    U, V, W = (torch.tensor(np.asarray(params[k], np.float32), requires_grad=True) for k in "UVW")
    H = U.shape[0]
    xt, yt = torch.as_tensor(np.asarray(x, np.int64)), torch.as_tensor(np.asarray(y, np.int64))

    def step():
        s = torch.zeros(H)
        xs = U[:, xt].T  # (T, H) gather
        ss = []
        for t in range(len(x)):
            s = torch.tanh(xs[t] + W @ s)
            ss.append(s)
        loss = torch.nn.functional.cross_entropy(torch.stack(ss) @ V.T, yt, reduction="sum")
        loss.backward()
        with torch.no_grad():
            for p in (U, V, W):
                p -= lr * p.grad
                p.grad = None
        return loss

    return step


def tutorial_numpy_sgd_step(params: dict, x, y, lr: float, bptt_truncate: int):
    """The blog's literal ``RNNNumpy`` (part 2), float64: per-step softmax and ``np.outer`` loops."""
    U, V, W = (np.asarray(params[k], np.float64).copy() for k in "UVW")
    T, (H, C) = len(x), U.shape
    k = bptt_truncate

    def softmax(v):
        e = np.exp(v - np.max(v))
        return e / e.sum()

    def step():
        s = np.zeros((T + 1, H))
        o = np.zeros((T, C))
        for t in range(T):
            s[t] = np.tanh(U[:, x[t]] + W.dot(s[t - 1]))
            o[t] = softmax(V.dot(s[t]))
        dU, dV, dW = np.zeros(U.shape), np.zeros(V.shape), np.zeros(W.shape)
        d_o = o
        d_o[np.arange(T), y] -= 1.0
        for t in np.arange(T)[::-1]:
            dV += np.outer(d_o[t], s[t].T)
            dt = V.T.dot(d_o[t]) * (1 - s[t] ** 2)
            for b in np.arange(max(0, t - k), t + 1)[::-1]:
                dW += np.outer(dt, s[b - 1])
                dU[:, x[b]] += dt
                dt = W.T.dot(dt) * (1 - s[b - 1] ** 2)
        U[...] -= lr * dU
        V[...] -= lr * dV
        W[...] -= lr * dW

    step.params = lambda: (U, V, W)
    return step


def bench_shipped(params: dict, x, y, bptt_truncate: int, learning_rate: float, repeat: int = 10,
                  torch: bool = True) -> dict:
    """``{"candidates": name -> timing, "vs_numpy", "vs_torch", "vs_tutorial_numpy", "targets",
    "meets_targets", "skipped", "failed", "note"}`` for ``RNN`` as shipped (candidate ``shipped``)."""
    from rnnlm.models.reference import RNNNumpy
    from rnnlm.models.tutorial import RNN

    word_dim, hidden_dim = np.shape(params["V"])
    lr32 = np.float32(learning_rate)
    cands = Candidates()

    def shipped():
        t0 = time.perf_counter()
        rnn = RNN(word_dim, hidden_dim, bptt_truncate, params=params)  # the defaults, as in the tutorial
        rnn.sgd_step(x, y, lr32)
        return (lambda: rnn.sgd_step(x, y, lr32)), {
            "compile_s": time.perf_counter() - t0,
            "what": f"RNN({word_dim}, {hidden_dim}, bptt_truncate={bptt_truncate}).sgd_step, defaults "
                    f"(linker {getattr(rnn, 'linker', '?')!r}, dv {getattr(rnn, 'dv', '?')!r})"}

    def numpy_reference():
        ref = RNNNumpy(word_dim, hidden_dim, bptt_truncate, params=params)
        return (lambda: ref.sgd_step(x, y, learning_rate)), {
            "compile_s": 0.0, "what": "reference.RNNNumpy.sgd_step (vectorised NumPy, float64)"}

    def torch_peer():
        return torch_sgd_step(params, x, y, learning_rate), {
            "compile_s": 0.0, "what": f"PyTorch {torch_mod.__version__} eager, float32, full BPTT "
                                      f"(no truncate_gradient), {torch_mod.get_num_threads()} threads"}

    def tutorial_numpy():
        return tutorial_numpy_sgd_step(params, x, y, learning_rate, bptt_truncate), {
            "compile_s": 0.0, "what": "the blog's literal NumPy code (per-step softmax, np.outer), float64"}

    cands.add("shipped", shipped)
    cands.add("numpy", numpy_reference)
    torch_mod = optional_module("torch") if torch else None
    if torch_mod is not None:
        cands.add("torch", torch_peer)
    elif torch:
        cands.skip("torch", "PyTorch is not installed (optional: pip install 'rnnlm[torch]')")
    cands.add("tutorial_numpy", tutorial_numpy)
    timings = compare(cands.fns, repeat=repeat, failed=cands.failed)
    res = {name: {**cands.info[name], **t} for name, t in timings.items()}
    out = {"candidates": res, "skipped": dict(cands.skipped), "failed": dict(cands.failed),
           "targets": dict(SHIPPED_TARGETS),
           "note": "PyTorch runs full BPTT (it has no truncate_gradient); the tutorial's truncation only "
                   "removes work"}
    if "shipped" in res:
        ms = res["shipped"]["median_ms"]
        peers = (("numpy", "vs_numpy"), ("torch", "vs_torch"), ("tutorial_numpy", "vs_tutorial_numpy"))
        for peer, key in peers:
            if peer in res:
                out[key] = res[peer]["median_ms"] / ms
        out["meets_targets"] = {k: bool(out[k] >= v) for k, v in SHIPPED_TARGETS.items() if k in out}
    return out
