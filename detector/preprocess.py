"""The one preprocessing path from a decoded image to the model's input.

Every stage (GAN training, hardening, scanning, video, evaluation) calls these functions with
the size, channels and policy read from the detector artifact, never re-typed at call sites.

Policies for images whose size differs from the model's input size:

* ``resize`` - resize the whole image to ``size x size`` (antialiased bilinear); aspect ratio is
  not preserved. Cheap, but down-scaling weakens up-sampling traces (NPR #23, Durall's README).
* ``crop``   - resize the shorter side to ``size`` then take the centre square.
* ``tile``   - cut the image into ``size x size`` tiles at native resolution (no resampling of
  pixels), score every tile and aggregate. Images smaller than ``size`` are resized up.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .decode import to_channels

__all__ = ["POLICIES", "fit", "resize", "tile_grid", "tiles", "normalize"]

POLICIES = ("resize", "crop", "tile")


def resize(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Antialiased bilinear resize of a ``(C, H, W)`` or ``(B, C, H, W)`` tensor."""
    if img.shape[-2:] == (h, w):
        return img
    batched = img.dim() == 4
    x = img if batched else img.unsqueeze(0)
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp_(0.0, 1.0)
    return x if batched else x.squeeze(0)


def fit(img: torch.Tensor, size: int, channels: int, policy: str = "resize") -> torch.Tensor:
    """``(C, H, W)`` in [0, 1] -> ``(channels, size, size)`` in [0, 1] by ``resize`` or ``crop``."""
    img = to_channels(img, channels)
    _, h, w = img.shape
    if policy == "resize" or policy == "tile":
        return resize(img, size, size)
    if policy == "crop":
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        img = resize(img, nh, nw)
        top, left = (nh - size) // 2, (nw - size) // 2
        return img[:, top : top + size, left : left + size].contiguous()
    raise ValueError(f"unknown resize policy {policy!r}; choose one of {POLICIES}")


def tile_grid(h: int, w: int, size: int, stride: int | None = None) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of tiles covering an ``h x w`` image; the last row and column are
    aligned to the edge so every pixel is covered and no tile is padded."""
    stride = stride or size

    def starts(n: int) -> list[int]:
        if n <= size:
            return [0]
        k = math.ceil((n - size) / stride)
        out = [min(i * stride, n - size) for i in range(k + 1)]
        return sorted(set(out))

    return [(y, x) for y in starts(h) for x in starts(w)]


def tiles(
    img: torch.Tensor, size: int, channels: int, stride: int | None = None
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Cut ``(C, H, W)`` into ``(N, channels, size, size)`` tiles; returns them with their corners.

    An image smaller than ``size`` on either side is first resized up so that side equals ``size``.
    """
    img = to_channels(img, channels)
    _, h, w = img.shape
    if h < size or w < size:
        scale = size / min(h, w)
        img = resize(img, max(size, round(h * scale)), max(size, round(w * scale)))
        _, h, w = img.shape
    corners = tile_grid(h, w, size, stride)
    batch = torch.stack([img[:, y : y + size, x : x + size] for y, x in corners])
    return batch, corners


def normalize(x: torch.Tensor, mean: float | list[float], std: float | list[float]) -> torch.Tensor:
    """``(B, C, H, W)`` in [0, 1] -> network input ``(x - mean) / std``."""
    c = x.shape[1]
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(-1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(-1)
    if m.numel() == 1:
        m = m.expand(c)
    if s.numel() == 1:
        s = s.expand(c)
    return (x - m.view(1, c, 1, 1)) / s.view(1, c, 1, 1)
