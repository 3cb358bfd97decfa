"""The tutorial's experiment (issue 3): one SGD step on one sentence, the NumPy reference against
the compiled graphs (and the same step written directly in JAX)."""

from __future__ import annotations

import time

import numpy as np

from rnnlm.bench.candidates import Candidates
from rnnlm.bench.machine import default_linkers, finish, load_now, optional_module
from rnnlm.bench.timing import block
from rnnlm.errors import ConfigError

__all__ = ["SGD_TARGET_SPEEDUP", "bench_sgd_step", "tutorial_sgd_graph"]


SGD_TARGET_SPEEDUP = 15.0  # issue 3: compiled graph vs the NumPy reference, same process


def tutorial_sgd_graph(rnn, length: int, form: str = "split", linker: str = "jax"):
    """A static-length compiled ``sgd_step(x, y, lr)`` on the shared U, V, W of ``rnn``.

    ``rnn`` is a :class:`rnnlm.models.tutorial.RNN`; ``length`` the sentence length T (static shapes are
    what the JAX linker needs; ``RNN`` declares ``x`` as a vector of unknown length).

    - ``form="static"``: ``RNN``'s fast graph as it is (``U[:, x_t]`` inside the scan,
      ``truncate_gradient``), only with static shapes.
    - ``form="split"``: the faster graph proposed for ``RNN``: the input columns ``U[:, x]``
      gathered once outside the scan; truncation written as two scans, the first ``T-k`` steps
      with their gradient path to U and W disconnected (this is exactly what
      ``truncate_gradient=k`` computes, but PyTensor's JAX backend fails on a truncated scan
      whose sequence needs a gradient); and U updated only in the columns that were used
      (``inc_subtensor``) instead of ``U - lr·dU`` with a dense (H, C) dU.

    Both give the gradients of :meth:`rnnlm.models.reference.RNNNumpy.bptt` with ``truncation="scan"``.
    """
    from rnnlm import engine

    T = engine.T
    U, V, W = rnn.U, rnn.V, rnn.W
    H, k, L = rnn.hidden_dim, rnn.bptt_truncate, int(length)
    f = T.tanh if rnn.activation == "tanh" else (lambda a: T.maximum(a, T.constant(0.0, dtype=engine.floatX)))
    x = engine.tensor("x", "int32", (L,))
    y = engine.tensor("y", "int32", (L,))
    lr = T.scalar("learning_rate", dtype=engine.floatX)
    s0 = T.zeros((H,), dtype=engine.floatX)
    if form == "static":
        def step(x_t, s_prev, U, W):
            return f(U[:, x_t] + T.dot(W, s_prev))

        s = engine.scan(step, sequences=[x], outputs_info=[s0], non_sequences=[U, W],
                        truncate_gradient=k)
    elif form == "split":
        # engine exports no disconnected_grad yet; both engines have it under .gradient
        cut = engine.disconnected_grad
        proj = U.T[x]  # (T, H): U[:, x_t] for every step, one gather
        Wt = W.T

        def step(p_t, s_prev, Wt):
            return f(p_t + T.dot(s_prev, Wt))

        n0 = L - k if 0 <= k < L else 0
        if n0:
            s1 = engine.scan(step, sequences=[cut(proj[:n0])], outputs_info=[s0], non_sequences=[cut(Wt)])
            s2 = engine.scan(step, sequences=[proj[n0:]], outputs_info=[cut(s1[-1])], non_sequences=[Wt])
            s = T.concatenate([s1, s2], axis=0)
        else:
            s = engine.scan(step, sequences=[proj], outputs_info=[s0], non_sequences=[Wt])
    else:
        raise ConfigError(f"unknown graph form {form!r}; choose static or split")
    logp = engine.log_softmax(T.dot(s, V.T), axis=-1)  # (T, C): one GEMM for all steps
    loss = -T.sum(logp[T.arange(L), y])
    if form == "split":
        dproj, dV, dW = engine.grad(loss, [proj, V, W])
        new_U = T.inc_subtensor(U.T[x], -lr * dproj).T  # repeated words accumulate, as in dU
        updates = [(U, new_U), (V, V - lr * dV), (W, W - lr * dW)]
    else:
        dU, dV, dW = engine.grad(loss, [U, V, W])
        updates = [(U, U - lr * dU), (V, V - lr * dV), (W, W - lr * dW)]
    return engine.function([x, y, lr], [], updates=updates, mode=engine.mode_for(linker))


