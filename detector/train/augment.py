"""Real-world-handling augmentations applied on the fly while hardening a detector.

The recipe of CNNDetection (Wang, Wang, Zhang, Owens & Efros, "CNN-generated images are
surprisingly easy to spot... for now", CVPR 2020): Gaussian blur with sigma drawn from [0, 3] and
JPEG re-encoding at a quality drawn from [30, 100], each applied with a probability, plus the
down/up-scaling, additive noise and horizontal flips that photos meet on their way to a user.
Real and fake images get the same treatment, so the detector cannot use the handling itself as
a cue, and it stops flagging every re-compressed real photo (the NPR #9 failure).

The degradations themselves are :mod:`detector.train.degrade`'s, the same functions the
robustness matrix (:mod:`eval.robustness`) measures a detector with.
"""
from __future__ import annotations

import numpy as np
import torch

from .config import AugmentConfig
from .degrade import add_noise, gaussian_blur, jpeg, rescale, torch_generator

__all__ = ["AugmentConfig", "augment_batch"]


def augment_batch(x: torch.Tensor, config: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Augment a ``(B, C, H, W)`` batch in [0, 1] on the CPU; each image draws its own operations.

    Order follows CNNDetection (blur, then JPEG), preceded by rescaling and followed by noise.
    ``rng`` makes the draw reproducible (hardening seeds it from the seed and the step).
    """
    x = x.detach().float().cpu().clone()
    b = x.shape[0]
    u = rng.random((b, 5))
    tgen = torch_generator(rng)
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
