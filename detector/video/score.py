"""Scoring frames: what is scored in a frame, through the one scoring engine (:mod:`detector.scoring`).

* ``faces=True``: each face found by :func:`detector.video.faces.detect_faces` is cropped
  (:func:`~detector.video.faces.face_crop_box`) and scored through the artifact's own
  preprocessing; a frame's score is its most suspicious face; a frame without a face gets a result
  saying so and no score.
* otherwise the frame is cut into tiles at the detector's input size (native resolution, no
  resampling, whatever the artifact's policy), every tile is scored, the frame score is the
  artifact's tile aggregate and the grid of tile scores is the frame's heatmap.

Regions of several frames share forward passes (``VideoConfig.batch_size`` model inputs each).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from ..artifact import Detector
from ..domain import ImageStats
from ..scoring import ImageScore, Scorer
from . import faces as faces_
from .config import VideoConfig
from .read import Frame, bgr_to_tensor

__all__ = ["Region", "FrameResult", "FrameScorer"]


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
    threshold: float | None = None        # the frame score's own threshold (its aggregate's)
    in_domain: bool | None = None         # None: no domain model (or nothing scored)
    domain_score: float | None = None     # > 1: unlike the detector's training reals

    def label(self, out_of_domain: str = "flag") -> str:
        """fake | real | out_of_domain, as :meth:`detector.scoring.ImageScore.label`."""
        if self.in_domain is False and out_of_domain != "score":
            return "out_of_domain"
        return "fake" if self.score >= self.threshold else "real"


class FrameScorer:
    """Turns a stream of :class:`Frame` into :class:`FrameResult` s, batching regions across frames."""

    def __init__(self, detector: Detector, config: VideoConfig) -> None:
        self.det, self.cfg = detector, config
        # faces: each crop under the artifact's own policy; tiles: native tiles whatever the policy says
        self.engine = Scorer(detector, config.batch_size, policy=None if config.faces else "tile")

    def _regions(self, frame: Frame) -> tuple[list[torch.Tensor], list[tuple[int, int, int, int]]]:
        """The images to score in one frame (face crops, or the whole frame to tile) and the face boxes."""
        channels = self.det.spec.channels
        if not self.cfg.faces:  # the stats of the colour frame: the domain check sees what grey conversion hides
            return [(bgr_to_tensor(frame.image, channels), ImageStats.of(frame.image))], []  # (C, H, W)
        h, w = frame.image.shape[:2]
        crops, boxes = [], []
        for (fx, fy, fw, fh) in faces_.detect_faces(frame.image, self.cfg.min_face):
            y0, x0, s, _ = faces_.face_crop_box(fx, fy, fw, fh, w, h, self.cfg.margin)
            crop = frame.image[y0:y0 + s, x0:x0 + s]
            crops.append((bgr_to_tensor(crop, channels), ImageStats.of(crop)))  # only the crop is converted
            boxes.append((y0, x0, s, s))
        return crops, boxes

    def _faces(self, frame: Frame, boxes, scored: list[ImageScore]) -> FrameResult:
        if not boxes:
            return FrameResult(frame.index, frame.time, None, [Region("none", None, None)], note="no face detected")
        out = [Region("face", box, r.score) for box, r in zip(boxes, scored)]
        best = max(out, key=lambda r: r.score)
        doms = [r.domain_score for r in scored if r.domain_score is not None]
        dom = float(np.median(doms)) if doms else None
        return FrameResult(frame.index, frame.time, best.score, out, hot=best.box, note=f"{len(out)} face(s)",
                           threshold=self.det.threshold_for(len(out), "max"),
                           in_domain=None if dom is None else dom <= 1.0, domain_score=dom)

    def _tiles(self, frame: Frame, r: ImageScore) -> FrameResult:
        h, w = frame.image.shape[:2]
        size = self.det.spec.input_size
        sy, sx = h / max(h, size), w / max(w, size)  # tiles() stretches each short side to `size`
        boxes = [(int(y * sy), int(x * sx), int(round(size * sy)), int(round(size * sx))) for y, x in r.corners]
        ys, xs = sorted({c[0] for c in r.corners}), sorted({c[1] for c in r.corners})
        values = r.tile_scores.tolist()
        heat = np.zeros((len(ys), len(xs)), dtype=np.float32)
        yi, xi = {y: i for i, y in enumerate(ys)}, {x: i for i, x in enumerate(xs)}
        for (y, x), s in zip(r.corners, values):
            heat[yi[y], xi[x]] = s
        regions = [Region("tile", b, float(s)) for b, s in zip(boxes, values)]
        hot = int(torch.argmax(r.tile_scores))
        return FrameResult(frame.index, frame.time, r.score, regions, heatmap=heat, hot=boxes[hot],
                           threshold=r.threshold, in_domain=r.in_domain, domain_score=r.domain_score)

    def score(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, FrameResult]]:
        """Score frames in order; each frame is yielded once all its regions are scored."""
        pending: deque = deque()  # [frame, boxes, n regions, scored regions]

        def images():
            for frame in frames:
                crops, boxes = self._regions(frame)
                pending.append((frame, boxes, len(crops), []))
                yield from crops

        def ready():
            while pending and len(pending[0][3]) == pending[0][2]:
                frame, boxes, _, scored = pending.popleft()
                yield frame, (self._faces(frame, boxes, scored) if self.cfg.faces else self._tiles(frame, scored[0]))

        for r in self.engine.score_images(images()):
            yield from ready()  # frames without a region, queued before this one
            pending[0][3].append(r)
            yield from ready()
        yield from ready()
