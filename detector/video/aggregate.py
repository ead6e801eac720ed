"""Per-video verdicts from frame scores: mean (DeepfakeBench's video-level protocol), max, top-k
mean and the fraction of flagged frames; and :class:`VideoResult`, one row of ``videos.csv``."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from .config import VideoConfig

__all__ = ["VIDEO_COLUMNS", "video_stats", "VideoResult"]

VIDEO_COLUMNS = ("video", "status", "verdict", "score", "aggregation", "threshold", "verdict_threshold", "mean",
                 "max", "topk_mean", "topk", "flagged_fraction", "n_frames", "n_no_face", "n_decoded",
                 "frame_count_header", "fps", "width", "height", "duration_s", "sampling", "error", "id",
                 "in_domain", "domain_score", "ood_fraction")


def video_stats(scores: Sequence[float], threshold: float, config: VideoConfig,
                verdict_threshold: float | None = None) -> dict:
    """Per-video statistics of frame scores and the verdict under ``config.aggregate``: frames are
    flagged at ``threshold`` (the frames' own), the video score is compared with ``verdict_threshold``
    (the aggregate's own, :mod:`detector.tails`; default ``threshold``)."""
    s = np.asarray(list(scores), dtype=np.float64)
    n = len(s)
    if n == 0:
        return {"n_frames": 0}
    k = max(min(config.topk_min, n), math.ceil(config.topk_fraction * n))
    st = {"mean": float(s.mean()), "max": float(s.max()), "topk_mean": float(np.sort(s)[-k:].mean()), "topk": k,
          "flagged_fraction": float((s >= threshold).mean()), "n_frames": n}
    st["score"] = st[config.aggregate]
    vt = threshold if verdict_threshold is None else verdict_threshold
    st["verdict_threshold"] = config.flagged_min if config.aggregate == "flagged_fraction" else vt
    st["verdict"] = "fake" if st["score"] >= st["verdict_threshold"] else "real"
    return st


@dataclass
class VideoResult:
    """One row of ``videos.csv``."""

    video: str
    id: str
    status: str = "ok"            # ok | warning (scored, but see error) | error (not scored)
    verdict: str = ""             # fake | real | out_of_domain | no-face | "" (error)
    score: float | None = None
    aggregation: str = ""
    threshold: float | None = None
    verdict_threshold: float | None = None
    mean: float | None = None
    max: float | None = None
    topk_mean: float | None = None
    topk: int | None = None
    flagged_fraction: float | None = None
    n_frames: int = 0             # frames scored (with at least one region)
    n_no_face: int = 0
    n_decoded: int = 0
    frame_count_header: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    sampling: str = ""
    error: str = ""
    in_domain: bool | None = None     # most sampled frames within the detector's domain (None: unknown)
    domain_score: float | None = None  # median of the frames' domain scores (> 1: outside)
    ood_fraction: float | None = None  # share of scored frames outside the domain
    outputs: dict = field(default_factory=dict)

    def row(self) -> dict:
        d = asdict(self)
        return {k: _fmt(d[k]) for k in VIDEO_COLUMNS}


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
