"""Everyday image degradations: JPEG re-compression, Gaussian blur, down-and-up scaling, noise.

The one implementation of each, used both to *train* against them (:mod:`detector.train.augment`,
random parameters per image, the CNNDetection recipe of Wang et al., "CNN-generated images are
surprisingly easy to spot... for now", CVPR 2020) and to *measure* a detector under them
(:mod:`eval.robustness`, fixed parameters: the post-processing study of the same paper, extended
with the resize and noise that NPR's users report, Tan et al., CVPR 2024, issues #9 and #23).
A detector is thus evaluated on exactly the degradations it was hardened with.

Every function takes and returns one ``(C, H, W)`` float image in [0, 1] (C = 1 or 3) on the CPU.
Codec and kernel choices:

* JPEG: OpenCV's libjpeg (4:2:0 chroma subsampling for colour, single-component for grey),
  quantised to uint8 by rounding half up (:func:`quantize`).
* Blur: OpenCV's Gaussian with the kernel OpenCV derives for float images (radius 4 sigma, so the
  truncated tails hold < 1e-4 of the weight) and reflected borders.
* Rescale: antialiased bilinear down-scaling (no aliasing from the shrink), bilinear back up.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["quantize", "jpeg", "gaussian_blur", "rescale", "add_noise", "torch_generator"]


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Float in [0, 1] (any shape) -> uint8, rounding half up (``x * 255 + 0.5`` truncated)."""
    return (x.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)


def _to_hwc_uint8(img: torch.Tensor) -> np.ndarray:
    a = quantize(img).permute(1, 2, 0).numpy()  # (H, W, C)
    return np.ascontiguousarray(a[..., ::-1] if a.shape[2] == 3 else a)  # RGB -> BGR for cv2


def _from_hwc_uint8(a: np.ndarray, channels: int) -> torch.Tensor:
    if a.ndim == 2:
        a = a[..., None]
    if channels == 3:
        a = a[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)


def jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode ``(C, H, W)`` in [0, 1] as a JPEG at ``quality`` (1-100) and decode it again."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
    ok, buf = cv2.imencode(".jpg", _to_hwc_uint8(img), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("cv2 failed to encode a JPEG")
    flag = cv2.IMREAD_COLOR if img.shape[0] == 3 else cv2.IMREAD_GRAYSCALE
    return _from_hwc_uint8(cv2.imdecode(buf, flag), img.shape[0])


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``(C, H, W)`` with standard deviation ``sigma`` pixels (reflected borders)."""
    if sigma <= 1e-3:
        return img
    a = img.permute(1, 2, 0).numpy().astype(np.float32)  # (H, W, C)
    out = cv2.GaussianBlur(a, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT_101)
    return torch.from_numpy(out.reshape(a.shape)).permute(2, 0, 1).contiguous()


def rescale(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Down-scale ``(C, H, W)`` by ``factor`` (antialiased) and scale back up to the original size."""
    _, h, w = img.shape
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    if (nh, nw) == (h, w):
        return img
    small = F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0].clamp_(0, 1)


def add_noise(img: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add i.i.d. N(0, std^2) noise per pixel (drawn from ``generator``) and clip to [0, 1]."""
    return (img + torch.randn(img.shape, generator=generator) * std).clamp_(0, 1)


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A torch generator seeded from a numpy one (how a numpy-seeded caller draws torch noise)."""
    return torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
