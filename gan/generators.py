"""Generators: noise ``(B, z_dim)`` -> image ``(B, C, S, S)`` in [-1, 1] (tanh).

* ``dcgan`` - the classic DCGAN generator (Radford, Metz & Chintala, ICLR 2016): a fully
  connected projection reshaped to a small feature map, then stacked stride-2
  ``ConvTranspose2d`` + BatchNorm + ReLU, then tanh. Transposed convolutions leave the
  periodic "checkerboard" traces that spectral detectors find (Odena et al., Distill 2016;
  Durall et al., CVPR 2020).
* ``upconv`` - the same network with every transposed convolution replaced by
  resize-then-convolve (nearest or bilinear up-sampling + 3x3 convolution), the fix Odena et al.
  propose for checkerboard artifacts. A detector hardened on one family must be checked on the
  other.

Two registered generators are NOT GANs (``NON_GAN_GENERATORS``; :mod:`gan.families` lists every
family): ``vae``, the decoder of a convolutional VAE (:mod:`gan.vae`), and ``diffusion``, a
DDIM sampler around a small UNet denoiser (:mod:`gan.diffusion`). They map noise to images like
the GAN generators, so the zoo, sampling and hardening treat every family alike.

Sizes: the image size is halved while it is even and above 7, giving a base map of ``s0 x s0``
(28 -> 7, 32 -> 4, 64 -> 4, 48 -> 6) and ``n`` up-sampling stages (at least one).
"""
from __future__ import annotations

import importlib

import torch
from torch import nn

from detector.registry import Registry

__all__ = ["GENERATORS", "Generator", "create_generator", "generator_family", "plan_sizes", "UPSAMPLE_MODES",
           "NON_GAN_GENERATORS"]

GENERATORS: Registry[nn.Module] = Registry("generator")
UPSAMPLE_MODES = ("nearest", "bilinear")
NON_GAN_GENERATORS = ("vae", "diffusion")  # trained by gan.likelihood, not by the GAN trainer


def plan_sizes(image_size: int) -> tuple[int, int]:
    """``(s0, n)`` with ``s0 * 2**n == image_size``: the base map size and the number of 2x stages."""
    if not isinstance(image_size, int) or image_size < 8 or image_size > 1024:
        raise ValueError(f"image_size must be an integer in [8, 1024], not {image_size!r}")
    s, n = image_size, 0
    while s % 2 == 0 and s > 7:
        s, n = s // 2, n + 1
    if n == 0:
        raise ValueError(f"image_size {image_size} is odd: a generator doubles a base map, "
                         "so use an even size such as 28, 32 or 64")
    if s > 16:
        raise ValueError(f"image_size {image_size} has a base map of {s}x{s} (too large); "
                         "use a size of the form s0 * 2**n with s0 <= 16, e.g. 28, 32, 48, 64")
    return s, n


class Generator(nn.Module):
    """Projection + ``n`` up-sampling stages; ``upsample`` is ``'transposed'`` or a resize mode."""

    def __init__(self, z_dim: int = 64, image_size: int = 28, channels: int = 1, width: int = 64,
                 max_width: int = 512, upsample: str = "transposed") -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {channels}")
        if z_dim < 1 or width < 1:
            raise ValueError(f"z_dim and width must be positive (got {z_dim}, {width})")
        if upsample != "transposed" and upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be 'transposed' or one of {UPSAMPLE_MODES}, not {upsample!r}")
        s0, n = plan_sizes(image_size)
        self.z_dim, self.image_size, self.channels, self.upsample = z_dim, image_size, channels, upsample
        widths = [min(width * 2 ** (n - 1 - i), max_width) for i in range(n)]  # channels before each stage
        self.s0, self.c0 = s0, widths[0]
        self.project = nn.Sequential(nn.Linear(z_dim, self.c0 * s0 * s0, bias=False),
                                     nn.BatchNorm1d(self.c0 * s0 * s0), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        for i in range(n):
            c_in = widths[i]
            last = i == n - 1
            c_out = channels if last else widths[i + 1]
            stages.append(self._up(c_in, c_out, bias=last))
            stages += [nn.Tanh()] if last else [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.stages = nn.Sequential(*stages)
        self.apply(_dcgan_init)

    def _up(self, c_in: int, c_out: int, bias: bool) -> nn.Module:
        if self.upsample == "transposed":
            return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)  # exact 2x
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=self.upsample),
                             nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z.flatten(1)).view(-1, self.c0, self.s0, self.s0)  # (B, c0, s0, s0)
        return self.stages(x)  # (B, C, S, S) in [-1, 1]


def _dcgan_init(m: nn.Module) -> None:
    """Weights N(0, 0.02), BatchNorm gamma N(1, 0.02) as in the DCGAN paper."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@GENERATORS.register("dcgan")
def dcgan(z_dim: int = 64, image_size: int = 28, channels: int = 1, width: int = 64,
          max_width: int = 512) -> nn.Module:
    return Generator(z_dim, image_size, channels, width, max_width, upsample="transposed")


@GENERATORS.register("upconv")
def upconv(z_dim: int = 64, image_size: int = 28, channels: int = 1, width: int = 64,
           max_width: int = 512, mode: str = "nearest") -> nn.Module:
    return Generator(z_dim, image_size, channels, width, max_width, upsample=mode)


def create_generator(name: str, **kwargs) -> nn.Module:
    """Build a registered generator by name with its architecture arguments."""
    return GENERATORS.create(name, **kwargs)


def generator_family(name: str, args: dict | None = None) -> str:
    """The family a generator belongs to (:mod:`gan.families`): its registry name, except resize-then-
    convolve with bilinear up-sampling, ``upconv-bilinear``, which leaves different traces from nearest."""
    GENERATORS.get(name)  # raises on unknown names
    if name == "upconv" and (args or {}).get("mode") == "bilinear":
        return "upconv-bilinear"
    return name


for _module in NON_GAN_GENERATORS:  # gan/vae.py and gan/diffusion.py register themselves on import
    importlib.import_module(f"{__package__}.{_module}")
