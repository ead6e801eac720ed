"""How videos are sampled, scored and aggregated: :class:`VideoConfig` (one field per ``unmask video`` option).

The default per-video aggregation is ``topk_mean`` over the top 10% of frames (at least 3), see
docs/video.md for why; 32 uniformly spread frames per video follow DeepfakeBench's protocol (Yan et
al., "DeepfakeBench: A Comprehensive Benchmark of Deepfake Detection", NeurIPS 2023).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .read import DEFAULT_MAX_PIXELS

__all__ = ["VIDEO_AGGREGATES", "VideoConfig"]

VIDEO_AGGREGATES = ("topk_mean", "mean", "max", "flagged_fraction")


@dataclass(frozen=True)
class VideoConfig:
    """How videos are sampled, scored and aggregated (one field per ``unmask video`` option)."""

    every: int | None = None            # every N-th frame
    fps: float | None = None            # about R frames per second of video
    frames: int | None = None           # K frames spread uniformly; the default when none of the three is set
    faces: bool = False
    margin: float = 1.3
    min_face: int = 24                  # smallest face (pixels) the cascade reports
    aggregate: str = "topk_mean"        # per-video: topk_mean | mean | max | flagged_fraction
    topk_fraction: float = 0.1          # top-k mean over this fraction of scored frames ...
    topk_min: int = 3                   # ... but at least this many
    flagged_min: float = 0.1            # flagged_fraction verdict: fake when at least this fraction is flagged
    batch_size: int = 256               # regions scored per forward pass
    annotate: bool = False
    all_tiles: bool = False             # one frames.csv row per tile instead of one per frame
    max_pixels: int = DEFAULT_MAX_PIXELS
    time_limit: float | None = None     # seconds per video; None: unbounded
    open_timeout_ms: int = 10_000       # FFmpeg open / read timeouts (network or stuck streams)
    progress: bool = True
    device: str = "cpu"
    out_of_domain: str = "flag"         # flag | score | skip (skip: frames outside left out of the verdict)

    DEFAULT_FRAMES = 32  # DeepfakeBench's protocol: 32 frames per video

    def validate(self) -> "VideoConfig":
        modes = [m for m in ("every", "fps", "frames") if getattr(self, m) is not None]
        if len(modes) > 1:
            raise ValueError(f"choose one sampling mode, not {' and '.join(modes)}")
        if self.every is not None and self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.aggregate not in VIDEO_AGGREGATES:
            raise ValueError(f"unknown aggregation {self.aggregate!r}; choose one of {VIDEO_AGGREGATES}")
        if not self.margin >= 1.0:
            raise ValueError(f"margin must be >= 1.0, got {self.margin}")
        if not 0 < self.topk_fraction <= 1 or self.topk_min < 1:
            raise ValueError("topk_fraction must be in (0, 1] and topk_min >= 1")
        if not 0 < self.flagged_min <= 1:
            raise ValueError(f"flagged_min must be in (0, 1], got {self.flagged_min}")
        if self.out_of_domain not in ("flag", "score", "skip"):
            raise ValueError(f"out_of_domain must be flag, score or skip, not {self.out_of_domain!r}")
        if self.batch_size < 1 or self.max_pixels < 1 or self.min_face < 1:
            raise ValueError("batch_size, max_pixels and min_face must be positive")
        return self

    @property
    def sampling(self) -> str:
        if self.every is not None:
            return f"every {self.every}"
        if self.fps is not None:
            return f"fps {self.fps:g}"
        return f"frames {self.frames or self.DEFAULT_FRAMES}"
