"""Analysing videos: one video end to end (probe, sample, score, aggregate, write), then many.

Bad input never stops a batch: every video gets exactly one row in ``videos.csv`` with a status
(``ok``, ``warning``: scored but the file is damaged or its header lies, ``error``: not scored)
and the reason. When the header's frame count turns out wrong, uniform sampling is redone once
over the frames that really decode.
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..artifact import Detector
from ..atomic import atomic_open, write_json
from ..progress import Progress
from .aggregate import VIDEO_COLUMNS, VideoResult, video_stats
from .config import VideoConfig
from .outputs import FRAME_COLUMNS, Sinks, safe_id
from .read import StreamStats, VideoError, VideoInfo, too_big, count_frames, list_videos, probe, stream_frames
from .sample import plan_sampling, sample_indices
from .score import FrameScorer

__all__ = ["analyze_video", "analyze_videos"]


def _progress(config: VideoConfig, total: int | None, desc: str):
    return Progress(total=total, desc=desc[:40], unit="frame", leave=False, enabled=config.progress)


def _fail(res: VideoResult, reason: str) -> None:
    res.status, res.error, res.verdict, res.n_frames, res.outputs = "error", reason, "", 0, {}
    for key in ("score", "mean", "max", "topk_mean", "topk", "flagged_fraction", "verdict_threshold"):
        setattr(res, key, None)


@dataclass
class _Plan:
    """What probing found out: the header, the frame count to plan with, K (uniform sampling) and notes."""

    info: VideoInfo
    count: int | None
    k: int | None
    notes: list[str] = field(default_factory=list)
    warn: bool = False


def _probe(path: Path, config: VideoConfig, res: VideoResult, deadline: float | None) -> _Plan:
    """Read the header into ``res``; count the frames when uniform sampling needs a count it lacks."""
    info = probe(path, config.open_timeout_ms)
    res.fps, res.width, res.height, res.frame_count_header = info.fps, info.width, info.height, info.frame_count
    if info.width * info.height > config.max_pixels:
        raise VideoError(path, too_big(info.width, info.height, config.max_pixels))
    counted = None
    if info.frame_count == 0:
        # FFmpeg reports 0 for a container with no frames; make sure before calling it empty
        counted = count_frames(path, config.open_timeout_ms, deadline)
        if counted == 0:
            raise VideoError(path, "video has zero frames")
        info = VideoInfo(info.path, info.fps, None, info.width, info.height, info.codec)
    plan = _Plan(info, info.frame_count, None)
    if config.every is None and config.fps is None:
        plan.k = config.frames or VideoConfig.DEFAULT_FRAMES
    if plan.k is not None and plan.count is None:
        plan.count = counted if counted is not None else count_frames(path, config.open_timeout_ms, deadline)
        plan.notes.append(f"frame count not in the header; counted {plan.count} frames in a first pass")
        if plan.count == 0:
            raise VideoError(path, "no decodable frames (corrupt video or zero frames)")
    return plan


def _stream(path: Path, detector: Detector, config: VideoConfig, plan: _Plan, res: VideoResult,
            new_sinks: Callable[[float], Sinks], deadline: float | None) -> Sinks:
    """Sample, score and stage every frame; resample once if the header's frame count was wrong."""
    scorer = FrameScorer(detector, config)
    info = plan.info
    for attempt in range(2):
        stats = StreamStats()
        sampling = plan_sampling(config, plan.count, info.fps, plan.k)
        sinks = new_sinks(min(30.0, max(1.0, sampling.out_fps)))
        bar = _progress(config, sampling.total, path.name)
        try:
            frames = stream_frames(path, sampling.want, fps=info.fps, stats=stats, timeout_ms=config.open_timeout_ms,
                                   deadline=deadline, max_pixels=config.max_pixels)
            for frame, fr in scorer.score(frames):
                sinks.add(frame, fr)
                bar.update(1)
        except BaseException:
            sinks.discard()
            raise
        finally:
            bar.close()
        res.n_decoded = stats.decoded
        if stats.decoded == 0:
            sinks.discard()
            hc = info.frame_count
            raise VideoError(path, f"corrupt video: the header announces {hc} frames but none could be decoded"
                             if hc else "no decodable frames (corrupt video or zero frames)")
        count, k = plan.count, plan.k
        if count is not None and stats.decoded != count:
            plan.warn = True
            msg = (f"frame count mismatch: the header says {count} frames but {stats.decoded} decoded "
                   f"({'truncated file or wrong header' if stats.decoded < count else 'wrong header'})")
            if k is not None and attempt == 0 and sample_indices(count, k) != sample_indices(stats.decoded, k):
                plan.notes.append(msg + f"; resampled {min(k, stats.decoded)} frames over the {stats.decoded} decoded")
                plan.count = stats.decoded
                sinks.discard()
                continue
            plan.notes.append(msg)
        return sinks
    raise AssertionError("unreachable: the second attempt always returns")


def _video_threshold(detector: Detector, config: VideoConfig, sinks: Sinks, k: int) -> float | None:
    """The video aggregate's own threshold at the detector's FPR (:mod:`detector.tails`); None: unknown."""
    tails = detector.trust.tails if detector.trust is not None else None
    if tails is None or not sinks.scores or config.aggregate == "flagged_fraction":
        return None
    s = detector.spec
    n = int(np.median(sinks.n_regions))
    return tails.video(n, "max" if config.faces else s.tile_aggregate, s.tile_topk, len(sinks.scores),
                       config.aggregate, k)