def _hand_jax_tutorial_step(params: dict, bptt_truncate: int, length: int, activation="tanh"):
    """The same SGD step written directly in JAX (not rnnlm: the floor of the XLA backend).

    Truncation as in ``tutorial_sgd_graph(form="split")``.  Returns ``step(x, y, lr)`` that
    updates its own copy of the parameters and returns them (to be blocked on).
    """
    import jax
    import jax.numpy as jnp

    f = jnp.tanh if activation == "tanh" else jax.nn.relu
    L, k = int(length), int(bptt_truncate)
    n0 = L - k if 0 <= k < L else 0
    H = params["W"].shape[0]

    def run(proj, s, Wt):
        def body(s, p_t):
            s = f(p_t + s @ Wt)
            return s, s

        return jax.lax.scan(body, s, proj)

    def loss(proj, V, W, y):
        Wt = W.T
        s_last = jnp.zeros((H,), jnp.float32)
        parts = []
        if n0:
            s_last, s1 = run(jax.lax.stop_gradient(proj[:n0]), s_last, jax.lax.stop_gradient(Wt))
            s_last = jax.lax.stop_gradient(s_last)
            parts.append(s1)
        _, s2 = run(proj[n0:], s_last, Wt)
        S = jnp.concatenate(parts + [s2], axis=0)
        logp = jax.nn.log_softmax(S @ V.T, axis=-1)
        return -jnp.sum(logp[jnp.arange(L), y])

    @jax.jit
    def sgd(p, x, y, lr):
        proj = p["U"].T[x]
        dproj, dV, dW = jax.grad(loss, argnums=(0, 1, 2))(proj, p["V"], p["W"], y)
        return {"U": p["U"].at[:, x].add(-lr * dproj.T), "V": p["V"] - lr * dV, "W": p["W"] - lr * dW}

    state = {"p": {k_: jnp.asarray(np.asarray(v, np.float32)) for k_, v in params.items()}}

    def step(x, y, lr):
        state["p"] = sgd(state["p"], x, y, lr)
        return state["p"]

    step.params = lambda: state["p"]
    return step


