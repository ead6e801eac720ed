"""Plots of an evaluation (matplotlib, Agg backend, PNG bytes): ROC (linear and log-FPR), precision-
recall, DET (Martin et al., Eurospeech 1997: miss vs false-alarm rates on normal-deviate axes),
score histograms, reliability diagram with expected calibration error (Guo et al., ICML 2017), and
heatmaps for the robustness and cross-generator matrices.

Every function returns the PNG as ``bytes`` (the HTML report embeds them) and, given ``path``, also
writes it atomically (both through :func:`detector.figures.figure_png`, the one figure-to-PNG helper).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from sklearn.metrics import det_curve, precision_recall_curve, roc_curve

from detector.figures import figure_png, pyplot

from .metrics import Calibration, as_arrays

plt = pyplot()

__all__ = ["Curve", "roc_plot", "pr_plot", "det_plot", "histogram_plot", "reliability_plot", "heatmap_plot"]

Curve = tuple  # (label, y_true, scores, dashed: bool)
DPI = 110


def _finish(fig, path: str | os.PathLike | None) -> bytes:
    return figure_png(fig, path, dpi=DPI)


def _style(i: int, dashed: bool) -> dict:
    return {"color": f"C{i % 10}", "linestyle": "--" if dashed else "-", "linewidth": 1.4 if dashed else 1.8}


def roc_plot(curves: Sequence[Curve], path=None, log_fpr: bool = False, title: str | None = None) -> bytes:
    """ROC curves; with ``log_fpr`` the x axis is logarithmic (the low-FPR region that matters)."""
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for i, (label, y, s, dashed) in enumerate(curves):
        y, s = as_arrays(y, s)
        fpr, tpr, _ = roc_curve(y, s)
        if log_fpr:
            floor = 0.5 / max(1, int((y == 0).sum()))
            fpr = np.maximum(fpr, floor)
        ax.plot(fpr, tpr, label=label, **_style(i, dashed))
    if log_fpr:
        ax.set_xscale("log")
        ax.axvline(0.01, color="0.6", lw=0.8, ls=":")
        ax.axvline(0.001, color="0.6", lw=0.8, ls=":")
        ax.set_xlabel("false-positive rate (log; real called fake)")
    else:
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls=":")
        ax.set_xlabel("false-positive rate (real called fake)")
    ax.set_ylabel("true-positive rate (fake caught)")
    ax.set_ylim(0, 1.01)
    ax.set_title(title or ("ROC, log FPR" if log_fpr else "ROC"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _finish(fig, path)


def pr_plot(curves: Sequence[Curve], path=None) -> bytes:
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for i, (label, y, s, dashed) in enumerate(curves):
        y, s = as_arrays(y, s)
        p, r, _ = precision_recall_curve(y, s)
        ax.step(r, p, where="post", label=label, **_style(i, dashed))
    ax.set_xlabel("recall (fake caught)")
    ax.set_ylabel("precision (flagged that are fake)")
    ax.set_ylim(0, 1.01)
    ax.set_title("Precision-recall")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return _finish(fig, path)


def det_plot(curves: Sequence[Curve], path=None) -> bytes:
    """Detection error trade-off on probit axes."""
    from scipy.stats import norm

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    lim = 1e-3
    for i, (label, y, s, dashed) in enumerate(curves):
        y, s = as_arrays(y, s)
        fpr, fnr, _ = det_curve(y, s)
        fpr, fnr = np.clip(fpr, lim, 1 - lim), np.clip(fnr, lim, 1 - lim)
        ax.plot(norm.ppf(fpr), norm.ppf(fnr), label=label, **_style(i, dashed))
    ticks = [0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99]
    ax.set_xticks(norm.ppf(ticks), [f"{t:g}" for t in ticks], fontsize=7)
    ax.set_yticks(norm.ppf(ticks), [f"{t:g}" for t in ticks], fontsize=7)
    ax.set_xlim(norm.ppf(lim), norm.ppf(1 - lim))
    ax.set_ylim(norm.ppf(lim), norm.ppf(1 - lim))
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("false-negative rate (fake missed)")
    ax.set_title("DET")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    return _finish(fig, path)


def histogram_plot(real: np.ndarray, fakes: dict[str, np.ndarray], threshold: float, path=None,
                   title: str = "Detector scores") -> bytes:
    """Score distribution of the real set and each fake set, with the decision threshold."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    bins = np.linspace(0, 1, 41)
    if len(real):
        ax.hist(real, bins=bins, alpha=0.55, color="C0", label=f"real (n={len(real)})")
    for i, (k, v) in enumerate(fakes.items()):
        ax.hist(v, bins=bins, histtype="step", lw=1.8, color=f"C{i + 1}", label=f"{k} (n={len(v)})")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("P(fake)")
    ax.set_ylabel("images (log scale)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _finish(fig, path)


def reliability_plot(cal: Calibration, path=None) -> bytes:
    """Observed fraction of fakes against mean predicted P(fake) per bin; bar width ~ bin share."""
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    edges = np.asarray(cal.bin_edges)
    centres = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    frac = np.array([np.nan if f is None else f for f in cal.fraction_fake])
    conf = np.array([np.nan if c is None else c for c in cal.mean_confidence])
    ax.bar(centres, np.nan_to_num(frac), width=width * 0.9, color="C0", alpha=0.7, label="observed fraction fake")
    ax.plot(conf, frac, "o", color="C3", ms=4, label="bin mean P(fake)")
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(fake)")
    ax.set_ylabel("fraction fake")
    ax.set_title(f"Reliability (ECE = {cal.ece:.3f})")
    ax.legend(fontsize=7, loc="upper left")
    return _finish(fig, path)


def heatmap_plot(values: Sequence[Sequence[float]], rows: Sequence[str], cols: Sequence[str], path=None,
                 title: str = "", xlabel: str = "", ylabel: str = "", vmin: float = 0.5, vmax: float = 1.0,
                 cmap: str = "viridis", fmt: str = "{:.3f}") -> bytes:
    """Annotated heatmap (robustness: perturbation x fake set; matrix: trained on x tested on)."""
    a = np.asarray(values, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(1.2 + 0.95 * max(2, len(cols)), 1.0 + 0.5 * max(2, len(rows))))
    im = ax.imshow(a, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    mid = (vmin + vmax) / 2
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            ax.text(j, i, fmt.format(a[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if a[i, j] < mid else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _finish(fig, path)
