"""Frequency-domain baselines the field measures itself against, re-implemented for side-by-side
comparison with the hardened discriminator.

* ``frank_dct``: Frank, Eisenhofer, Schönherr, Fischer, Kolossa & Holz, "Leveraging Frequency
  Analysis for Deep Fake Image Recognition", ICML 2020. 2-D orthonormal DCT-II of the grey image
  -> ``log(|DCT| + eps)`` -> per-coefficient standardisation (fitted on training data) -> logistic
  regression.
* ``durall_spectrum``: Durall, Keuper & Keuper, "Watch your Up-Convolution: CNN Based Generative
  Deep Neural Networks are Failing to Reproduce Spectral Distributions", CVPR 2020. FFT ->
  ``20 log |F|`` (centred) -> azimuthal average over integer radii (a 1-D spectrum) -> per-image
  min-max normalisation -> logistic regression.

Both work on a ``size x size`` grey view of each image: the centre crop at native resolution when
the image is at least that large (resampling would wash out the very traces these methods read),
else an up-resize. ``size`` defaults to the detector's input size so all three see the same pixels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy.fft import dctn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from detector.decode import to_channels
from detector.preprocess import resize
from detector.registry import Registry

__all__ = ["BASELINES", "SpectralBaseline", "FrankDCT", "DurallSpectrum", "grey_square", "create_baseline",
           "cross_fit_scores"]

BASELINES: Registry["SpectralBaseline"] = Registry("baseline")
EPS = 1e-8


def grey_square(img: torch.Tensor, size: int) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> ``(size, size)`` float64 grey: native-resolution centre crop, or an
    up-resize when the image is smaller than ``size``."""
    g = to_channels(img.float(), 1)
    _, h, w = g.shape
    if h < size or w < size:
        scale = size / min(h, w)
        g = resize(g, max(size, round(h * scale)), max(size, round(w * scale)))
        _, h, w = g.shape
    top, left = (h - size) // 2, (w - size) // 2
    return g[0, top:top + size, left:left + size].double().numpy()


class SpectralBaseline:
    """Hand-made spectral features + scikit-learn logistic regression; ``score`` is P(fake)."""

    name = "baseline"
    paper = ""
    threshold = 0.5

    def __init__(self, size: int = 28, C: float = 1.0, seed: int = 0) -> None:
        if size < 4:
            raise ValueError(f"baseline size must be >= 4, not {size}")
        self.size, self.C, self.seed = size, C, seed
        self.scaler: StandardScaler | None = None
        self.clf: LogisticRegression | None = None

    def features_one(self, x: np.ndarray) -> np.ndarray:  # (size, size) -> (F,)
        raise NotImplementedError

    def features(self, images: Sequence[torch.Tensor]) -> np.ndarray:
        if len(images) == 0:
            raise ValueError(f"{self.name}: no images")
        return np.stack([self.features_one(grey_square(im, self.size)) for im in images])  # (N, F)

    def fit(self, real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> "SpectralBaseline":
        if len(real) < 2 or len(fake) < 2:
            raise ValueError(f"{self.name}: training needs at least 2 real and 2 fake images, "
                             f"got {len(real)} and {len(fake)}")
        x = np.concatenate([self.features(real), self.features(fake)])
        y = np.concatenate([np.zeros(len(real)), np.ones(len(fake))])
        self.scaler = StandardScaler().fit(x)
        self.clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed)
        self.clf.fit(self.scaler.transform(x), y)
        return self

    def score(self, images: Sequence[torch.Tensor]) -> np.ndarray:
        if self.clf is None or self.scaler is None:
            raise RuntimeError(f"{self.name}: call fit() before score()")
        return self.clf.predict_proba(self.scaler.transform(self.features(images)))[:, 1]


@BASELINES.register("frank_dct")
class FrankDCT(SpectralBaseline):
    name = "frank_dct"
    paper = "Frank et al., ICML 2020: DCT log-spectrum + logistic regression"

    def features_one(self, x: np.ndarray) -> np.ndarray:
        return np.log(np.abs(dctn(x, type=2, norm="ortho")) + EPS).ravel()  # (size * size,)


def azimuthal_average(a: np.ndarray) -> np.ndarray:
    """Mean of a centred 2-D array over rings of integer radius around its centre -> ``(R,)``."""
    h, w = a.shape
    yy, xx = np.indices((h, w))
    r = np.rint(np.hypot(yy - h // 2, xx - w // 2)).astype(np.int64)
    sums = np.bincount(r.ravel(), weights=a.ravel())
    counts = np.bincount(r.ravel())
    return sums / np.maximum(counts, 1)


@BASELINES.register("durall_spectrum")
class DurallSpectrum(SpectralBaseline):
    name = "durall_spectrum"
    paper = "Durall et al., CVPR 2020: azimuthally averaged FFT spectrum + logistic regression"

    def features_one(self, x: np.ndarray) -> np.ndarray:
        mag = 20.0 * np.log(np.abs(np.fft.fftshift(np.fft.fft2(x))) + EPS)
        psd = azimuthal_average(mag)
        lo, hi = psd.min(), psd.max()
        return (psd - lo) / (hi - lo) if hi > lo else np.zeros_like(psd)


def create_baseline(name: str, size: int = 28, seed: int = 0) -> SpectralBaseline:
    return BASELINES.create(name, size=size, seed=seed)


def cross_fit_scores(name: str, images: Sequence[torch.Tensor], labels: Sequence[int], size: int = 28,
                     folds: int = 2, seed: int = 0) -> np.ndarray:
    """Score every image with a baseline fitted on the *other* folds (stratified k-fold).

    Used when no separate training data is given: every test image is scored by a model that never
    saw it, but the model did see the same generators, so this is an in-distribution upper bound.
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    if min(int((y == 0).sum()), int((y == 1).sum())) < 2 * folds:
        raise ValueError(f"cross-fitting {name} needs at least {2 * folds} real and {2 * folds} fake images")
    out = np.empty(len(y), dtype=np.float64)
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        b = create_baseline(name, size, seed)
        b.fit([images[i] for i in tr if y[i] == 0], [images[i] for i in tr if y[i] == 1])
        out[te] = b.score([images[i] for i in te])
    return out