def bench_sgd_step(word_dim: int = 8000, hidden_dim: int = 100, bptt_truncate: int = 4,
                   length: int = 45, repeat: int = 10, linkers=None, hand_jax: bool = True,
                   seed: int = 0, learning_rate: float = 0.005, shipped: bool = True) -> dict:
    """The tutorial's experiment: one SGD step on one sentence, NumPy reference vs compiled graph.

    Candidates: ``numpy`` -- :class:`~rnnlm.models.reference.RNNNumpy` ``sgd_step`` (float64, the
    tutorial's truncated BPTT loop); ``rnn_c`` -- :class:`~rnnlm.models.tutorial.RNN` (fast form) on
    the C linker, as the library ships it; ``rnn_jax_static`` and ``rnn_jax_split`` -- the forms of
    :func:`tutorial_sgd_graph` on the JAX linker; ``hand_jax`` -- the same step written in JAX.
    Those that cannot run here are listed under ``skipped`` with the reason, those that raise
    under ``failed`` with the error (:class:`~rnnlm.bench.candidates.Candidates`).  All start from
    the same float32-representable weights.  ``speedup`` is numpy's median over the candidate's
    (None without the reference); ``meets_target``: whether the best compiled graph's speedup
    reaches ``target_speedup`` (:data:`SGD_TARGET_SPEEDUP`; None without a speedup).
    ``shipped``: :func:`rnnlm.bench.shipped.bench_shipped` -- ``RNN`` with its defaults against the
    reference, PyTorch and the blog's literal NumPy code (issue 15 B), under the key ``shipped``.
    """
    from rnnlm import engine
    from rnnlm.models.reference import RNNNumpy, init_tutorial_params
    from rnnlm.models.tutorial import RNN

    load_before = load_now()
    linkers = default_linkers() if linkers is None else list(linkers)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, word_dim, length).astype(np.int32)
    y = rng.integers(0, word_dim, length).astype(np.int32)
    params = init_tutorial_params(word_dim, hidden_dim, seed=seed)
    params = {k: v.astype(np.float32) for k, v in params.items()}
    lr32 = np.float32(learning_rate)
    cands = Candidates()

    def numpy_reference():
        ref = RNNNumpy(word_dim, hidden_dim, bptt_truncate, params=params)
        return (lambda: ref.sgd_step(x, y, learning_rate)), {
            "dtype": "float64", "compile_s": 0.0,
            "what": "reference.RNNNumpy.sgd_step (the tutorial's truncated BPTT loop)"}

    def rnn_c():
        t0 = time.perf_counter()
        rnn = RNN(word_dim, hidden_dim, bptt_truncate, params=params, fast=True, linker="c")
        rnn.sgd_step(x, y, lr32)
        return (lambda: rnn.sgd_step(x, y, lr32)), {
            "dtype": "float32", "compile_s": time.perf_counter() - t0,
            "what": "model.RNN(fast=True, linker='c').sgd_step (the window graph, dv='tutorial')"}

    def rnn_jax(form):
        def make():
            t0 = time.perf_counter()
            rnn = RNN(word_dim, hidden_dim, bptt_truncate, params=params, fast=True, linker="jax")
            fn = tutorial_sgd_graph(rnn, length, form=form, linker="jax")
            shared = [rnn.U, rnn.V, rnn.W]

            def step():
                return [fn(x, y, lr32), [p.get_value(borrow=True, return_internal_type=True) for p in shared]]

            block(step())
            return step, {"dtype": "float32", "compile_s": time.perf_counter() - t0,
                          "what": {"static": "model.RNN's fast graph with a static length, JAX linker",
                                   "split": "gather outside scan, truncation as two scans, sparse U "
                                            "update; JAX linker"}[form]}
        return make

    def hand_written_jax():
        t0 = time.perf_counter()
        hj = _hand_jax_tutorial_step(params, bptt_truncate, length)
        block(hj(x, y, lr32))
        return (lambda: hj(x, y, lr32)), {
            "dtype": "float32", "compile_s": time.perf_counter() - t0,
            "what": "the split graph written directly in JAX (not rnnlm; the XLA floor)"}

    cands.add("numpy", numpy_reference)
    if "c" in linkers:
        cands.add("rnn_c", rnn_c)
    if "jax" in linkers:
        for form in ("static", "split"):
            cands.add(f"rnn_jax_{form}", rnn_jax(form))
    else:
        why = ("the jax linker was not asked for" if engine.default_linker() == "jax" else
               f"no jax linker here ({engine.name} {engine.version}: C linker only, or JAX not installed)")
        cands.skip("rnn_jax_static", why)
        cands.skip("rnn_jax_split", why)
    if hand_jax:
        if optional_module("jax") is None:
            cands.skip("hand_jax", "jax is not installed")
        else:
            cands.add("hand_jax", hand_written_jax)

    timings = cands.compare(repeat)
    base = timings.get("numpy")
    results = {name: {**cands.info[name], **t,
                      "speedup": base["median_ms"] / t["median_ms"] if base else None}
               for name, t in timings.items()}
    rnnlm_names = [n for n, r in results.items() if n.startswith("rnn_") and r["speedup"] is not None]
    best = max(rnnlm_names, key=lambda n: results[n]["speedup"]) if rnnlm_names else None
    best_speedup = results[best]["speedup"] if best else None
    out = {
        "benchmark": "sgd-step",
        "settings": {"word_dim": word_dim, "hidden_dim": hidden_dim, "bptt_truncate": bptt_truncate,
                     "length": length, "repeat": repeat, "learning_rate": learning_rate, "seed": seed,
                     "linkers": linkers},
        "candidates": results,
        "skipped": cands.skipped,
        "failed": cands.failed,
        "best": best,
        "best_speedup": best_speedup,
        "target_speedup": SGD_TARGET_SPEEDUP,
        "meets_target": None if best_speedup is None else bool(best_speedup >= SGD_TARGET_SPEEDUP),
    }
    if shipped:
        from rnnlm.bench.shipped import bench_shipped

        out["shipped"] = bench_shipped(params, x, y, bptt_truncate, learning_rate, repeat=repeat)
    return finish(out, load_before)
