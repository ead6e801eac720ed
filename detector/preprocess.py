"""The one preprocessing path from a decoded image to the model's input.

Every stage (GAN training, hardening, scanning, video, evaluation) calls these functions with
the size, channels and policy read from the detector artifact, never re-typed at call sites.

Policies for images whose size differs from the model's input size:

* ``resize`` - resize the whole image to ``size x size`` (antialiased bilinear); aspect ratio is
  not preserved. Cheap, but down-scaling weakens up-sampling traces (NPR #23, Durall's README).
* ``crop``   - resize the shorter side to ``size`` then take the centre square.
* ``tile``   - cut the image into ``size x size`` tiles at native resolution (no resampling of
  pixels), score every tile and aggregate. Images smaller than ``size`` are resized up.

:func:`fit_reduced` is :func:`fit` for a JPEG decoded at 1/2, 1/4 or 1/8 scale in the DCT domain
(:func:`detector.decode.read_image_reduced`): the same antialiased bilinear (triangle) filter,
evaluated on exactly the region the picture (or its centre square) occupies in the reduced image,
so only the decoder's block averaging differs from a full decode (bound: tests/test_reduced.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .decode import to_channels

__all__ = ["POLICIES", "REDUCED_MARGIN", "fit", "fit_reduced", "reduced_side", "resize", "resize_box", "tile_grid",
           "tiles", "model_inputs", "normalize"]

POLICIES = ("resize", "crop", "tile")
#: A reduced decode keeps at least this many pixels per output pixel on each side, so the
#: antialiasing filter still averages over >= 3 decoded pixels (see tests/test_reduced.py).
REDUCED_MARGIN = 3


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


def reduced_side(size: int) -> int:
    """The smallest side a reduced decode may produce for a ``resize`` / ``crop`` model of ``size``."""
    return REDUCED_MARGIN * int(size)


def _aa_weights(n_in: int, n_out: int, start: float, length: float) -> torch.Tensor:
    """``(n_out, n_in)`` weights of the antialiased bilinear (triangle) filter that maps the span
    ``[start, start + length)`` of ``n_in`` input pixels onto ``n_out`` outputs: the kernel of
    ``F.interpolate(..., mode="bilinear", antialias=True)`` (after PIL's), generalised to a
    fractional span. Pixel ``j`` is the interval ``[j, j + 1)``; one that the span covers only in
    part (a reduced decode's last block, a crop edge) is weighted by the part covered, at that
    part's centre. Pixels outside the span get no weight (like a crop)."""
    scale = length / n_out
    support = max(scale, 1.0)
    j = torch.arange(n_in, dtype=torch.float64)
    lo, hi = (j.clamp(min=start), (j + 1.0).clamp(max=start + length))  # the covered part of each pixel
    cover = (hi - lo).clamp_(min=0.0)  # (n_in,)
    mid = (lo + hi) / 2.0
    centre = start + scale * (torch.arange(n_out, dtype=torch.float64) + 0.5)  # (n_out,)
    w = (1.0 - ((mid[None, :] - centre[:, None]) / support).abs()).clamp_(min=0.0) * cover  # (n_out, n_in)
    return (w / w.sum(1, keepdim=True).clamp_(min=1e-12)).float()


def resize_box(img: torch.Tensor, h: int, w: int, box: tuple[float, float, float, float]) -> torch.Tensor:
    """Antialiased bilinear resize of the region ``box = (x0, y0, x1, y1)`` (fractional pixels) of a
    ``(C, H, W)`` tensor to ``(C, h, w)``; with the whole image as ``box`` it equals :func:`resize`
    up to float rounding."""
    x0, y0, x1, y1 = box
    wy = _aa_weights(img.shape[-2], h, y0, y1 - y0)  # (h, H)
    wx = _aa_weights(img.shape[-1], w, x0, x1 - x0)  # (w, W)
    return (wy @ img.float() @ wx.T).clamp_(0.0, 1.0).contiguous()  # (C, h, w)


def fit_reduced(decoded, size: int, channels: int, policy: str = "resize") -> torch.Tensor:
    """:func:`fit` for a :class:`detector.decode.Decoded` picture, possibly decoded at reduced scale.

    A full decode (``scale`` 1) goes through :func:`fit` unchanged. Otherwise the ``resize`` view
    is the picture's region and the ``crop`` view the centre square of the full-size picture
    (same integer arithmetic as :func:`fit`), both mapped into the reduced image's pixels."""
    if decoded.scale == 1:
        return fit(decoded.image, size, channels, policy)
    if policy not in ("resize", "crop"):
        raise ValueError(f"a reduced decode fits only the resize and crop policies, not {policy!r}")
    img = to_channels(decoded.image, channels)  # (channels, h, w)
    x0, y0, x1, y1 = decoded.box
    if policy == "crop":
        fw, fh = decoded.width, decoded.height
        m = min(fw, fh)
        top, left = (fh - m) // 2, (fw - m) // 2
        sx, sy = (x1 - x0) / fw, (y1 - y0) / fh
        x0, y0, x1, y1 = x0 + left * sx, y0 + top * sy, x0 + (left + m) * sx, y0 + (top + m) * sy
    return resize_box(img, size, size, (x0, y0, x1, y1))


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
