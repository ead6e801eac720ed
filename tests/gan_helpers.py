"""Tiny GAN configurations shared by the tests/test_gan_*.py files."""
from __future__ import annotations

from gan.trainer import GanConfig


def tiny_config(**kw) -> GanConfig:
    """A GAN small enough to train a few steps in well under a second on one CPU core."""
    base = dict(data="fashion-mnist:embedded", steps=6, batch_size=8, z_dim=8, g_width=8,
                d_width=8, health_every=2, health_window=2, checkpoint_every=3, quality_every=-1,
                quality_samples=64, quality_ref=256, progress=False, health_plot=False)
    base.update(kw)
    return GanConfig(**base)
