"""The GAN speed benchmark runs at a tiny size and reports consistent numbers (no timing asserts)."""
from __future__ import annotations

import math

from bench.gan_speed import run


def test_gan_speed_bench_tiny():
    r = run(steps=3, batch_size=8, g_width=4, d_width=4, z_dim=4, threads=1, repeats=1,
            quality_samples=32, quality_ref=64)
    assert r.steps == 3 and r.batch_size == 8 and r.threads == 1
    assert r.reference_images_per_s > 0 and r.ours_images_per_s > 0
    assert math.isclose(r.ratio, r.ours_images_per_s / r.reference_images_per_s)
    assert math.isclose(r.ours_steps_per_s, r.ours_images_per_s / 8)
