"""Writing images: tensors in [0, 1] to PNG files and contact-sheet grids."""
from __future__ import annotations

import io
import os

import numpy as np
import torch
from PIL import Image

from .atomic import write_bytes

__all__ = ["to_uint8", "to_pil", "save_png", "save_grid"]


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` float in [0, 1] -> ``(H, W)`` or ``(H, W, 3)`` uint8."""
    a = (img.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
    return a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()


def to_pil(img: torch.Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(img))


def _write_png(pil: Image.Image, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    write_bytes(path, buf.getvalue())


def save_png(img: torch.Tensor, path: str | os.PathLike) -> None:
    """Save ``(C, H, W)`` in [0, 1] as a lossless PNG (atomically)."""
    _write_png(to_pil(img), path)


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8, scale: int = 1, pad: int = 2) -> None:
    """Save ``(N, C, H, W)`` in [0, 1] as one PNG grid (optionally up-scaled by ``scale``)."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=pad, pad_value=1.0)
    pil = to_pil(grid)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    _write_png(pil, path)
