"""Video frames: streamed sampling, face crops or tiles, per-frame and per-video verdicts.

The flow of one video, one module per step:

``read`` (open, probe, count, stream frames within pixel and time limits) -> ``sample`` (which
frames) -> ``faces`` (Haar-cascade face boxes and crops, when scoring faces) -> ``score`` (frames
through the one scoring engine, :mod:`detector.scoring`) -> ``aggregate`` (per-video verdict) ->
``outputs`` / ``render`` (frames.csv, heatmaps, timeline, peak frame, annotated video).
``analyze`` runs that flow for one video and for many; ``config`` holds :class:`VideoConfig`.

Importing this package loads OpenCV lazily (only the functions that read, detect or draw import
it) and sets no environment variables; commands call :func:`quiet_native_logs` at their entry.
"""
from __future__ import annotations

from .aggregate import VIDEO_COLUMNS, VideoResult, video_stats
from .analyze import analyze_video, analyze_videos
from .config import VIDEO_AGGREGATES, VideoConfig
from .faces import FACE_SEARCH_SIDE, detect_faces, face_crop_box
from .outputs import FRAME_COLUMNS
from .read import (DEFAULT_MAX_PIXELS, Frame, StreamStats, VideoError, VideoInfo, bgr_to_tensor, count_frames,
                   list_videos, probe, quiet_native_logs, stream_frames)
from .render import draw_frame, plot_timeline
from .sample import sample_indices
from .score import FrameResult, FrameScorer, Region

__all__ = [
    "VIDEO_AGGREGATES",
    "DEFAULT_MAX_PIXELS",
    "FRAME_COLUMNS",
    "VIDEO_COLUMNS",
    "VideoError",
    "VideoConfig",
    "VideoInfo",
    "Frame",
    "Region",
    "FrameResult",
    "VideoResult",
    "list_videos",
    "probe",
    "count_frames",
    "sample_indices",
    "StreamStats",
    "stream_frames",
    "bgr_to_tensor",
    "quiet_native_logs",
    "face_crop_box",
    "FACE_SEARCH_SIDE",
    "detect_faces",
    "FrameScorer",
    "video_stats",
    "analyze_video",
    "analyze_videos",
    "plot_timeline",
    "draw_frame",
]
