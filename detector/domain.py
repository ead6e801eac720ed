"""The detector's domain: what it was trained on, and how far an input lies outside it.

A detector only knows images like its training reals. Shown something else (a colour photo to a
detector of grey 28x28 clothes, a street-camera frame), its score is noise, and a confident "fake"
on a real photo is the most expensive mistake it can make. So hardening records the domain
(:mod:`detector.train.trust`) and every verdict says whether it lies inside it.

Two checks, both cheap:

* **before the network**, on the decoded image: its colourfulness (mean spread between its colour
  channels; 0 for grey) against the training reals' (a colour photo given to a grey detector, a grey
  image to a colour detector), and its original size against the training originals' (resize / crop
  policies only: tiles are native pixels whatever the size);
* **in the network's own feature space**: the class-free Mahalanobis distance of the penultimate
  features (per-channel spatial mean and std of the last feature map, from the same forward pass as
  the score) to the training reals' mean, with a Ledoit-Wolf shrunk covariance (Lee, Lee, Lee &
  Shin, "A Simple Unified Framework for Detecting Out-of-Distribution Samples and Adversarial
  Attacks", NeurIPS 2018). Its threshold is the 99th percentile on *validation* reals, so about 99%
  of in-domain inputs pass.

``domain_score`` is the largest of the checks' ratios to their limits: above 1 is out of domain. An
image of many tiles takes the median of its tiles' feature ratios (robust to a few odd tiles; a
wholly foreign image has all its tiles out).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["ImageStats", "DomainModel", "colourfulness", "fit_domain", "GREY_LEVEL", "SIZE_FACTOR"]

#: A colourfulness below this (about 1/255) is grey.
GREY_LEVEL = 0.004
#: Margin added to the training reals' colourfulness before a colourful input is called foreign.
COLOUR_MARGIN = 0.03
#: An original side this many times outside the training originals' range is foreign (resize/crop).
SIZE_FACTOR = 4.0
#: The feature-distance threshold passes this share of validation reals.
QUANTILE = 0.99
#: An input's intensity standard deviation above this is "textured" (not a flat patch).
TEXTURE = 0.05
#: Grey textured inputs are foreign to a detector whose training reals held fewer than this share of them.
RARE = 0.02
_SAMPLE = 96  # colourfulness is measured on about this many pixels per side


class ImageStats(NamedTuple):
    """What the pre-network check needs of a decoded image, taken before any channel conversion."""

    colour: float   # mean (max - min) over the colour channels, in [0, 1]; 0 for a grey image
    width: int      # the original (decoded) size
    height: int

    @staticmethod
    def of(img: Any) -> "ImageStats":
        """Of a ``(C, H, W)`` tensor in [0, 1] or an ``(H, W, 3)`` uint8 array (a BGR/RGB frame)."""
        if isinstance(img, np.ndarray):
            return ImageStats(colourfulness(img), img.shape[1], img.shape[0])
        return ImageStats(colourfulness(img), img.shape[-1], img.shape[-2])


def colourfulness(img: Any) -> float:
    """``(C, H, W)`` float tensor in [0, 1] or ``(H, W, 3)`` uint8 array -> mean channel spread in [0, 1],
    on a strided sample of about 96x96 pixels (cheap whatever the size); 0 for one channel."""
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] == 1:
            return 0.0
        step = max(1, max(img.shape[:2]) // _SAMPLE)
        a = img[::step, ::step]
        return float((a.max(2).astype(np.float32) - a.min(2)).mean() / (255.0 if a.dtype == np.uint8 else 1.0))
    if img.dim() != 3 or img.shape[0] == 1:
        return 0.0
    step = max(1, max(img.shape[-2:]) // _SAMPLE)
    a = img[:, ::step, ::step].float()
    return float((a.amax(0) - a.amin(0)).mean())


@dataclass
class DomainModel:
    """The fitted domain (JSON scalars + two arrays); see the module docstring for the checks."""

    colour_hi: float | None          # an input more colourful than this is foreign (None: no limit)
    colour_lo: float | None          # a textured input greyer than this is foreign (None: grey inputs allowed)
    side_lo: float | None            # original sides outside [side_lo, side_hi] are foreign (None: unknown)
    side_hi: float | None
    threshold: float                 # feature distance passing QUANTILE of validation reals
    intensity_mean: list             # per channel, of the training reals' model inputs
    intensity_std: list
    n_train: int
    n_val: int
    mean: torch.Tensor               # (D,) float32 feature mean of the training reals
    precision: torch.Tensor          # (D, D) float32 inverse of the shrunk covariance

    # ------------------------------------------------------------ scoring
    def distance(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` features -> ``(B,)`` Mahalanobis distances divided by the threshold (1 = the limit)."""
        d = feats.float() - self.mean
        m2 = ((d @ self.precision) * d).sum(1).clamp_(min=0)
        return m2.sqrt_() / self.threshold

    def pre_score(self, st: ImageStats | None, tiled: bool, spread: float = 0.0) -> float:
        """The pre-network ratio of one image (0 when nothing is known; above 1 = foreign); ``spread``
        is the intensity standard deviation of its model inputs."""
        if st is None:
            return 0.0
        r = 0.0
        if self.colour_hi is not None:
            r = max(r, st.colour / self.colour_hi)
        if self.colour_lo is not None and st.colour < self.colour_lo and spread > TEXTURE:
            r = max(r, 2.0 * self.colour_lo / (st.colour + self.colour_lo))  # in (1, 2]
        if not tiled and self.side_lo is not None and self.side_hi is not None:
            lo, hi = min(st.width, st.height), max(st.width, st.height)
            r = max(r, hi / (self.side_hi * SIZE_FACTOR), self.side_lo / (SIZE_FACTOR * max(lo, 1)))
        return r

    def image_score(self, tile_ratios: torch.Tensor, st: ImageStats | None, tiled: bool, spread: float = 0.0) -> float:
        """One image's ``domain_score``: its tiles' median feature ratio or its pre-network ratio."""
        feat = float(tile_ratios.median()) if len(tile_ratios) > 1 else float(tile_ratios[0])
        return max(feat, self.pre_score(st, tiled, spread))

    # ------------------------------------------------------------ persistence
    def to_json(self) -> dict:
        return {"colour_hi": self.colour_hi, "colour_lo": self.colour_lo, "side_lo": self.side_lo,
                "side_hi": self.side_hi, "threshold": self.threshold, "quantile": QUANTILE,
                "intensity_mean": self.intensity_mean, "intensity_std": self.intensity_std,
                "n_train": self.n_train, "n_val": self.n_val, "features": int(self.mean.numel())}

    def arrays(self) -> dict[str, torch.Tensor]:
        return {"domain.mean": self.mean.contiguous(), "domain.precision": self.precision.contiguous()}

    @classmethod
    def from_parts(cls, obj: dict, arrays: dict[str, torch.Tensor], where: str) -> "DomainModel":
        """Rebuild from the ``trust.domain`` JSON object and the arrays; ``ValueError`` naming ``where``."""
        try:
            mean, prec = arrays["domain.mean"].float(), arrays["domain.precision"].float()
        except KeyError as e:
            raise ValueError(f"{where}: array {e.args[0]} is missing") from None
        d = obj.get("features")
        if mean.dim() != 1 or tuple(prec.shape) != (mean.numel(), mean.numel()) or d != mean.numel():
            raise ValueError(f"{where}: domain arrays have inconsistent shapes {tuple(mean.shape)}, "
                             f"{tuple(prec.shape)} (features={d!r})")
        if not (torch.isfinite(mean).all() and torch.isfinite(prec).all()):
            raise ValueError(f"{where}: domain arrays contain NaN or infinite values")
        num = ("threshold",)
        opt = ("colour_hi", "colour_lo", "side_lo", "side_hi")
        for k in num + opt:
            v = obj.get(k)
            if (k in num or v is not None) and (isinstance(v, bool) or not isinstance(v, (int, float))
                                                 or not np.isfinite(v) or v <= 0):
                raise ValueError(f"{where}: domain field {k!r} must be a positive number, got {v!r:.40}")
        return cls(**{k: obj.get(k) for k in opt}, threshold=float(obj["threshold"]),
                   intensity_mean=list(obj.get("intensity_mean", [])), intensity_std=list(obj.get("intensity_std", [])),
                   n_train=int(obj.get("n_train", 0)), n_val=int(obj.get("n_val", 0)), mean=mean, precision=prec)


