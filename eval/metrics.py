"""Detection metrics with honest uncertainty: ROC AUC, average precision, EER, accuracy at the
detector's own threshold, TPR at fixed low FPR, confusion matrix, bootstrap intervals, calibration.

Conventions: label 1 = fake (the positive class), label 0 = real; a score is the detector's
probability of "fake" and an image is called fake when ``score >= threshold`` (the same rule as
:meth:`detector.Detector.label`).

* ROC AUC, average precision, equal error rate, TPR at a target FPR, accuracy and the confusion
  matrix come from the metrics core, :mod:`detector.train.metrics` (numpy only; hardening and
  calibration use the same functions): AUC is the Mann-Whitney statistic with ties counting half;
  EER is interpolated on the empirical ROC; TPR at a target FPR is the largest TPR among ROC
  vertices whose FPR does not exceed the target (no interpolation). With fewer than
  ``1 / target`` real images that is the TPR at FPR = 0; :attr:`Metrics.low_fpr_resolution` says so.
* Confidence intervals: percentile bootstrap (Efron & Tibshirani 1993), resampling real and fake
  separately (stratified) so every resample holds both classes; seeded.
* False-positive audit of real-only sets: Wilson score interval (Wilson 1927) for the FPR.
* Calibration: expected calibration error over equal-width confidence bins (Guo et al., ICML 2017,
  "On Calibration of Modern Neural Networks").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from detector.train.metrics import (MetricError, accuracy, as_arrays, auc, average_precision, confusion,
                                    equal_error_rate, pair, tpr_at_fpr)

__all__ = [
    "MetricError",
    "Metrics",
    "FalsePositiveAudit",
    "Calibration",
    "as_arrays",
    "compute_metrics",
    "equal_error_rate",
    "tpr_at_fpr",
    "confusion",
    "bootstrap_ci",
    "wilson_interval",
    "false_positive_audit",
    "calibration",
    "auc_fast",
    "pair",
    "accuracy",
]


@dataclass(frozen=True)
class Metrics:
    """Everything :func:`compute_metrics` measures on one real-vs-fake test set."""

    auc: float
    ap: float
    eer: float
    eer_threshold: float
    accuracy: float
    real_accuracy: float
    fake_accuracy: float
    tpr_at_fpr_1pct: float
    tpr_at_fpr_01pct: float
    threshold: float
    n_real: int
    n_fake: int
    confusion: dict               # {"tn", "fp", "fn", "tp"}: real called real, real called fake, ...
    auc_ci: tuple | None = None   # 95% bootstrap interval (low, high) or None without bootstrap
    accuracy_ci: tuple | None = None
    bootstrap: int = 0
    low_fpr_resolution: dict = field(default_factory=dict)  # {"1pct": bool, "01pct": bool}: enough reals?

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("auc_ci", "accuracy_ci"):
            d[k] = None if d[k] is None else [float(v) for v in d[k]]
        return d


@dataclass(frozen=True)
class FalsePositiveAudit:
    """How often a detector calls real images fake, with a Wilson 95% interval."""

    n_real: int
    n_flagged: int
    fpr: float
    ci_low: float
    ci_high: float
    threshold: float
    method: str = "wilson"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Calibration:
    """Reliability diagram data: per equal-width bin of the predicted probability of "fake"."""

    bin_edges: list
    mean_confidence: list   # mean predicted P(fake) in each bin (NaN-free: empty bins are None)
    fraction_fake: list     # observed fraction of fakes in each bin (None when empty)
    counts: list
    ece: float              # sum_b (n_b / n) * |fraction_fake_b - mean_confidence_b|

    def to_json(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------- on the core

auc_fast = auc  # the core's Mann-Whitney AUC, under the name this module has always exported


def bootstrap_ci(y: np.ndarray, s: np.ndarray, threshold: float, n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[tuple[float, float], tuple[float, float]]:
    """Stratified percentile-bootstrap intervals ``(auc_ci, accuracy_ci)``."""
    if n < 1:
        raise MetricError(f"bootstrap needs at least 1 resample, got {n}")
    y, s = as_arrays(y, s)
    rng = np.random.default_rng(seed)
    pos, neg = s[y == 1], s[y == 0]
    yy = pair(neg, pos)[0]
    aucs, accs = np.empty(n), np.empty(n)
    for b in range(n):
        sb = np.concatenate([neg[rng.integers(0, len(neg), len(neg))], pos[rng.integers(0, len(pos), len(pos))]])
        aucs[b] = auc(yy, sb)
        accs[b] = accuracy(yy, sb, threshold)
    a = (1.0 - level) / 2.0 * 100.0
    return ((float(np.percentile(aucs, a)), float(np.percentile(aucs, 100 - a))),
            (float(np.percentile(accs, a)), float(np.percentile(accs, 100 - a))))


def compute_metrics(y_true: Sequence[int], scores: Sequence[float], threshold: float = 0.5,
                    bootstrap: int = 1000, seed: int = 0) -> Metrics:
    """All metrics for one test set; ``bootstrap=0`` skips the intervals."""
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
        raise MetricError(f"threshold must be a finite number, not {threshold!r}")
    y, s = as_arrays(y_true, scores)
    cm = confusion(y, s, threshold)
    n_real, n_fake = cm["tn"] + cm["fp"], cm["tp"] + cm["fn"]
    eer, eer_t = equal_error_rate(y, s)
    auc_ci = acc_ci = None
    if bootstrap:
        auc_ci, acc_ci = bootstrap_ci(y, s, threshold, bootstrap, seed)
    return Metrics(
        auc=auc(y, s),
        ap=average_precision(y, s),
        eer=eer, eer_threshold=eer_t,
        accuracy=(cm["tn"] + cm["tp"]) / len(y),
        real_accuracy=cm["tn"] / n_real,
        fake_accuracy=cm["tp"] / n_fake,
        tpr_at_fpr_1pct=tpr_at_fpr(y, s, 0.01),
        tpr_at_fpr_01pct=tpr_at_fpr(y, s, 0.001),
        threshold=float(threshold), n_real=n_real, n_fake=n_fake, confusion=cm,
        auc_ci=auc_ci, accuracy_ci=acc_ci, bootstrap=int(bootstrap),
        low_fpr_resolution={"1pct": n_real >= 100, "01pct": n_real >= 1000},
    )


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (95% by default)."""
    if n <= 0:
        raise MetricError("a proportion needs at least one trial")
    if not 0 <= k <= n:
        raise MetricError(f"successes {k} outside [0, {n}]")
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def false_positive_audit(real_scores: Sequence[float], threshold: float) -> FalsePositiveAudit:
    """FPR of a real-only set at ``threshold`` with its Wilson 95% interval."""
    s = np.asarray(real_scores, dtype=np.float64)
    if s.ndim != 1 or len(s) == 0:
        raise MetricError("the false-positive audit needs at least one real image score")
    if not np.isfinite(s).all():
        raise MetricError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    k = int((s >= threshold).sum())
    lo, hi = wilson_interval(k, len(s))
    return FalsePositiveAudit(n_real=len(s), n_flagged=k, fpr=k / len(s), ci_low=lo, ci_high=hi,
                              threshold=float(threshold))


def calibration(y_true: Sequence[int], scores: Sequence[float], n_bins: int = 10) -> Calibration:
    """Reliability-diagram bins and the expected calibration error of P(fake)."""
    if n_bins < 1:
        raise MetricError(f"n_bins must be >= 1, not {n_bins}")
    y, s = as_arrays(y_true, scores, need_both=False)
    if ((s < 0) | (s > 1)).any():
        raise MetricError("calibration needs probabilities in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_bins - 1)
    conf, frac, counts = [], [], []
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        c = int(m.sum())
        counts.append(c)
        if c == 0:
            conf.append(None)
            frac.append(None)
            continue
        mc, fr = float(s[m].mean()), float(y[m].mean())
        conf.append(mc)
        frac.append(fr)
        ece += c / len(s) * abs(fr - mc)
    return Calibration(edges.tolist(), conf, frac, counts, float(ece))
