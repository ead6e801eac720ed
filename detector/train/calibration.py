"""Calibrating a trained detector on validation and measuring it on test.

* Temperature scaling (Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks",
  ICML 2017): one scalar ``T`` so that ``sigmoid(logit / T)`` reads as a probability of "fake",
  fitted by minimising the validation NLL.
* The decision threshold is chosen on the *validation* real images at a target false-positive
  rate (:func:`detector.train.metrics.threshold_at_fpr`), never on test.
* :func:`evaluate` reports AUC (the metrics core's), accuracy, FPR/TPR at the threshold and NLL,
  pooled and per generator, as a :class:`SplitMetrics`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..artifact import DetectorSpec
from ..preprocess import normalize
from .metrics import auc, pair, threshold_at_fpr
from .splits import Splits

__all__ = ["SplitMetrics", "Calibrated", "nll", "fit_temperature", "threshold_at_fpr", "collect_logits", "evaluate",
           "format_metrics", "calibrate_and_evaluate"]


@dataclass(frozen=True)
class SplitMetrics:
    """Metrics of a detector on one split: all generators pooled, and per generator."""

    split: str
    auc: float
    accuracy: float
    fpr: float            # real images called fake at the threshold
    tpr: float            # fakes called fake at the threshold
    nll: float            # mean binary cross-entropy of the calibrated scores
    n_real: int
    n_fake: int
    threshold: float
    per_generator: dict = field(default_factory=dict)   # name -> {"auc", "tpr", "n"}

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Calibrated:
    """What :func:`calibrate_and_evaluate` chose on validation and measured on test."""

    temperature: float
    threshold: float
    val: SplitMetrics
    test: SplitMetrics
    test_real: np.ndarray           # calibrated test scores of the real images (N,)
    test_fakes: dict                # generator name -> calibrated test scores (M,)


def nll(logits: Sequence[float], labels: Sequence[float], temperature: float = 1.0) -> float:
    """Mean binary cross-entropy of ``sigmoid(logits / temperature)`` against 0/1 ``labels`` (stable)."""
    u = np.asarray(logits, dtype=np.float64) / temperature
    y = np.asarray(labels, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, u) - y * u)) if len(u) else float("nan")


def fit_temperature(logits: Sequence[float], labels: Sequence[float]) -> float:
    """Temperature ``T`` minimising :func:`nll` of ``sigmoid(logits / T)`` (Guo et al., ICML 2017).

    A 1-D problem, solved by a coarse log-spaced grid then golden-section refinement; clamped to
    the artifact's allowed range [0.001, 1000].
    """
    z, y = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    grid = np.logspace(-3, 3, 61)
    vals = [nll(z, y, t) for t in grid]
    k = int(np.argmin(vals))
    lo, hi = math.log(grid[max(0, k - 1)]), math.log(grid[min(len(grid) - 1, k + 1)])
    phi = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - phi * (b - a), a + phi * (b - a)
    for _ in range(40):
        if nll(z, y, math.exp(c)) < nll(z, y, math.exp(d)):
            b = d
        else:
            a = c
        c, d = b - phi * (b - a), a + phi * (b - a)
    t = math.exp((a + b) / 2)
    return float(min(1000.0, max(1e-3, t)))


@torch.inference_mode()
def collect_logits(net: nn.Module, x: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                   batch: int = 512, device: str = "cpu") -> torch.Tensor:
    """Raw logits ``(N,)`` (float64) of ``x`` ``(N, C, S, S)`` in [0, 1], in eval mode."""
    net.eval()
    out = [net(normalize(x[i:i + batch].to(device), mean, std)).double().cpu() for i in range(0, len(x), batch)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _probs(z: torch.Tensor, temperature: float) -> np.ndarray:
    return torch.sigmoid(z.double() / temperature).numpy()


def evaluate(split: str, real_logits: torch.Tensor, fake_logits: Mapping[str, torch.Tensor], temperature: float,
             threshold: float) -> SplitMetrics:
    """AUC, accuracy, FPR/TPR at ``threshold`` and NLL of the calibrated scores, pooled and per generator."""
    pr = _probs(real_logits, temperature)
    per: dict[str, dict] = {}
    allf = []
    for name, z in fake_logits.items():
        pf = _probs(z, temperature)
        allf.append(pf)
        per[name] = {"auc": auc(*pair(pr, pf)) if len(pf) and len(pr) else float("nan"),
                     "tpr": float((pf >= threshold).mean()) if len(pf) else float("nan"), "n": int(len(pf))}
    pf = np.concatenate(allf) if allf else np.zeros(0)
    y, p = pair(pr, pf)
    z = torch.cat([real_logits.double()] + [fake_logits[n].double() for n in fake_logits])
    return SplitMetrics(split=split, auc=auc(y, p) if len(pr) and len(pf) else float("nan"),
                        accuracy=float(((p >= threshold) == (y == 1)).mean()), fpr=float((pr >= threshold).mean()),
                        tpr=float((pf >= threshold).mean()) if len(pf) else float("nan"),
                        nll=nll(z.numpy(), y, temperature), n_real=int(len(pr)), n_fake=int(len(pf)),
                        threshold=threshold, per_generator=per)


def format_metrics(ms: Sequence[SplitMetrics]) -> str:
    """A small text table of split metrics (and per-generator AUC/TPR)."""
    lines = [f"{'split':<8}{'AUC':>9}{'acc':>8}{'FPR':>8}{'TPR':>8}{'NLL':>9}{'real':>7}{'fake':>7}"]
    for m in ms:
        lines.append(f"{m.split:<8}{m.auc:>9.5f}{m.accuracy:>8.4f}{m.fpr:>8.4f}{m.tpr:>8.4f}{m.nll:>9.4f}"
                     f"{m.n_real:>7}{m.n_fake:>7}")
        for name, g in m.per_generator.items():
            lines.append(f"  {name[:30]:<30} AUC {g['auc']:.5f}  TPR {g['tpr']:.4f}  n={g['n']}")
    return "\n".join(lines)


def calibrate_and_evaluate(net: nn.Module, spec: DetectorSpec, real: Splits, fakes: Mapping[str, Splits],
                           target_fpr: float, device: str = "cpu", batch: int = 512) -> Calibrated:
    """Fit temperature and threshold on validation; measure validation and test with them."""
    m, s = spec.mean, spec.std
    lg = lambda x: collect_logits(net, x, m, s, batch, device)  # noqa: E731
    rv = lg(real.val)
    fv = {n: lg(f.val) for n, f in fakes.items()}
    zv = torch.cat([rv] + list(fv.values()))
    yv = torch.cat([torch.zeros(len(rv))] + [torch.ones(len(v)) for v in fv.values()]).double()
    temperature = fit_temperature(zv, yv)
    threshold = threshold_at_fpr(torch.sigmoid(rv / temperature), target_fpr)
    val = evaluate("val", rv, fv, temperature, threshold)
    rt = lg(real.test)
    ft = {n: lg(f.test) for n, f in fakes.items()}
    test = evaluate("test", rt, ft, temperature, threshold)
    return Calibrated(temperature, threshold, val, test, _probs(rt, temperature),
                      {n: _probs(z, temperature) for n, z in ft.items()})
