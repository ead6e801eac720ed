"""The metrics core (numpy only): ROC, AUC, average precision, EER, TPR at a fixed FPR, accuracy,
and the threshold rule that picks a detector's operating point from real validation scores.

Each quantity is computed one way, here, and used by hardening and retraining
(:mod:`detector.train.calibration`) and by evaluation (:mod:`eval.metrics` builds its reports on
these functions).

Conventions: label 1 = fake (the positive class), label 0 = real; a score is the detector's
probability of "fake" and an image is called fake when ``score >= threshold``.

* ROC AUC: the Mann-Whitney U statistic with mid-ranks, so ties count half (Mann & Whitney 1947;
  Hanley & McNeil, Radiology 1982). O(n log n), equal to the area under the empirical ROC.
* ROC curve and average precision: the empirical curve over every distinct score, the same
  vertices and the same step-wise AP sum as scikit-learn's ``roc_curve(drop_intermediate=False)``
  and ``average_precision_score`` (Manning, Raghavan & Schuetze 2008, sec. 8.4).
* Equal error rate: where FPR equals FNR on the empirical ROC, linearly interpolated between the
  two vertices that bracket it.
* TPR at a target FPR: the largest TPR among ROC vertices whose FPR does not exceed the target
  (conservative: no interpolation).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["MetricError", "as_arrays", "pair", "accuracy", "confusion", "auc", "roc_curve", "average_precision",
           "equal_error_rate", "tpr_at_fpr", "threshold_at_fpr"]


class MetricError(ValueError):
    """Inputs for which a metric is undefined (one class only, empty, NaN scores...)."""


def as_arrays(y_true: Sequence[int], scores: Sequence[float], need_both: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels (0/1) and scores (finite) and return them as numpy arrays."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise MetricError(f"labels and scores must be 1-D, got shapes {y.shape} and {s.shape}")
    if len(y) != len(s):
        raise MetricError(f"{len(y)} labels but {len(s)} scores")
    if len(y) == 0:
        raise MetricError("no scores: the test set is empty")
    if not np.isin(y, (0, 1)).all():
        bad = sorted(set(np.unique(y).tolist()) - {0, 1})[:5]
        raise MetricError(f"labels must be 0 (real) or 1 (fake), found {bad}")
    if not np.isfinite(s).all():
        raise MetricError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    y = y.astype(np.int64)
    if need_both:
        n_fake = int(y.sum())
        if n_fake == 0 or n_fake == len(y):
            only = "real" if n_fake == 0 else "fake"
            raise MetricError(f"all {len(y)} images are {only}: ROC AUC, AP and EER need both real and fake "
                              "images (for a real-only set use the false-positive audit)")
    return y, s


def pair(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores of a real-vs-fake test set (fake = 1)."""
    y = np.concatenate([np.zeros(len(real), np.int64), np.ones(len(fake), np.int64)])
    return y, np.concatenate([real, fake])


def accuracy(y: np.ndarray, s: np.ndarray, threshold: float) -> float:
    """Fraction of images called right, an image being called fake when ``score >= threshold``."""
    return float(((s >= threshold) == (y == 1)).mean())


def confusion(y_true: Sequence[int], scores: Sequence[float], threshold: float) -> dict:
    """``{"tn", "fp", "fn", "tp"}`` calling an image fake when ``score >= threshold``."""
    y, s = as_arrays(y_true, scores, need_both=False)
    pred = s >= threshold
    return {"tn": int(((y == 0) & ~pred).sum()), "fp": int(((y == 0) & pred).sum()),
            "fn": int(((y == 1) & ~pred).sum()), "tp": int(((y == 1) & pred).sum())}


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC of 0/1 labels ``y`` and scores ``s`` (both classes present): Mann-Whitney U with
    mid-ranks (ties count half). Unvalidated, for inner loops; see :func:`as_arrays`."""
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    _, first, counts = np.unique(ss, return_index=True, return_counts=True)
    mid = first + (counts - 1) / 2.0 + 1.0  # mid-ranks for ties
    ranks[order] = np.repeat(mid, counts)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives ``(fps, tps)`` when calling ``score >= t`` fake, for every distinct
    score ``t`` from the highest down; returns them and the thresholds."""
    desc = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[desc], y[desc]
    last = np.r_[np.where(np.diff(s))[0], y.size - 1]  # the last index of each run of equal scores
    tps = np.cumsum(y, dtype=np.float64)[last]
    fps = 1 + last - tps
    return fps, tps, s[last]


def roc_curve(y_true: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` at every distinct score, starting from (0, 0) at threshold +inf."""
    y, s = as_arrays(y_true, scores)
    fps, tps, thr = _counts(y, s)
    fps, tps = np.r_[0, fps], np.r_[0, tps]
    return fps / fps[-1], tps / tps[-1], np.r_[np.inf, thr]


def average_precision(y_true: Sequence[int], scores: Sequence[float]) -> float:
    """Average precision: sum over thresholds of (recall gain) x precision, no interpolation."""
    y, s = as_arrays(y_true, scores)
    fps, tps, _ = _counts(y, s)
    ps = tps + fps
    precision = np.zeros_like(tps)
    np.divide(tps, ps, out=precision, where=(ps != 0))
    recall = tps / tps[-1]
    precision, recall = np.hstack((precision[::-1], 1)), np.hstack((recall[::-1], 0))
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def equal_error_rate(y_true: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """``(eer, threshold)``: where FPR == FNR on the empirical ROC (linear interpolation)."""
    fpr, tpr, thr = roc_curve(y_true, scores)
    fnr = 1.0 - tpr
    # fpr rises from 0 and fnr falls to 0 along the curve: find the first vertex with fnr <= fpr
    i = int(np.argmax(fnr <= fpr))
    if i == 0:
        return float(fpr[0]), float(min(thr[0], 1.0))
    d0, d1 = fnr[i - 1] - fpr[i - 1], fnr[i] - fpr[i]  # d0 > 0 >= d1
    w = d0 / (d0 - d1) if d0 != d1 else 0.0
    eer = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    t_hi = min(float(thr[i - 1]), 1.0)
    t = t_hi + w * (float(thr[i]) - t_hi)
    return float(eer), float(t)


def tpr_at_fpr(y_true: Sequence[int], scores: Sequence[float], target: float) -> float:
    """Largest TPR over ROC vertices with FPR <= ``target`` (no interpolation)."""
    if not 0.0 <= target <= 1.0:
        raise MetricError(f"target FPR must be in [0, 1], not {target}")
    fpr, tpr, _ = roc_curve(y_true, scores)
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max())


def threshold_at_fpr(real_scores: Sequence[float], target_fpr: float) -> float:
    """Threshold on scores in [0, 1] (``score >= t`` means fake) letting at most ``target_fpr`` of
    the real scores through: midway between the k-th and (k+1)-th highest real score,
    k = floor(fpr * n); just above the highest when k = 0, and 0 when every real may pass."""
    s = np.sort(np.asarray(real_scores, dtype=np.float64).ravel())[::-1]
    n = len(s)
    if n == 0:
        raise MetricError("no real validation scores to choose a threshold from")
    k = int(math.floor(target_fpr * n + 1e-9))
    if k >= n:
        return 0.0
    upper = float(s[k - 1]) if k >= 1 else 1.0
    lower = float(s[k])
    t = (upper + lower) / 2 if upper > lower else math.nextafter(lower, 2.0)
    return float(min(1.0, max(0.0, t)))
