"""Real-world-handling augmentations applied on the fly while hardening a detector.

The recipe of CNNDetection (Wang, Wang, Zhang, Owens & Efros, "CNN-generated images are
surprisingly easy to spot... for now", CVPR 2020): Gaussian blur with sigma drawn from [0, 3] and
JPEG re-encoding at a quality drawn from [30, 100], each applied with a probability, plus the
down/up-scaling, additive noise and horizontal flips that photos meet on their way to a user.
Real and fake images get the same treatment, so the detector cannot use the handling itself as
a cue, and it stops flagging every re-compressed real photo (the NPR #9 failure).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "augment_batch", "jpeg", "gaussian_blur", "rescale", "add_noise"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probability and range of each augmentation (each drawn independently per image)."""

    p_jpeg: float = 0.1
    jpeg_quality: tuple[int, int] = (30, 100)
    p_blur: float = 0.1
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    p_rescale: float = 0.1
    rescale_factor: tuple[float, float] = (0.5, 1.0)   # down by this factor, then back up
    p_noise: float = 0.1
    noise_std: tuple[float, float] = (0.0, 0.03)
    p_flip: float = 0.5

    def __post_init__(self) -> None:
        for name in ("p_jpeg", "p_blur", "p_rescale", "p_noise", "p_flip"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"jpeg_quality must satisfy 1 <= low <= high <= 100, got {self.jpeg_quality}")
        if not 0.0 <= self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must be 0 <= low <= high, got {self.blur_sigma}")
        if not 0.0 < self.rescale_factor[0] <= self.rescale_factor[1] <= 1.0:
            raise ValueError(f"rescale_factor must be in (0, 1], got {self.rescale_factor}")
        if not 0.0 <= self.noise_std[0] <= self.noise_std[1]:
            raise ValueError(f"noise_std must be 0 <= low <= high, got {self.noise_std}")

    def scaled(self, factor: float) -> "AugmentConfig":
        """The same recipe with every probability except flips multiplied by ``factor`` (capped at 1)."""
        f = lambda p: min(1.0, max(0.0, p * factor))  # noqa: E731
        return AugmentConfig(f(self.p_jpeg), self.jpeg_quality, f(self.p_blur), self.blur_sigma, f(self.p_rescale),
                             self.rescale_factor, f(self.p_noise), self.noise_std, self.p_flip)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, obj: dict) -> "AugmentConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in obj.items()})


def _to_hwc_uint8(img: torch.Tensor) -> np.ndarray:
    a = (img.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
    return np.ascontiguousarray(a[..., ::-1] if a.shape[2] == 3 else a)  # RGB -> BGR for cv2


def _from_hwc_uint8(a: np.ndarray, channels: int) -> torch.Tensor:
    if a.ndim == 2:
        a = a[..., None]
    if channels == 3:
        a = a[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)


def jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode ``(C, H, W)`` in [0, 1] as a JPEG at ``quality`` and decode it again (cv2/libjpeg)."""
    ok, buf = cv2.imencode(".jpg", _to_hwc_uint8(img), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("cv2 failed to encode a JPEG")
    flag = cv2.IMREAD_COLOR if img.shape[0] == 3 else cv2.IMREAD_GRAYSCALE
    return _from_hwc_uint8(cv2.imdecode(buf, flag), img.shape[0])


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``(C, H, W)`` with standard deviation ``sigma`` pixels (reflect borders)."""
    if sigma <= 1e-3:
        return img
    a = img.permute(1, 2, 0).numpy().astype(np.float32)
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
    return (img + torch.randn(img.shape, generator=generator) * std).clamp_(0, 1)


def augment_batch(x: torch.Tensor, config: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Augment a ``(B, C, H, W)`` batch in [0, 1] on the CPU; each image draws its own operations.

    Order follows CNNDetection (blur, then JPEG), preceded by rescaling and followed by noise.
    ``rng`` makes the draw reproducible (hardening seeds it from the seed and the step).
    """
    x = x.detach().float().cpu().clone()
    b = x.shape[0]
    u = rng.random((b, 5))
    tgen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    for i in range(b):
        img = orig = x[i]
        if u[i, 0] < config.p_rescale:
            img = rescale(img, float(rng.uniform(*config.rescale_factor)))
        if u[i, 1] < config.p_blur:
            img = gaussian_blur(img, float(rng.uniform(*config.blur_sigma)))
        if u[i, 2] < config.p_jpeg:
            img = jpeg(img, int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)))
        if u[i, 3] < config.p_noise:
            img = add_noise(img, float(rng.uniform(*config.noise_std)), tgen)
        if u[i, 4] < config.p_flip:
            img = img.flip(-1)
        if img is not orig:  # some operation made a new image
            x[i] = img
    return x
