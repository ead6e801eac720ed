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

__all__ = ["POLICIES", "fit", "resize", "tile_grid", "tiles", "model_inputs", "normalize"]

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
    """``(C, H, W)`` in [0, 1] -> ``(channels, size, size)`` in [0, 1] by ``resize`` or ``crop``.

    ``tile`` here means the same as ``resize`` (one whole-image view); use :func:`tiles` to cut tiles.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown resize policy {policy!r}; choose one of {POLICIES}")
    if img.dim() != 3 or img.shape[-1] < 1 or img.shape[-2] < 1:
        raise ValueError(f"expected a (C, H, W) image, got shape {tuple(img.shape)}")
    img = to_channels(img, channels)
    _, h, w = img.shape
    if policy == "crop":
        # the centre square of side min(h, w), then resized: the same view as "shorter side to
        # `size`, then centre crop", without materialising a huge intermediate for thin images
        m = min(h, w)
        top, left = (h - m) // 2, (w - m) // 2
        img = img[:, top : top + m, left : left + m]
    return resize(img, size, size).contiguous()


def tile_grid(h: int, w: int, size: int, stride: int | None = None) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of tiles covering an ``h x w`` image; the last row and column are
    aligned to the edge so every pixel is covered and no tile is padded. ``stride`` (default
    ``size``) must be in [1, size] so that no pixel is skipped."""
    stride = size if stride is None else stride
    if size < 1:
        raise ValueError(f"tile size must be positive, not {size}")
    if not 1 <= stride <= size:
        raise ValueError(f"tile stride must be in [1, {size}] (larger strides would skip pixels), not {stride}")

    def starts(n: int) -> list[int]:
        if n <= size:
            return [0]
        k = math.ceil((n - size) / stride)
        return sorted({min(i * stride, n - size) for i in range(k + 1)})

    return [(y, x) for y in starts(h) for x in starts(w)]


def tiles(
    img: torch.Tensor, size: int, channels: int, stride: int | None = None
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Cut ``(C, H, W)`` into ``(N, channels, size, size)`` tiles; returns them with their corners.

    A side shorter than ``size`` is first resized up to exactly ``size`` (the other side is kept
    if it is already long enough), so a 1x100000 strip gives 28x100000, not 28x2800000.
    """
    if img.dim() != 3 or img.shape[-1] < 1 or img.shape[-2] < 1:
        raise ValueError(f"expected a (C, H, W) image, got shape {tuple(img.shape)}")
    img = to_channels(img, channels)
    _, h, w = img.shape
    if h < size or w < size:
        img = resize(img, max(h, size), max(w, size))
        _, h, w = img.shape
    corners = tile_grid(h, w, size, stride)
    batch = torch.stack([img[:, y : y + size, x : x + size] for y, x in corners])  # (N, C, S, S)
    return batch, corners


def _fit_tile_budget(img: torch.Tensor, size: int, max_tiles: int) -> tuple[torch.Tensor, float | None]:
    """Scale ``(C, H, W)`` down (never below ``size``) until its tile grid has at most ``max_tiles``
    tiles; returns the image and the applied width factor (None: unchanged)."""
    _, h, w = img.shape
    n = len(tile_grid(max(h, size), max(w, size), size))
    if n <= max_tiles:
        return img, None
    f = math.sqrt(max_tiles / n)
    while True:
        nh, nw = max(size, int(h * f)), max(size, int(w * f))
        if len(tile_grid(nh, nw, size)) <= max_tiles or f < 1e-4:
            break
        f *= 0.95
    return resize(img, nh, nw), nw / w


def model_inputs(img: torch.Tensor, size: int, channels: int, policy: str = "resize", max_tiles: int | None = None
                 ) -> tuple[torch.Tensor, list[tuple[int, int]] | None, str]:
    """``(C, H, W)`` in [0, 1] -> the model inputs ``(N, channels, size, size)`` under ``policy``, the
    tile corners (None unless tiling) and what was done (``resize``, ``crop``, ``tile`` or
    ``tile(scaled F)`` when a huge image was scaled down so its grid fits ``max_tiles``).

    THE preprocessing of scoring: :meth:`detector.Detector.preprocess`, the scan's decoding
    workers and :mod:`detector.scoring` all call it with the artifact's size, channels and policy."""
    if policy != "tile":
        return fit(img, size, channels, policy).unsqueeze(0), None, policy
    done = "tile"
    if max_tiles is not None:
        img, f = _fit_tile_budget(img, size, max_tiles)
        if f is not None:
            done = f"tile(scaled {f:.4g})"
    batch, corners = tiles(img, size, channels)
    return batch, corners, done


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
