"""Sample quality in an offline feature space: "FD-FMNIST", precision and recall.

This is *not* Inception FID. The feature space is the 128-d penultimate layer of a small CNN
classifier trained (deterministically, seed 0) on the labelled embedded Fashion-MNIST train split
that ships with unmask, so it works offline and is identical on every machine. On it we compute

* the Fréchet distance between Gaussians fitted to real and generated features (the formula of
  Heusel et al., NeurIPS 2017, in our own feature space: call it FD-FMNIST, never FID);
* improved precision and recall (Kynkäänniemi et al., NeurIPS 2019): k-NN balls around real
  features (precision: share of fakes inside some real ball) and around fake features (recall:
  share of reals inside some fake ball);
* class coverage: the share of the 10 garment classes the classifier finds among the samples.

Images of other sizes or colour are converted to grey and resized to 28x28 first, so the
numbers are comparable within one dataset, not across datasets.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detector.atomic import save_safetensors

__all__ = ["METRIC_NAME", "FeatureNet", "Quality", "QualityMeter", "feature_net", "frechet_distance", "gaussian",
           "precision_recall", "to_feature_input", "FEATURE_NET_FILE"]

METRIC_NAME = "FD-FMNIST"
FEATURE_NET_FILE = "fd_fmnist_features_v1.safetensors"
_TRAIN_STEPS = 500


class FeatureNet(nn.Module):
    """Two conv blocks and a 128-d embedding; ``forward`` gives 10 class logits."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14x14
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7x7
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, 10)


def to_feature_input(images: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` in [0, 1] -> ``(B, 1, 28, 28)`` normalised to [-1, 1]."""
    x = images.float().mean(dim=1, keepdim=True)
    if x.shape[-2:] != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
    return (x.clamp(0, 1) - 0.5) / 0.5


def _default_cache() -> Path:
    return Path(os.environ.get("UNMASK_CACHE_DIR", Path.home() / ".cache" / "unmask"))


def _train_feature_net(steps: int, seed: int) -> FeatureNet:
    from detector.data import load_fashion_mnist

    data = load_fashion_mnist("train", variant="embedded")
    x = to_feature_input(torch.from_numpy(data.images).unsqueeze(1).float() / 255.0)
    y = torch.from_numpy(data.labels)
    g = torch.Generator().manual_seed(seed)
    torch_state = torch.get_rng_state()
    torch.manual_seed(seed)
    net = FeatureNet()
    torch.set_rng_state(torch_state)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def feature_net(cache_dirs: list[str | os.PathLike] | None = None, steps: int = _TRAIN_STEPS,
                seed: int = 0) -> FeatureNet:
    """The FD-FMNIST feature network: loaded from the first cache folder holding it, else trained
    (a few seconds on CPU, deterministic) and written to every cache folder that accepts it.

    The default cache folders are ``$UNMASK_CACHE_DIR`` or ``~/.cache/unmask``.
    """
    from safetensors.torch import load_file

    dirs = [Path(d) for d in (cache_dirs or [])] + [_default_cache()]
    name = FEATURE_NET_FILE if (steps, seed) == (_TRAIN_STEPS, 0) else f"fd_fmnist_features_s{steps}_seed{seed}.safetensors"
    for d in dirs:
        p = d / name
        if p.is_file():
            net = FeatureNet()
            try:
                net.load_state_dict(load_file(p))
            except Exception:  # a damaged cache file is rebuilt, never trusted
                continue
            for d2 in dirs:
                if not (d2 / name).is_file():
                    _try_save(net, d2 / name)
            return net.eval()
    net = _train_feature_net(steps, seed)
    for d in dirs:
        _try_save(net, d / name)
    return net


def _try_save(net: nn.Module, path: Path) -> None:
    try:
        save_safetensors(net.state_dict(), path, metadata={"metric": METRIC_NAME})
    except OSError:
        pass  # read-only cache: fine, it is rebuilt deterministically


def gaussian(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set ``(N, D)`` (float64)."""
    a = np.asarray(a, dtype=np.float64)
    return a.mean(0), np.cov(a, rowvar=False)


def frechet_distance(a: np.ndarray | tuple, b: np.ndarray | tuple) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` (N, D) and ``b`` (M, D)
    (either may be given as a precomputed ``(mean, cov)`` pair from :func:`gaussian`)."""
    from scipy import linalg

    mu1, s1 = a if isinstance(a, tuple) else gaussian(a)
    mu2, s2 = b if isinstance(b, tuple) else gaussian(b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
        if not np.isfinite(covmean).all():
            off = np.eye(len(s1)) * 1e-6
            covmean, _ = linalg.sqrtm((s1 + off) @ (s2 + off), disp=False)
    covmean = covmean.real
    return float(max(0.0, ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)))


def _knn_radii(f: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(f, f)
    return d.topk(k + 1, dim=1, largest=False).values[:, k]  # k+1: the point itself is at distance 0


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3,
                     real_radii: torch.Tensor | None = None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``fake`` w.r.t. ``real`` features.

    ``real_radii``: the k-NN radii of ``real`` if already computed (they depend on ``real`` only).
    """
    real, fake = real.float(), fake.float()
    r_real = _knn_radii(real, k) if real_radii is None else real_radii.float()
    r_fake = _knn_radii(fake, k)
    d = torch.cdist(fake, real)  # (M, N)
    precision = (d <= r_real.unsqueeze(0)).any(dim=1).double().mean().item()
    recall = (d.T <= r_fake.unsqueeze(0)).any(dim=1).double().mean().item()
    return precision, recall


@dataclass(frozen=True)
class Quality:
    """Quality of a set of generated images against a fixed real set (FD-FMNIST is not FID)."""

    fd: float
    precision: float
    recall: float
    coverage: float  # share of the 10 classes present in >= 1% of the samples
    n: int
    metric: str = METRIC_NAME


class QualityMeter:
    """Features of a fixed real set, computed once; ``meter(fake)`` -> :class:`Quality`."""

    def __init__(self, net: FeatureNet, real: torch.Tensor, k: int = 3) -> None:
        self.net, self.k = net.eval(), k
        self.real_features = self.features(real)
        self.real_gaussian = gaussian(self.real_features.numpy())
        self.real_radii = _knn_radii(self.real_features, k)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
        return torch.cat([self.net.features(to_feature_input(images[i:i + batch].cpu()))
                          for i in range(0, len(images), batch)])

    @torch.no_grad()
    def classes(self, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
        return torch.cat([self.net(to_feature_input(images[i:i + batch].cpu())).argmax(1)
                          for i in range(0, len(images), batch)])

    def coverage(self, images: torch.Tensor) -> float:
        return self._coverage(self.classes(images))

    @staticmethod
    def _coverage(classes: torch.Tensor) -> float:
        counts = torch.bincount(classes, minlength=10).float()
        return float((counts >= max(1.0, 0.01 * len(classes))).float().mean())

    def __call__(self, fake: torch.Tensor) -> Quality:
        f = self.features(fake)
        with torch.no_grad():
            cov = self._coverage(self.net.head(f).argmax(1))
        fd = frechet_distance(self.real_gaussian, f.numpy())
        p, r = precision_recall(self.real_features, f, self.k, real_radii=self.real_radii)
        return Quality(fd=fd, precision=p, recall=r, coverage=cov, n=len(fake))
