"""A small denoising diffusion model. NOT a GAN: trained by :mod:`gan.likelihood` to predict the noise
added to an image (DDPM: Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020),
sampled with the deterministic DDIM update in a few steps (Song, Meng & Ermon, "Denoising Diffusion
Implicit Models", ICLR 2021).

It is in unmask's zoo because diffusion models make most of today's fakes and leave different traces
from GANs: no learnt up-sampling from a low-resolution code (the image is refined at full resolution),
so neither the checkerboard of transposed convolutions nor a projection's blockiness; what remains is
the denoiser's UNet (nearest up-sampling in its decoder half) and the sampler's residual noise.

Registered as generator ``diffusion``: :class:`DiffusionSampler`, noise ``(B, z_dim)`` with
``z_dim = C * S * S`` (the initial noise image, flattened) -> image ``(B, C, S, S)`` in [-1, 1] by
``sample_steps`` DDIM steps; the same noise gives the same image, as a GAN generator does.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .generators import GENERATORS

__all__ = ["TinyUNet", "DiffusionSampler"]


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, c), c)  # 8 groups when the width allows


class _ResBlock(nn.Module):
    """Two 3x3 convolutions with the time embedding added in between, and a skip connection."""

    def __init__(self, c_in: int, c_out: int, t_dim: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.n1, self.n2, self.t = _gn(c_in), _gn(c_out), nn.Linear(t_dim, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.n1(x))) + self.t(temb)[:, :, None, None]
        return self.conv2(F.silu(self.n2(h))) + self.skip(x)


class TinyUNet(nn.Module):
    """Noise predictor ``eps(x_t, t)``: two 2x down-sampling levels (strided conv), a middle block and
    two up-sampling levels (nearest resize + convolution) with skip connections."""

    def __init__(self, channels: int = 1, width: int = 32) -> None:
        super().__init__()
        w, t_dim = width, 4 * width
        self.width = w
        self.temb = nn.Sequential(nn.Linear(w, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.inc = nn.Conv2d(channels, w, 3, 1, 1)
        self.d1, self.down1 = _ResBlock(w, w, t_dim), nn.Conv2d(w, w, 4, 2, 1)
        self.d2, self.down2 = _ResBlock(w, 2 * w, t_dim), nn.Conv2d(2 * w, 2 * w, 4, 2, 1)
        self.mid = _ResBlock(2 * w, 2 * w, t_dim)
        self.u2 = _ResBlock(4 * w, 2 * w, t_dim)
        self.u1 = _ResBlock(3 * w, w, t_dim)
        self.out = nn.Sequential(_gn(w), nn.SiLU(), nn.Conv2d(w, channels, 3, 1, 1))

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        """Sinusoidal embedding of the timesteps ``t`` (B,) -> (B, t_dim)."""
        half = self.width // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
        a = t.float()[:, None] * freqs[None]
        return self.temb(torch.cat([a.sin(), a.cos()], dim=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.embed(t)
        h1 = self.d1(self.inc(x), e)  # (B, w, S, S)
        h2 = self.d2(self.down1(h1), e)  # (B, 2w, S/2, S/2)
        m = self.mid(self.down2(h2), e)  # (B, 2w, S/4, S/4)
        u = self.u2(torch.cat([F.interpolate(m, scale_factor=2.0, mode="nearest"), h2], 1), e)
        u = self.u1(torch.cat([F.interpolate(u, scale_factor=2.0, mode="nearest"), h1], 1), e)
        return self.out(u)  # (B, C, S, S): the predicted noise


class DiffusionSampler(nn.Module):
    """The UNet, its DDPM noise schedule (linear betas), the training loss and the DDIM sampler."""

    def __init__(self, z_dim: int = 784, image_size: int = 28, channels: int = 1, width: int = 32,
                 timesteps: int = 1000, sample_steps: int = 10) -> None:
        super().__init__()
        if image_size % 4 or not 8 <= image_size <= 1024 or channels not in (1, 3):
            raise ValueError(f"diffusion: image_size must be a multiple of 4 in [8, 1024] and channels 1 or 3 "
                             f"(got {image_size}, {channels})")
        if z_dim != channels * image_size ** 2:
            raise ValueError(f"diffusion: z_dim is the initial noise image, so it must be channels * image_size**2 "
                             f"= {channels * image_size ** 2}, not {z_dim}")
        if not 1 <= sample_steps <= timesteps:
            raise ValueError(f"diffusion: sample_steps must be in [1, timesteps={timesteps}], not {sample_steps}")
        self.z_dim, self.image_size, self.channels = z_dim, image_size, channels
        self.timesteps, self.sample_steps = timesteps, sample_steps
        self.unet = TinyUNet(channels, width)
        betas = torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, 0).float(), persistent=False)

    def generator(self) -> nn.Module:
        """The module the zoo keeps and samples (this one)."""
        return self

    def loss(self, x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Mean squared error of the predicted noise at uniform random timesteps; ``x`` in [-1, 1]."""
        t = torch.randint(0, self.timesteps, (x.shape[0],), generator=rng).to(x.device)
        eps = torch.randn(x.shape, generator=rng).to(x.device)
        ab = self.alpha_bar[t][:, None, None, None]
        return F.mse_loss(self.unet(ab.sqrt() * x + (1 - ab).sqrt() * eps, t), eps)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """DDIM (eta = 0) from the noise image ``z`` over ``sample_steps`` evenly spaced timesteps."""
        x = z.reshape(-1, self.channels, self.image_size, self.image_size)
        ts = torch.linspace(self.timesteps - 1, 0, self.sample_steps).round().long().tolist()
        x0 = x
        for i, t in enumerate(ts):
            ab = self.alpha_bar[t]
            ab_prev = self.alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), device=x.device)
            eps = self.unet(x, torch.full((x.shape[0],), t, device=x.device))
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        return x0  # (B, C, S, S) in [-1, 1]


@GENERATORS.register("diffusion")
def diffusion(z_dim: int = 784, image_size: int = 28, channels: int = 1, width: int = 32, timesteps: int = 1000,
              sample_steps: int = 10) -> nn.Module:
    """A DDIM sampler around a small UNet (not a GAN)."""
    return DiffusionSampler(z_dim, image_size, channels, width, timesteps, sample_steps)
