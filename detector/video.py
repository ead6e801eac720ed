"""Video frames: streamed sampling, face crops or tiles, per-frame and per-video verdicts.

Frames are streamed with ``cv2.VideoCapture`` and never all held: frames that are not sampled are
only ``grab()``-bed (demuxed and decoded, not converted), a sampled frame lives until its regions
are scored. What is scored in a frame:

* ``faces=True``: OpenCV's bundled Haar cascade (Viola & Jones, "Rapid object detection using a
  boosted cascade of simple features", CVPR 2001) finds faces; each is cropped as a square of
  ``margin`` x its larger side around its centre (x1.3 as in FaceForensics++, Roessler et al.,
  ICCV 2019) and scored through the artifact's own preprocessing. A frame's score is its most
  suspicious face; a frame without a face gets a row saying so and no score.
* otherwise the frame is cut into tiles at the detector's input size (native resolution, no
  resampling; :func:`detector.preprocess.tiles`), every tile is scored, the frame score is the
  artifact's tile aggregate and the grid of tile scores is the frame's heatmap.

Per-video verdicts aggregate frame scores (mean as in DeepfakeBench's video-level protocol, max,
top-k mean, fraction of frames flagged); the default is ``topk_mean`` over the top 10% of frames
(at least 3), see docs/video.md for why.

Bad input never stops a batch: every video gets exactly one row in ``videos.csv`` with a status
(``ok``, ``warning``: scored but the file is damaged or its header lies, ``error``: not scored)
and the reason.
"""
from __future__ import annotations

import os

# FFmpeg's and OpenCV's own log lines would break the progress bars; every problem gets a row instead
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import contextlib
import csv
import io
import math
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .artifact import Detector
from .atomic import atomic_open, write_bytes, write_json
from .data import VIDEO_EXTENSIONS, list_images
from .decode import to_channels
from .preprocess import tiles

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
    "face_crop_box",
    "detect_faces",
    "FrameScorer",
    "video_stats",
    "analyze_video",
    "analyze_videos",
    "plot_timeline",
    "draw_frame",
]

VIDEO_AGGREGATES = ("topk_mean", "mean", "max", "flagged_fraction")
#: Largest frame accepted (pixels): 4096 x 4096 covers 4K/DCI 4K; 8K is refused (see docs/video.md).
DEFAULT_MAX_PIXELS = 4096 * 4096
#: Header frame counts outside (0, this] are treated as unknown (FFmpeg reports -2^63 for "unknown").
_MAX_SANE_COUNT = 1_000_000_000
FRAME_COLUMNS = ("video", "frame", "time_s", "kind", "region", "score", "label", "note")
VIDEO_COLUMNS = ("video", "status", "verdict", "score", "aggregation", "threshold", "verdict_threshold", "mean",
                 "max", "topk_mean", "topk", "flagged_fraction", "n_frames", "n_no_face", "n_decoded",
                 "frame_count_header", "fps", "width", "height", "duration_s", "sampling", "error", "id")


class VideoError(Exception):
    """A video that cannot be scored. ``str(e)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"{self.path}: {reason}")


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


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (the frame count may be missing or wrong)."""

    path: str
    fps: float | None
    frame_count: int | None   # from the header; None when unknown
    width: int
    height: int
    codec: str


@dataclass
class Frame:
    index: int
    time: float               # seconds from the start
    image: np.ndarray         # (H, W, 3) uint8 BGR, as OpenCV decodes it


