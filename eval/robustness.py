"""Robustness matrix: how a detector's AUC, accuracy and verdicts move under everyday image
processing (JPEG re-compression, blur, down-and-up scaling, sensor-like noise), applied to real and
fake images alike.

The perturbation set follows the post-processing study of Wang et al., "CNN-generated images are
surprisingly easy to spot... for now", CVPR 2020 (JPEG and Gaussian blur), extended with the
resize and noise that NPR's users report (Tan et al., CVPR 2024, issue #9 and #23). Each
perturbation is a fixed setting of :mod:`detector.train.degrade`, the same functions hardening
augments with, so a detector is measured on the degradations it was trained against.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from detector.progress import track
from detector.registry import Registry
from detector.train.degrade import add_noise, gaussian_blur, jpeg, rescale, torch_generator

from detector.train.metrics import MetricError, accuracy, auc, pair

__all__ = ["PERTURBATIONS", "DEFAULT_PERTURBATIONS", "perturb", "RobustnessRow", "RobustnessResult",
           "evaluate_robustness", "jpeg", "gaussian_blur", "downscale", "gaussian_noise"]

Perturbation = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]
PERTURBATIONS: Registry[Perturbation] = Registry("perturbation")

downscale = rescale  # resize by a factor and back (antialiased down, bilinear up)


def gaussian_noise(img: torch.Tensor, sigma: float, rng: np.random.Generator) -> torch.Tensor:
    """Add i.i.d. N(0, sigma^2) noise per pixel (seeded from ``rng``) and clip to [0, 1]."""
    return add_noise(img, sigma, torch_generator(rng))


def _register(name: str, fn: Perturbation) -> None:
    PERTURBATIONS.register(name)(lambda: fn)


_register("jpeg_q90", lambda im, rng: jpeg(im, 90))
_register("jpeg_q75", lambda im, rng: jpeg(im, 75))
_register("jpeg_q50", lambda im, rng: jpeg(im, 50))
_register("blur_s1", lambda im, rng: gaussian_blur(im, 1.0))
_register("blur_s2", lambda im, rng: gaussian_blur(im, 2.0))
_register("downscale_0_5", lambda im, rng: downscale(im, 0.5))
_register("noise_s0_05", lambda im, rng: gaussian_noise(im, 0.05, rng))

DEFAULT_PERTURBATIONS = ("jpeg_q90", "jpeg_q75", "jpeg_q50", "blur_s1", "blur_s2", "downscale_0_5", "noise_s0_05")


def perturb(name: str, images: Sequence[torch.Tensor], seed: int = 0) -> list[torch.Tensor]:
    """Apply the registered perturbation ``name`` to every image (seeded where random)."""
    fn = PERTURBATIONS.create(name)
    rng = np.random.default_rng(seed)
    return [fn(im, rng) for im in images]


@dataclass(frozen=True)
class RobustnessRow:
    perturbation: str
    auc: float                 # real vs all fakes
    accuracy: float            # at the detector's threshold
    flip_rate: float           # fraction of all images whose verdict differs from the clean one
    flip_rate_real: float
    flip_rate_fake: float
    auc_per_set: dict          # fake set name -> AUC against the (perturbed) real set
    accuracy_per_set: dict


@dataclass(frozen=True)
class RobustnessResult:
    threshold: float
    rows: list                 # RobustnessRow, the first one is "clean"

    def to_json(self) -> dict:
        return {"threshold": self.threshold, "rows": [asdict(r) for r in self.rows]}

    def row(self, name: str) -> RobustnessRow:
        for r in self.rows:
            if r.perturbation == name:
                return r
        raise KeyError(name)


def _row(name: str, real: np.ndarray, fakes: dict[str, np.ndarray], thr: float,
         clean_real: np.ndarray, clean_fakes: dict[str, np.ndarray]) -> RobustnessRow:
    all_fake = np.concatenate(list(fakes.values()))
    y, s = pair(real, all_fake)
    clean_all = np.concatenate([clean_real, *clean_fakes.values()])
    flips = (s >= thr) != (clean_all >= thr)
    auc_set, acc_set = {}, {}
    for k, f in fakes.items():
        ys, ss = pair(real, f)
        auc_set[k] = auc(ys, ss)
        acc_set[k] = accuracy(ys, ss, thr)
    return RobustnessRow(name, auc(y, s), accuracy(y, s, thr), float(flips.mean()),
                         float(flips[:len(real)].mean()), float(flips[len(real):].mean()), auc_set, acc_set)


def evaluate_robustness(score: Callable[[Sequence[torch.Tensor]], np.ndarray], real: Sequence[torch.Tensor],
                        fakes: dict[str, Sequence[torch.Tensor]], threshold: float,
                        perturbations: Sequence[str] = DEFAULT_PERTURBATIONS, seed: int = 0,
                        clean_scores: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
                        progress: bool = True) -> RobustnessResult:
    """Score clean and perturbed copies of every image with ``score`` (images -> P(fake))."""
    if len(real) == 0 or not fakes or any(len(v) == 0 for v in fakes.values()):
        raise MetricError("the robustness matrix needs real images and at least one non-empty fake set")
    for p in perturbations:
        PERTURBATIONS.get(p)  # unknown names fail before any work
    if clean_scores is None:
        clean_real, clean_fakes = score(real), {k: score(v) for k, v in fakes.items()}
    else:
        clean_real, clean_fakes = clean_scores
    rows = [_row("clean", clean_real, clean_fakes, threshold, clean_real, clean_fakes)]
    for j, p in enumerate(track(perturbations, desc="robustness", leave=False, enabled=progress)):
        # a distinct, fixed seed per perturbation and per set keeps every run reproducible
        r = score(perturb(p, real, seed + 1000 * j))
        f = {k: score(perturb(p, v, seed + 1000 * j + 1 + i)) for i, (k, v) in enumerate(fakes.items())}
        rows.append(_row(p, r, f, threshold, clean_real, clean_fakes))
    return RobustnessResult(float(threshold), rows)
