"""Detector networks: plain ``nn.Module`` s mapping a normalised ``(B, C, H, W)`` batch to ``(B,)`` logits.

``dcgan_d`` is the discriminator of DCGAN (Radford, Metz & Chintala, ICLR 2016): strided
convolutions with LeakyReLU, optional spectral normalisation (Miyato et al., ICLR 2018). The GAN
trainer uses it as its discriminator, and the hardened detector ships the same class, so hardening
starts from the weights the GAN trained. A positive logit means "fake".

Two optional inputs make it look at generation traces rather than content (issue 14; measured in
``docs/generalisation.md``):

* ``residual``: the neighbouring-pixel residue of NPR (Tan et al., "Rethinking the Up-Sampling
  Operations in CNN-based Generative Network for Generalizable Deepfake Detection", CVPR 2024),
  ``x - up(down(x))`` with nearest 2x down- and up-sampling: it is zero on any 2x2 block that is
  constant and exposes the local correlation every up-sampling layer leaves. ``npr`` feeds the
  residue instead of the image, ``both`` concatenates the two along channels.
* ``spectral``: a small branch on the log-magnitude 2-D DCT of the grey image (the input of Frank et
  al.'s baseline, ICML 2020), standardised per coefficient and projected to 64 features that join
  the convolutional features before the head. The DCT is two matrix products with a fixed basis,
  so it exports to ONNX and torch.export as is.

Note on sign: the GAN's D scores *real*; the detector scores *fake*. The trainer keeps the
network's convention (logit > 0 = real) and hardening flips it once by negating the head
(:func:`flip_head`), so shipped detectors all use logit > 0 = fake.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm as _sn

from .registry import Registry

__all__ = ["NETWORKS", "ConvDiscriminator", "create_network", "flip_head", "NORMS", "RESIDUALS", "npr_residual",
           "DctBranch", "dct_matrix", "TRACES"]

NETWORKS: Registry[nn.Module] = Registry("detector network")
NORMS = ("none", "batch", "instance", "layer")
RESIDUALS = ("none", "npr", "both")
SPECTRAL_FEATURES = 64


#: named trace inputs (``unmask harden --traces``): name -> (``residual``, ``spectral``)
TRACES = {"none": ("none", False), "npr": ("npr", False), "npr+dct": ("npr", True), "pixels+npr": ("both", False),
          "pixels+npr+dct": ("both", True)}


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """``x - up(down(x))``, nearest 2x both ways (NPR, Tan et al. 2024); ``x`` (B, C, H, W), H and W even."""
    down = F.interpolate(x, scale_factor=0.5, mode="nearest")  # (B, C, H/2, W/2): the top-left pixel of each 2x2
    return x - F.interpolate(down, scale_factor=2.0, mode="nearest")


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II basis ``(n, n)``: ``M @ x @ M.T`` is the 2-D DCT of an ``n x n`` image."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    m = torch.cos(math.pi * (2 * torch.arange(n, dtype=torch.float64)[None] + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.float()


class DctBranch(nn.Module):
    """log|DCT-II| of the grey image -> per-coefficient batch norm -> linear -> LeakyReLU (64 features)."""

    def __init__(self, image_size: int, features: int = SPECTRAL_FEATURES) -> None:
        super().__init__()
        self.register_buffer("basis", dct_matrix(image_size), persistent=False)  # rebuilt from the size
        self.norm = nn.BatchNorm1d(image_size * image_size)
        self.fc = nn.Linear(image_size * image_size, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(1)  # (B, S, S)
        coeff = torch.matmul(torch.matmul(self.basis, grey), self.basis.t())  # (B, S, S)
        logmag = torch.log(coeff.abs() + 1e-3).flatten(1)  # (B, S * S)
        return F.leaky_relu(self.fc(self.norm(logmag)), 0.2)  # (B, features)


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "instance":
        return nn.InstanceNorm2d(c, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, c)
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


class ConvDiscriminator(nn.Module):
    """Strided 4x4 convolutions halve the image until it is at most 7x7, then a linear head."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 64, max_width: int = 512,
                 norm: str = "batch", spectral_norm: bool = False, dropout: float = 0.0, residual: str = "none",
                 spectral: bool = False) -> None:
        super().__init__()
        if residual not in RESIDUALS:
            raise ValueError(f"unknown residual {residual!r}; choose one of {RESIDUALS}")
        if residual != "none" and image_size % 2:
            raise ValueError(f"residual {residual!r} needs an even image_size (2x2 blocks), not {image_size}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, not {in_channels}")
        if not 8 <= image_size <= 1024:
            raise ValueError(f"image_size must be in [8, 1024], not {image_size}")
        if not 1 <= width <= 1024 or not 1 <= max_width <= 2048:
            raise ValueError(f"width must be in [1, 1024] and max_width in [1, 2048], not {width}, {max_width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
        self.in_channels, self.image_size, self.residual = in_channels, image_size, residual
        wrap = _sn if spectral_norm else (lambda m: m)
        c_in = in_channels * (2 if residual == "both" else 1)
        layers: list[nn.Module] = [wrap(nn.Conv2d(c_in, width, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
        c, s = width, (image_size + 2 - 4) // 2 + 1
        while s > 7:
            c2 = min(c * 2, max_width)
            layers += [wrap(nn.Conv2d(c, c2, 4, 2, 1, bias=norm == "none")), _norm(norm, c2),
                       nn.LeakyReLU(0.2, inplace=True)]
            c, s = c2, (s + 2 - 4) // 2 + 1
        self.features = nn.Sequential(*layers)
        self.feature_shape = (c, s, s)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.spectral = DctBranch(image_size) if spectral else None
        self.head = wrap(nn.Linear(c * s * s + (SPECTRAL_FEATURES if spectral else 0), 1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.residual == "npr":
            x = npr_residual(x)
        elif self.residual == "both":
            x = torch.cat([x, npr_residual(x)], dim=1)  # (B, 2C, H, W)
        return self.features(x)  # (B, C', s, s)

    def _logits(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The head on the feature map ``f`` of ``x`` (and on ``x``'s DCT branch, if any)."""
        f = f.flatten(1)  # (B, C' * s * s)
        if self.spectral is not None:
            f = torch.cat([f, self.spectral(x)], dim=1)  # (B, C' * s * s + 64)
        return self.head(self.dropout(f)).squeeze(1)  # (B,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(self.forward_features(x), x)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B,), pooled features (B, 2 C'))`` from ONE forward pass: the logits equal
        :meth:`forward`'s; the features are the last feature map's per-channel spatial mean and standard
        deviation, what the domain guard (:mod:`detector.domain`) models. Pooling keeps them small
        (2 C' numbers, not C' s s) so a full covariance stays cheap. Not part of the exported graph."""
        f = self.forward_features(x)  # (B, C', s, s)
        logits = self._logits(f, x)
        f = f.float()
        m = f.mean((2, 3))  # moments, not .var(): ~15x faster on the channels-last maps inference uses
        feats = torch.cat([m, ((f * f).mean((2, 3)) - m * m).clamp_(min=0).sqrt_()], 1)
        return logits, feats


@NETWORKS.register("dcgan_d")
def dcgan_d(in_channels: int = 1, image_size: int = 28, width: int = 64, max_width: int = 512,
            norm: str = "batch", spectral_norm: bool = False, dropout: float = 0.0, residual: str = "none",
            spectral: bool = False) -> nn.Module:
    return ConvDiscriminator(in_channels, image_size, width, max_width, norm, spectral_norm, dropout, residual, spectral)


def create_network(name: str, **kwargs) -> nn.Module:
    """Build a registered detector network by name with its architecture arguments."""
    return NETWORKS.create(name, **kwargs)


@torch.no_grad()
def flip_head(net: nn.Module) -> None:
    """Negate the final linear layer so the logit's sign flips (D's "real" becomes detector's "fake").

    Under spectral normalisation the weight used is ``original / sigma`` with ``sigma = u . W v``;
    negating ``original`` alone would negate ``sigma`` too and change nothing, so the power-iteration
    vector ``u`` is negated with it (``sigma`` keeps its value, the weight flips).
    """
    head = net.head
    if hasattr(head, "parametrizations"):
        head.parametrizations.weight.original.neg_()
        for p in head.parametrizations.weight:
            if hasattr(p, "_u"):
                p._u.neg_()
    else:
        head.weight.neg_()
    if head.bias is not None:
        head.bias.neg_()
