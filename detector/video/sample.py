"""Which frames of a video are scored: every N-th, about R per second, or K spread uniformly.

K uniform frames (32 by default) follow DeepfakeBench's protocol; ``every`` and ``fps`` decide
frame by frame while streaming, so they need no frame count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import VideoConfig

__all__ = ["sample_indices", "Sampling", "plan_sampling"]


def sample_indices(n: int, k: int) -> list[int]:
    """``k`` frame indices spread uniformly over ``n`` frames (all of them when ``k >= n``)."""
    if n <= 0:
        return []
    if k >= n:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


@dataclass
class Sampling:
    """A sampling plan: ``want(index, time_s)`` says whether to score a frame."""

    want: Callable[[int, float], bool]
    total: int | None          # frames it will sample, when known (for the progress bar)
    out_fps: float             # frame rate of the annotated video


def plan_sampling(config: VideoConfig, count: int | None, fps: float | None, k: int | None) -> Sampling:
    """The plan for a video of ``count`` frames (None: unknown) at ``fps``; ``k`` frames when uniform."""
    if config.every is not None:
        e = config.every
        total = None if count is None else math.ceil(count / e)
        return Sampling(lambda i, t: i % e == 0, total, (fps or 25.0) / e)
    if config.fps is not None:
        step, nxt = 1.0 / config.fps, [0.0]

        def want(i: int, t: float) -> bool:
            if t + 1e-9 >= nxt[0]:
                nxt[0] = (math.floor(t / step + 1e-9) + 1) * step
                return True
            return False
        total = None if count is None or not fps else math.ceil(count / fps * config.fps)
        return Sampling(want, total, config.fps)
    plan = set(sample_indices(count, k))
    dur = count / fps if fps else None
    # total: read on to the end all the same, so the true frame count is checked
    return Sampling(lambda i, t: i in plan, len(plan), len(plan) / dur if dur else 2.0)