def _limits(train_colour: np.ndarray, spread: np.ndarray, sides: np.ndarray | None) -> dict:
    """The pre-network limits from the training reals' colourfulness, intensity spread and original
    sides ``(N, 2)``. Grey textured images are foreign only where they were rare in training: flat
    grey patches (sky, a white background) are common in colour photos, grey pictures are not."""
    grey_share = float(((train_colour < GREY_LEVEL) & (spread > TEXTURE)).mean()) if len(train_colour) else 1.0
    out = {"colour_hi": float(np.quantile(train_colour, 0.999)) + COLOUR_MARGIN if len(train_colour) else None,
           "colour_lo": GREY_LEVEL if grey_share < RARE else None, "side_lo": None, "side_hi": None}
    if sides is not None and len(sides):
        out["side_lo"], out["side_hi"] = float(sides.min()), float(sides.max())
    return out


def fit_domain(train_feats: torch.Tensor, val_feats: torch.Tensor, train_inputs: torch.Tensor,
               train_colour: np.ndarray, sides: np.ndarray | None = None) -> DomainModel:
    """Fit the domain on training features ``(N, D)``, the training reals' model inputs ``(M, C, S, S)``,
    their colourfulness ``(M,)`` and original sides ``(M, 2)`` (None: unknown, no size check); the
    threshold comes from the validation reals' features ``val_feats``."""
    from sklearn.covariance import LedoitWolf

    if len(train_feats) < 2 or len(val_feats) < 1:
        raise ValueError("the domain model needs at least 2 training and 1 validation real images")
    f = train_feats.double().numpy()
    lw = LedoitWolf().fit(f)
    mean = torch.from_numpy(lw.location_).float()
    prec = torch.from_numpy(np.linalg.pinv(lw.covariance_, hermitian=True)).float()
    dv = val_feats.float() - mean
    dist = ((dv @ prec) * dv).sum(1).clamp(min=0).sqrt().double().numpy()
    thr = max(float(np.quantile(dist, QUANTILE)), 1e-6)
    x = train_inputs.double()
    spread = x.flatten(1).std(1).numpy()
    return DomainModel(**_limits(np.asarray(train_colour, dtype=np.float64), spread, sides), threshold=thr,
                       intensity_mean=x.mean((0, 2, 3)).tolist(), intensity_std=x.std((0, 2, 3)).tolist(),
                       n_train=len(train_feats), n_val=len(val_feats), mean=mean, precision=prec)
