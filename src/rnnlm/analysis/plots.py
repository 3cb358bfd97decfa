"""matplotlib Figures of the analyses (Agg, no pyplot state); :func:`save_figure` writes PNGs
atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_decay", "plot_exploding", "plot_heatmap", "plot_truncation", "save_figure"]


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
    for ax, (name, r) in zip(axes.flat, named.items(), strict=False):  # spare axes are hidden below
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
