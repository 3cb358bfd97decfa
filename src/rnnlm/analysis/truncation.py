"""Truncated BPTT against full BPTT: the gradient's error per ``bptt_truncate`` k, for both
definitions of :meth:`rnnlm.models.reference.RNNNumpy.bptt`, and what truncation costs in training."""

from __future__ import annotations

import time

import numpy as np

from rnnlm.analysis.common import one_blas_thread
from rnnlm.analysis.models import reference_model
from rnnlm.errors import ConfigError
from rnnlm.models.reference import RNNNumpy, init_tutorial_params

__all__ = ["truncation_error", "truncation_training"]


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


@one_blas_thread
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
        for i, ((x, y), (fU, _, fW), ff) in enumerate(zip(pairs, full, full_flat, strict=True)):
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


@one_blas_thread
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
