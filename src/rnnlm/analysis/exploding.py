"""Exploding gradients: W rescaled to a growing spectral radius; gradient norms with and without
global-norm clipping, and a short SGD run with and without it."""

from __future__ import annotations

import math

import numpy as np

from rnnlm.analysis.common import check_ids, one_blas_thread
from rnnlm.analysis.gradients import gradient_norms
from rnnlm.analysis.models import reference_model, scale_recurrent
from rnnlm.errors import ConfigError
from rnnlm.models.reference import GatedRNNNumpy

__all__ = ["exploding_gradients"]


def _global_norm(grads):
    return float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))


def _clip(grads, clip):
    norm = _global_norm(grads)
    if not clip or norm <= clip:
        return grads, norm
    scale = clip / (norm + 1e-6)  # the same rule as rnnlm.training.optim's global-norm clipping
    return {k: g * scale for k, g in grads.items()}, norm


@one_blas_thread
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
    check_ids(ref0, pairs)
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