def _domain(res: VideoResult, sinks: Sinks, config: VideoConfig) -> None:
    """The video's domain verdict: in domain when at most half its scored frames are outside."""
    if not sinks.domain_scores:
        return
    d = np.asarray(sinks.domain_scores)
    res.domain_score, res.ood_fraction = float(np.median(d)), float((d > 1.0).mean())
    res.in_domain = res.ood_fraction <= 0.5
    if not res.in_domain and config.out_of_domain != "score" and res.verdict in ("fake", "real"):
        res.verdict = "out_of_domain"


def _conclude(res: VideoResult, sinks: Sinks, detector: Detector, config: VideoConfig, plan: _Plan) -> None:
    """Frame scores -> the video's statistics, verdict, status and notes in ``res``."""
    n = len(sinks.scores)
    k = max(min(config.topk_min, n), math.ceil(config.topk_fraction * n)) if n else 0
    frame_thr = sinks.frame_threshold if sinks.frame_threshold is not None else detector.spec.threshold
    st = video_stats(sinks.scores, frame_thr, config, _video_threshold(detector, config, sinks, k))
    res.n_frames, res.n_no_face = st["n_frames"], sinks.n_no_face
    if res.n_frames:
        res.threshold = frame_thr
        for key in ("score", "mean", "max", "topk_mean", "topk", "flagged_fraction", "verdict", "verdict_threshold"):
            setattr(res, key, st[key])
        _domain(res, sinks, config)
    elif sinks.n_skipped:  # every scored frame lies outside the domain
        _domain(res, sinks, config)
        res.verdict = "out_of_domain"
    elif config.faces:
        res.verdict = "no-face"
        plan.notes.append(f"no face detected in any of the {res.n_no_face} sampled frames")
    if sinks.n_skipped:
        plan.notes.append(f"{sinks.n_skipped} of {sinks.n_skipped + res.n_frames} scored frames lie outside the "
                          f"detector's domain and were left out of the verdict (--out-of-domain skip)")
    if plan.info.fps:
        res.duration_s = res.n_decoded / plan.info.fps
    res.status = "warning" if plan.warn else "ok"
    res.error = "; ".join(plan.notes)


def analyze_video(path: str | os.PathLike, detector: Detector, config: VideoConfig = VideoConfig(),
                  out_dir: str | os.PathLike | None = None, frames_out=None, vid: str | None = None) -> VideoResult:
    """Score one video; never raises for bad input: problems go into the result's status and error.

    ``frames_out`` (a text file) receives the video's ``frames.csv`` rows (no header) once it is done;
    ``out_dir`` receives its timeline, heatmaps, peak frame and annotated video.
    """
    import cv2

    config = config.validate()
    path = Path(path)
    vid = vid or safe_id(0, path)
    out = None if out_dir is None else Path(out_dir)
    res = VideoResult(video=os.fspath(path), id=vid, aggregation=config.aggregate,
                      threshold=detector.spec.threshold, sampling=config.sampling)
    deadline = None if config.time_limit is None else time.monotonic() + config.time_limit
    try:
        plan = _probe(path, config, res, deadline)
        sinks = _stream(path, detector, config, plan, res,
                        lambda fps: Sinks(out, vid, os.fspath(path), detector, config, fps), deadline)
        try:
            _conclude(res, sinks, detector, config, plan)
            sinks.commit(frames_out if frames_out is not None else io.StringIO(), res)
        except BaseException:
            sinks.discard()
            raise
    except VideoError as e:
        _fail(res, e.reason)
    except (MemoryError, OSError, RuntimeError, ValueError, cv2.error) as e:  # the batch goes on; this video is reported
        _fail(res, f"{type(e).__name__}: {e}")
    return res


def analyze_videos(paths: Sequence[str | os.PathLike], detector: Detector, config: VideoConfig,
                   out_dir: str | os.PathLike, on_result: Callable[[VideoResult], None] | None = None
                   ) -> list[VideoResult]:
    """Score every video under ``paths`` into ``out_dir`` (frames.csv, videos.csv, timelines/, heatmaps/,
    peaks/, annotated/, run.json). Each input gets exactly one ``videos.csv`` row."""
    config = config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = list_videos(paths)
    write_json(out / "run.json", {"config": {f.name: getattr(config, f.name) for f in fields(config)},
                                  "sampling": config.sampling, "detector": detector.spec.to_json(),
                                  "inputs": [os.fspath(p) for p in paths], "n_videos": len(files)})
    results: list[VideoResult] = []
    with atomic_open(out / "frames.csv", "w") as frames_out:
        csv.writer(frames_out).writerow(FRAME_COLUMNS)
        for i, f in enumerate(files):
            r = analyze_video(f, detector, config, out, frames_out, vid=safe_id(i, f))
            results.append(r)
            if on_result is not None:
                on_result(r)
    with atomic_open(out / "videos.csv", "w") as vf:
        w = csv.DictWriter(vf, fieldnames=VIDEO_COLUMNS)
        w.writeheader()
        for r in results:
            w.writerow(r.row())
    return results
