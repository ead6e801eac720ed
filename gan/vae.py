"""A convolutional variational auto-encoder (Kingma & Welling, "Auto-Encoding Variational Bayes",
ICLR 2014). NOT a GAN: no discriminator, trained on the evidence lower bound by :mod:`gan.likelihood`.

It is in unmask's zoo because its images carry different traces from a GAN's: a likelihood loss
averages over the modes it cannot separate, so samples are smooth (little high-frequency energy),
and its decoder up-samples by bilinear resize-then-convolve with group norm and SiLU, not the
GANs' batch-norm stages. A detector that only learnt "checkerboard = fake" misses them.

Registered as generator ``vae``: the *decoder*, noise ``(B, z_dim)`` -> image ``(B, C, S, S)`` in
[-1, 1], sampled from the prior N(0, I) like a GAN generator. The encoder is needed for training
only; the zoo keeps the decoder.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .generators import GENERATORS, plan_sizes

__all__ = ["VaeDecoder", "VAE", "RECON_SIGMA"]

RECON_SIGMA = 0.2  # the decoder's Gaussian likelihood scale on [-1, 1] images: smaller = sharper, less regular


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), nn.GroupNorm(math.gcd(8, c_out), c_out), nn.SiLU())


class VaeDecoder(nn.Module):
    """Projection to an ``s0 x s0`` map, then ``n`` stages of bilinear 2x up-sampling + 3x3 convolution."""

    def __init__(self, z_dim: int = 16, image_size: int = 28, channels: int = 1, width: int = 32,
                 max_width: int = 256) -> None:
        super().__init__()
        if channels not in (1, 3) or z_dim < 1 or width < 1:
            raise ValueError(f"vae: channels must be 1 or 3 and z_dim, width positive "
                             f"(got {channels}, {z_dim}, {width})")
        s0, n = plan_sizes(image_size)
        self.z_dim, self.image_size, self.channels = z_dim, image_size, channels
        widths = [min(width * 2 ** (n - i), max_width) for i in range(n + 1)]  # before each stage, then the last
        self.s0, self.c0 = s0, widths[0]
        self.project = nn.Linear(z_dim, self.c0 * s0 * s0)
        self.stages = nn.Sequential(*[nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                                    _block(widths[i], widths[i + 1])) for i in range(n)])
        self.to_image = nn.Conv2d(widths[-1], channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.project(z.flatten(1))).view(-1, self.c0, self.s0, self.s0)  # (B, c0, s0, s0)
        return torch.tanh(self.to_image(self.stages(x)))  # (B, C, S, S) in [-1, 1]


class VAE(nn.Module):
    """Encoder (strided convolutions -> mean and log-variance) + :class:`VaeDecoder`."""

    def __init__(self, z_dim: int = 16, image_size: int = 28, channels: int = 1, width: int = 32,
                 max_width: int = 256) -> None:
        super().__init__()
        self.decoder = VaeDecoder(z_dim, image_size, channels, width, max_width)
        _, n = plan_sizes(image_size)
        layers, c = [], channels
        for i in range(n):
            c2 = min(width * 2 ** (i + 1), max_width)
            layers += [nn.Conv2d(c, c2, 4, 2, 1), nn.GroupNorm(math.gcd(8, c2), c2), nn.SiLU()]
            c = c2
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        s0 = self.decoder.s0
        self.stats = nn.Linear(c * s0 * s0, 2 * z_dim)  # mean, log-variance

    def generator(self) -> nn.Module:
        """The module the zoo keeps and samples (the decoder)."""
        return self.decoder

    def loss(self, x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """The negative ELBO per image (Gaussian likelihood of scale ``RECON_SIGMA``); ``x`` in [-1, 1]."""
        mu, logvar = self.stats(self.encoder(x)).chunk(2, dim=1)  # (B, z), (B, z)
        logvar = logvar.clamp(-10.0, 10.0)
        eps = torch.randn(mu.shape, generator=rng).to(mu.device)
        x_hat = self.decoder(mu + eps * (0.5 * logvar).exp())
        recon = ((x_hat - x) ** 2).flatten(1).sum(1) / (2 * RECON_SIGMA ** 2)
        kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
        return (recon + kl).mean()


@GENERATORS.register("vae")
def vae(z_dim: int = 16, image_size: int = 28, channels: int = 1, width: int = 32, max_width: int = 256) -> nn.Module:
    """The decoder of a VAE (not a GAN)."""
    return VaeDecoder(z_dim, image_size, channels, width, max_width)