def list_videos(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Video files under ``paths`` (recursively, by extension); explicitly named files are kept."""
    return list_images(paths, VIDEO_EXTENSIONS)


def _open(path: str | os.PathLike, timeout_ms: int = 10_000):
    import cv2

    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise VideoError(p, "dangling symbolic link" if os.path.islink(p) else "file not found") from None
    except OSError as e:
        raise VideoError(p, f"cannot access the file ({e.strerror or e})") from None
    if p.is_dir():
        raise VideoError(p, "is a directory, not a video file")
    if st.st_size == 0:
        raise VideoError(p, "empty file (0 bytes)")
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise VideoError(p, f"cannot read the file ({e.strerror or e})") from None
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(min(level, log.LOG_LEVEL_ERROR))  # OpenCV's "can't capture by name" warning: the row says it
    try:
        cap = cv2.VideoCapture(os.fspath(p), cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms])
    finally:
        log.setLogLevel(level)
    if not cap.isOpened():
        cap.release()
        kind = "a text file" if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "not a video"
        raise VideoError(p, f"{kind}: OpenCV/FFmpeg cannot open it as a video (unknown container or codec)")
    return cap


def _info(cap, path: str | os.PathLike) -> VideoInfo:
    import cv2

    fps = cap.get(cv2.CAP_PROP_FPS)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    code = int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    codec = "".join(chr(c) if 32 <= c < 127 else "?" for c in code.to_bytes(4, "little")).strip()
    return VideoInfo(
        path=os.fspath(path),
        fps=float(fps) if math.isfinite(fps) and 0 < fps < 10_000 else None,
        frame_count=int(count) if math.isfinite(count) and 0 <= count <= _MAX_SANE_COUNT else None,
        width=w, height=h, codec=codec)


def _too_big(w: int, h: int, max_pixels: int) -> str:
    return (f"frame size {w}x{h} ({w * h:,} pixels) is above the limit of {max_pixels:,} pixels (--max-pixels); "
            "downscale the video first (e.g. ffmpeg -i IN -vf scale=-2:2160 OUT)")


def probe(path: str | os.PathLike, timeout_ms: int = 10_000) -> VideoInfo:
    """Open ``path`` and read its header; raise :class:`VideoError` if it is not a readable video."""
    cap = _open(path, timeout_ms)
    try:
        return _info(cap, path)
    finally:
        cap.release()


def count_frames(path: str | os.PathLike, timeout_ms: int = 10_000, deadline: float | None = None) -> int:
    """Count the frames that actually decode (one ``grab()`` pass; the header count may lie)."""
    cap = _open(path, timeout_ms)
    n = 0
    try:
        while cap.grab():
            n += 1
            if deadline is not None and n % 64 == 0 and time.monotonic() > deadline:
                raise VideoError(path, f"time limit reached while counting frames ({n} so far)")
    finally:
        cap.release()
    return n


def sample_indices(n: int, k: int) -> list[int]:
    """``k`` frame indices spread uniformly over ``n`` frames (all of them when ``k >= n``)."""
    if n <= 0:
        return []
    if k >= n:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


@dataclass
class StreamStats:
    decoded: int = 0          # frames the stream delivered (sampled or not)
    sampled: int = 0


def stream_frames(path: str | os.PathLike, want: Callable[[int, float], bool], *, fps: float | None = None,
                  stop_after: int | None = None, stats: StreamStats | None = None, timeout_ms: int = 10_000,
                  deadline: float | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[Frame]:
    """Yield the frames for which ``want(index, time_s)`` is true, one at a time.

    Every frame is grabbed (so the count of decodable frames is exact), only wanted ones are
    converted to pixels. The timestamp is ``CAP_PROP_POS_MSEC`` when the container provides a
    usable one, else ``index / fps``. Stops after frame ``stop_after`` when given.
    """
    import cv2

    stats = stats if stats is not None else StreamStats()
    cap = _open(path, timeout_ms)
    try:
        last_t = -1.0
        i = 0
        while True:
            if stop_after is not None and i > stop_after:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise VideoError(path, f"time limit reached after {stats.decoded} decoded frames")
            if not cap.grab():
                break
            stats.decoded += 1
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = msec / 1000.0 if math.isfinite(msec) and msec >= 0 and (i == 0 or msec / 1000.0 > last_t) \
                else (i / fps if fps else float(i))
            if i > 0 and t <= last_t:
                t = i / fps if fps else float(i)
            last_t = t
            if want(i, t):
                ok, img = cap.retrieve()
                if not ok or img is None:
                    break
                if img.ndim == 2:
                    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
                elif img.shape[2] == 4:
                    img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
                h, w = img.shape[:2]
                if h * w > max_pixels:
                    raise VideoError(path, _too_big(w, h, max_pixels))
                stats.sampled += 1
                yield Frame(i, t, img)
            i += 1
    finally:
        cap.release()


# ------------------------------------------------------------------------------ scoring


@dataclass
class Region:
    kind: str                             # "face" | "tile" | "none"
    box: tuple[int, int, int, int] | None  # (y, x, h, w) in frame pixels
    score: float | None


@dataclass
class FrameResult:
    index: int
    time: float
    score: float | None                   # None: nothing to score (no face)
    regions: list[Region]
    heatmap: np.ndarray | None = None     # (rows, cols) tile scores (tiling mode)
    hot: tuple[int, int, int, int] | None = None  # the most suspicious region
    note: str = ""


def face_crop_box(x: int, y: int, w: int, h: int, frame_w: int, frame_h: int, margin: float = 1.3
                  ) -> tuple[int, int, int, int]:
    """A face box ``(x, y, w, h)`` -> the square crop ``(y, x, side, side)`` around its centre.

    ``side = round(margin * max(w, h))`` (FaceForensics++ uses 1.3), capped at the frame's shorter
    side; the square is shifted (not shrunk) to stay inside the frame.
    """
    side = int(round(max(w, h) * margin))
    side = max(1, min(side, frame_w, frame_h))
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    x0 = min(max(x0, 0), frame_w - side)
    y0 = min(max(y0, 0), frame_h - side)
    return (y0, x0, side, side)


_CASCADE = None


def _cascade():
    global _CASCADE
    if _CASCADE is None:
        import cv2

        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        c = cv2.CascadeClassifier(path)
        if c.empty():
            raise RuntimeError(f"cannot load OpenCV's face cascade from {path}")
        _CASCADE = c
    return _CASCADE


def detect_faces(bgr: np.ndarray, min_size: int = 24) -> list[tuple[int, int, int, int]]:
    """Haar-cascade face boxes ``(x, y, w, h)`` in a BGR frame, largest first."""
    import cv2

    gray = cv2.equalizeHist(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    found = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    boxes = [tuple(int(v) for v in b) for b in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def _to_tensor(bgr: np.ndarray, channels: int) -> torch.Tensor:
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float().div_(255.0)
    return to_channels(rgb, channels)  # (C, H, W)


class FrameScorer:
    """Turns a stream of :class:`Frame` into :class:`FrameResult` s, batching regions across frames."""

    def __init__(self, detector: Detector, config: VideoConfig) -> None:
        self.det, self.cfg = detector, config

    def _inputs(self, frame: Frame) -> tuple[torch.Tensor | None, list[tuple[int, int, int, int]], dict]:
        """Model inputs (N, C, S, S) for one frame, the box of each region, and bookkeeping."""
        spec = self.det.spec
        img = _to_tensor(frame.image, spec.channels)  # (C, H, W)
        _, h, w = img.shape
        if self.cfg.faces:
            boxes, parts, sizes = [], [], []
            for (fx, fy, fw, fh) in detect_faces(frame.image, self.cfg.min_face):
                y0, x0, s, _ = face_crop_box(fx, fy, fw, fh, w, h, self.cfg.margin)
                batch, _ = self.det.preprocess(img[:, y0:y0 + s, x0:x0 + s])  # the artifact's own policy
                boxes.append((y0, x0, s, s))
                parts.append(batch)
                sizes.append(len(batch))
            if not parts:
                return None, [], {"sizes": []}
            return torch.cat(parts), boxes, {"sizes": sizes}
        size = spec.input_size
        batch, corners = tiles(img, size, spec.channels)  # native resolution; small frames are resized up
        sy, sx = h / max(h, size), w / max(w, size)  # tiles() stretches each short side to `size`
        boxes = [(int(y * sy), int(x * sx), int(round(size * sy)), int(round(size * sx))) for y, x in corners]
        ys, xs = sorted({c[0] for c in corners}), sorted({c[1] for c in corners})
        return batch, boxes, {"corners": corners, "ys": ys, "xs": xs}

    def _finish(self, frame: Frame, boxes, meta, scores: torch.Tensor | None) -> FrameResult:
        if self.cfg.faces:
            if not boxes:
                return FrameResult(frame.index, frame.time, None, [Region("none", None, None)], note="no face detected")
            out, k = [], 0
            for box, n in zip(boxes, meta["sizes"]):
                out.append(Region("face", box, self.det.aggregate(scores[k:k + n])))
                k += n
            best = max(out, key=lambda r: r.score)
            return FrameResult(frame.index, frame.time, best.score, out, hot=best.box,
                               note=f"{len(out)} face(s)")
        ys, xs = meta["ys"], meta["xs"]
        values = scores.tolist()
        heat = np.zeros((len(ys), len(xs)), dtype=np.float32)
        yi, xi = {y: i for i, y in enumerate(ys)}, {x: i for i, x in enumerate(xs)}
        for (y, x), s in zip(meta["corners"], values):
            heat[yi[y], xi[x]] = s
        regions = [Region("tile", b, float(s)) for b, s in zip(boxes, values)]
        hot = int(torch.argmax(scores))
        return FrameResult(frame.index, frame.time, self.det.aggregate(scores), regions, heatmap=heat,
                           hot=boxes[hot])

    def score(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, FrameResult]]:
        """Score frames in order; regions of several frames share a forward pass (``batch_size``)."""
        pending: list[tuple[Frame, torch.Tensor | None, list, dict]] = []
        n_pending = 0

        def flush():
            parts = [p[1] for p in pending if p[1] is not None]
            # Detector.logits already feeds its (channels-last) inference network channels-last inputs
            scores = self.det.score_batch(torch.cat(parts)) if parts else torch.empty(0)
            k = 0
            for frame, x, boxes, meta in pending:
                n = 0 if x is None else len(x)
                yield frame, self._finish(frame, boxes, meta, scores[k:k + n] if n else None)
                k += n

        for frame in frames:
            x, boxes, meta = self._inputs(frame)
            pending.append((frame, x, boxes, meta))
            n_pending += 0 if x is None else len(x)
            if n_pending >= self.cfg.batch_size:
                yield from flush()
                pending, n_pending = [], 0
        if pending:
            yield from flush()


# ------------------------------------------------------------------------------ aggregation


def video_stats(scores: Sequence[float], threshold: float, config: VideoConfig) -> dict:
    """Per-video statistics of frame scores and the verdict under ``config.aggregate``."""
    s = np.asarray(list(scores), dtype=np.float64)
    n = len(s)
    if n == 0:
        return {"n_frames": 0}
    k = max(min(config.topk_min, n), math.ceil(config.topk_fraction * n))
    st = {"mean": float(s.mean()), "max": float(s.max()), "topk_mean": float(np.sort(s)[-k:].mean()), "topk": k,
          "flagged_fraction": float((s >= threshold).mean()), "n_frames": n}
    st["score"] = st[config.aggregate]
    st["verdict_threshold"] = config.flagged_min if config.aggregate == "flagged_fraction" else threshold
    st["verdict"] = "fake" if st["score"] >= st["verdict_threshold"] else "real"
    return st


@dataclass
class VideoResult:
    """One row of ``videos.csv``."""

    video: str
    id: str
    status: str = "ok"            # ok | warning (scored, but see error) | error (not scored)
    verdict: str = ""             # fake | real | no-face | "" (error)
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


# ------------------------------------------------------------------------------ pictures


def plot_timeline(times: Sequence[float], scores: Sequence[float], threshold: float, path: str | os.PathLike,
                  title: str = "", no_face_times: Sequence[float] = ()) -> None:
    """Score against time with the threshold line; flagged frames in red (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, s = np.asarray(times, float), np.asarray(scores, float)
    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    if len(t):
        ax.plot(t, s, "-", color="0.6", lw=1, zorder=1)
        flag = s >= threshold
        ax.scatter(t[~flag], s[~flag], s=14, color="tab:blue", label="real", zorder=2)
        ax.scatter(t[flag], s[flag], s=14, color="tab:red", label="flagged fake", zorder=3)
    if len(no_face_times):
        ax.scatter(no_face_times, np.zeros(len(no_face_times)) - 0.04, marker="|", color="0.3", s=40,
                   label="no face", zorder=2)
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set_ylim(-0.08, 1.3)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(fake)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7, ncol=4, framealpha=0.8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def draw_frame(bgr: np.ndarray, result: FrameResult, threshold: float, faces: bool, min_side: int = 240) -> np.ndarray:
    """A copy of the frame with face boxes (or the tile heatmap) and scores drawn on it.

    Frames smaller than ``min_side`` are enlarged (nearest neighbour, integer factor) so the text
    stays legible."""
    import cv2

    h, w = bgr.shape[:2]
    up = max(1, math.ceil(min_side / max(1, min(h, w))))
    img = cv2.resize(bgr, (w * up, h * up), interpolation=cv2.INTER_NEAREST) if up > 1 else bgr.copy()
    red, green = (0, 0, 255), (0, 200, 0)
    if not faces and result.heatmap is not None:
        heat = np.zeros((h * up, w * up), np.float32)
        for r in result.regions:  # paint each tile (overlaps keep the larger score)
            y, x, th, tw = (v * up for v in r.box)
            heat[y:y + th, x:x + tw] = np.maximum(heat[y:y + th, x:x + tw], r.score)
        colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
        img = cv2.addWeighted(img, 0.65, colour, 0.35, 0)
        if result.hot is not None and result.score is not None and result.score >= threshold:
            y, x, th, tw = (v * up for v in result.hot)
            cv2.rectangle(img, (x, y), (x + tw - 1, y + th - 1), red, 2)
    H, W = img.shape[:2]
    for r in result.regions:
        if r.kind == "face":
            y, x, s, _ = (v * up for v in r.box)
            c = red if r.score >= threshold else green
            cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), c, max(1, s // 80))
            cv2.putText(img, f"{r.score:.2f}", (x + 2, max(12, y - 4) if y > 14 else y + 14),
                        cv2.FONT_HERSHEY_SIMPLEX, max(0.4, s / 300), c, 1, cv2.LINE_AA)
    text = "no face" if result.score is None else (
        f"{'FAKE' if result.score >= threshold else 'real'} {result.score:.2f}")
    scale = max(0.4, min(H, W) / 500)
    org = (4, int(16 * scale / 0.4))
    label = f"#{result.index} {result.time:.2f}s {text}"
    cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


# ------------------------------------------------------------------------------ one video


def _safe_id(i: int, path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem.encode("ascii", "replace").decode())[:60].strip("._")
    return f"{i:03d}-{stem or 'video'}"


class _Sinks:
    """Per-video outputs that are only committed once the video finished (discarded on a retry)."""

    def __init__(self, out_dir: Path | None, vid: str, name: str, detector: Detector, config: VideoConfig,
                 out_fps: float) -> None:
        self.out_dir, self.vid, self.name, self.cfg, self.det = out_dir, vid, name, config, detector
        self.rows = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")
        self.writer = csv.writer(self.rows)
        self.heat = None if (out_dir is None or config.faces) else tempfile.TemporaryFile("w+b")
        self.heat_shape: tuple[int, int] | None = None
        self.heat_frames: list[int] = []
        self.heat_n = 0
        self.times: list[float] = []
        self.scores: list[float] = []
        self.no_face_times: list[float] = []
        self.n_no_face = 0
        self.peak: tuple[float, Frame, FrameResult] | None = None  # drawn once, at commit
        self.video_writer = None
        self.video_tmp: Path | None = None
        self.out_fps = out_fps

    def add(self, frame: Frame, res: FrameResult) -> None:
        thr = self.det.spec.threshold
        t = f"{res.time:.4f}"
        if res.score is None:
            self.n_no_face += 1
            self.no_face_times.append(res.time)
            self.writer.writerow([self.name, res.index, t, "none", "", "", "", res.note])
        else:
            self.times.append(res.time)
            self.scores.append(res.score)
            if self.cfg.faces:
                for r in res.regions:
                    self.writer.writerow([self.name, res.index, t, "face", ",".join(map(str, r.box)),
                                          f"{r.score:.6f}", self.det.label(r.score), res.note])
            elif self.cfg.all_tiles:
                for r in res.regions:
                    self.writer.writerow([self.name, res.index, t, "tile", ",".join(map(str, r.box)),
                                          f"{r.score:.6f}", self.det.label(r.score), ""])
            else:
                self.writer.writerow([self.name, res.index, t, "frame", ",".join(map(str, res.hot)),
                                      f"{res.score:.6f}", self.det.label(res.score),
                                      f"{len(res.regions)} tiles; region = hottest tile"])
        if self.heat is not None and res.heatmap is not None:
            if self.heat_shape is None:
                self.heat_shape = res.heatmap.shape
            if res.heatmap.shape == self.heat_shape:  # a stream whose size changes keeps its first grid
                self.heat.write(res.heatmap.astype("<f4").tobytes())
                self.heat_frames.append(res.index)
                self.heat_n += 1
        if self.out_dir is None:
            return
        if res.score is not None and (self.peak is None or res.score > self.peak[0]):
            self.peak = (res.score, frame, res)
        if self.cfg.annotate:
            self._write_video(draw_frame(frame.image, res, thr, self.cfg.faces))

    def _write_video(self, img: np.ndarray) -> None:
        import cv2

        if self.video_writer is None:
            d = self.out_dir / "annotated"
            d.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.vid}.", suffix=".avi", dir=d)
            os.close(fd)
            self.video_tmp = Path(tmp)
            self.video_size = (img.shape[1], img.shape[0])
            self.video_writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"MJPG"), self.out_fps, self.video_size)
        if (img.shape[1], img.shape[0]) != self.video_size:
            img = cv2.resize(img, self.video_size)
        self.video_writer.write(img)

    def discard(self) -> None:
        self.rows.close()
        if self.heat is not None:
            self.heat.close()
        if self.video_writer is not None:
            self.video_writer.release()
            with contextlib.suppress(FileNotFoundError):
                self.video_tmp.unlink()
            self.video_writer = None

    def commit(self, frames_out, result: VideoResult) -> None:
        """Append the rows to frames.csv and write heatmaps, timeline, peak frame and annotated video."""
        self.rows.seek(0)
        for chunk in iter(lambda: self.rows.read(1 << 16), ""):
            frames_out.write(chunk)
        self.rows.close()
        if self.out_dir is None:
            return
        thr = self.det.spec.threshold
        if self.heat is not None and self.heat_n:
            hd = self.out_dir / "heatmaps"
            header = {"descr": "<f4", "fortran_order": False, "shape": (self.heat_n, *self.heat_shape)}
            with atomic_open(hd / f"{self.vid}.npy", "wb") as f:
                np.lib.format.write_array_header_1_0(f, header)
                self.heat.seek(0)
                for chunk in iter(lambda: self.heat.read(1 << 20), b""):
                    f.write(chunk)
            write_json(hd / f"{self.vid}.json", {"video": self.name, "frames": self.heat_frames,
                                                 "tile_size": self.det.spec.input_size,
                                                 "shape": list(self.heat_shape)})
            result.outputs["heatmaps"] = str(hd / f"{self.vid}.npy")
        if self.heat is not None:
            self.heat.close()
        if self.scores or self.no_face_times:
            p = self.out_dir / "timelines" / f"{self.vid}.png"
            title = (f"{self.name}  verdict: {result.verdict} ({result.aggregation} "
                     f"{result.score:.3f})" if result.score is not None else f"{self.name}  verdict: {result.verdict}")
            plot_timeline(self.times, self.scores, thr, p, title=title, no_face_times=self.no_face_times)
            result.outputs["timeline"] = str(p)
        if self.peak is not None:
            import cv2

            _, frame, res = self.peak
            ok, png = cv2.imencode(".png", draw_frame(frame.image, res, thr, self.cfg.faces))
            if ok:
                p = self.out_dir / "peaks" / f"{self.vid}.png"
                write_bytes(p, png.tobytes())
                result.outputs["peak"] = str(p)
        if self.video_writer is not None:
            self.video_writer.release()
            self.video_writer = None
            dest = self.out_dir / "annotated" / f"{self.vid}.avi"
            os.replace(self.video_tmp, dest)  # written beside its destination, renamed when complete
            result.outputs["annotated"] = str(dest)


def _progress(config: VideoConfig, total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc[:40], unit="frame", leave=False, disable=not config.progress,
                dynamic_ncols=True)


def _fail(res: VideoResult, reason: str) -> None:
    res.status, res.error, res.verdict, res.n_frames, res.outputs = "error", reason, "", 0, {}
    for key in ("score", "mean", "max", "topk_mean", "topk", "flagged_fraction", "verdict_threshold"):
        setattr(res, key, None)


def analyze_video(path: str | os.PathLike, detector: Detector, config: VideoConfig = VideoConfig(),
                  out_dir: str | os.PathLike | None = None, frames_out=None, vid: str | None = None) -> VideoResult:
    """Score one video; never raises for bad input: problems go into the result's status and error.

    ``frames_out`` (a text file) receives the video's ``frames.csv`` rows (no header) once it is done;
    ``out_dir`` receives its timeline, heatmaps, peak frame and annotated video.
    """
    import cv2

    config = config.validate()
    path = Path(path)
    vid = vid or _safe_id(0, path)
    out = None if out_dir is None else Path(out_dir)
    res = VideoResult(video=os.fspath(path), id=vid, aggregation=config.aggregate,
                      threshold=detector.spec.threshold, sampling=config.sampling)
    deadline = None if config.time_limit is None else time.monotonic() + config.time_limit
    sinks = None
    try:
        info = probe(path, config.open_timeout_ms)
        res.fps, res.width, res.height, res.frame_count_header = info.fps, info.width, info.height, info.frame_count
        if info.width * info.height > config.max_pixels:
            raise VideoError(path, _too_big(info.width, info.height, config.max_pixels))
        counted = None
        if info.frame_count == 0:
            # FFmpeg reports 0 for a container with no frames; make sure before calling it empty
            counted = count_frames(path, config.open_timeout_ms, deadline)
            if counted == 0:
                raise VideoError(path, "video has zero frames")
            info = VideoInfo(info.path, info.fps, None, info.width, info.height, info.codec)
        notes: list[str] = []
        warn = False
        count = info.frame_count
        k = (config.frames or VideoConfig.DEFAULT_FRAMES) if config.every is None and config.fps is None else None
        if k is not None and count is None:
            count = counted if counted is not None else count_frames(path, config.open_timeout_ms, deadline)
            notes.append(f"frame count not in the header; counted {count} frames in a first pass")
            if count == 0:
                raise VideoError(path, "no decodable frames (corrupt video or zero frames)")
        scorer = FrameScorer(detector, config)
        for attempt in range(2):
            stats = StreamStats()
            if config.every is not None:
                want = lambda i, t, e=config.every: i % e == 0  # noqa: E731
                total = None if count is None else math.ceil(count / config.every)
                out_fps = (info.fps or 25.0) / config.every
            elif config.fps is not None:
                step, nxt = 1.0 / config.fps, [0.0]

                def want(i, t, step=step, nxt=nxt):
                    if t + 1e-9 >= nxt[0]:
                        nxt[0] = (math.floor(t / step + 1e-9) + 1) * step
                        return True
                    return False
                total = None if count is None or not info.fps else math.ceil(count / info.fps * config.fps)
                out_fps = config.fps
            else:
                plan = set(sample_indices(count, k))
                want = lambda i, t, plan=plan: i in plan  # noqa: E731
                total = len(plan)  # read on to the end: the true frame count is checked
                dur = count / info.fps if info.fps else None
                out_fps = len(plan) / dur if dur else 2.0
            sinks = _Sinks(out, vid, os.fspath(path), detector, config, min(30.0, max(1.0, out_fps)))
            bar = _progress(config, total, path.name)
            try:
                frames = stream_frames(path, want, fps=info.fps, stats=stats,
                                       timeout_ms=config.open_timeout_ms, deadline=deadline,
                                       max_pixels=config.max_pixels)
                for frame, fr in scorer.score(frames):
                    sinks.add(frame, fr)
                    bar.update(1)
            finally:
                bar.close()
            res.n_decoded = stats.decoded
            if stats.decoded == 0:
                hc = info.frame_count
                raise VideoError(path, f"corrupt video: the header announces {hc} frames but none could be decoded"
                                 if hc else "no decodable frames (corrupt video or zero frames)")
            if count is not None and stats.decoded != count:
                warn = True
                msg = (f"frame count mismatch: the header says {count} frames but {stats.decoded} decoded "
                       f"({'truncated file or wrong header' if stats.decoded < count else 'wrong header'})")
                if k is not None and attempt == 0 and sample_indices(count, k) != sample_indices(stats.decoded, k):
                    notes.append(msg + f"; resampled {min(k, stats.decoded)} frames over the {stats.decoded} decoded")
                    count = stats.decoded
                    sinks.discard()
                    continue
                notes.append(msg)
            break
        st = video_stats(sinks.scores, detector.spec.threshold, config)
        res.n_frames, res.n_no_face = st["n_frames"], sinks.n_no_face
        if res.n_frames:
            for key in ("score", "mean", "max", "topk_mean", "topk", "flagged_fraction", "verdict",
                        "verdict_threshold"):
                setattr(res, key, st[key])
        elif config.faces:
            res.verdict = "no-face"
            notes.append(f"no face detected in any of the {res.n_no_face} sampled frames")
        if info.fps:
            res.duration_s = res.n_decoded / info.fps
        res.status = "warning" if warn else "ok"
        res.error = "; ".join(notes)
        sinks.commit(frames_out if frames_out is not None else io.StringIO(), res)
        sinks = None
    except VideoError as e:
        _fail(res, e.reason)
    except (MemoryError, OSError, RuntimeError, ValueError, cv2.error) as e:  # the batch goes on; this video is reported
        _fail(res, f"{type(e).__name__}: {e}")
    finally:
        if sinks is not None:
            sinks.discard()
    return res


# ------------------------------------------------------------------------------ many videos


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
            r = analyze_video(f, detector, config, out, frames_out, vid=_safe_id(i, f))
            results.append(r)
            if on_result is not None:
                on_result(r)
    with atomic_open(out / "videos.csv", "w") as vf:
        w = csv.DictWriter(vf, fieldnames=VIDEO_COLUMNS)
        w.writeheader()
        for r in results:
            w.writerow(r.row())
    return results
