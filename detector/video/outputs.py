"""Per-video outputs: ``frames.csv`` rows, tile heatmaps (``.npy``), the timeline, the peak frame and the
annotated video. Everything of one video is staged in temporary files and only committed once the
video finished, so a retried or failed video leaves nothing half-written.
"""
from __future__ import annotations

import contextlib
import csv
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from ..artifact import Detector
from ..atomic import atomic_open, write_bytes, write_json
from .aggregate import VideoResult
from .config import VideoConfig
from .read import Frame
from .render import draw_frame, plot_timeline
from .score import FrameResult

__all__ = ["FRAME_COLUMNS", "safe_id", "Sinks"]

FRAME_COLUMNS = ("video", "frame", "time_s", "kind", "region", "score", "label", "note", "threshold", "in_domain",
                 "domain_score")


def safe_id(i: int, path: Path) -> str:
    """Output-file stem of the ``i``-th video: its index and a sanitised ASCII stem of its path."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem.encode("ascii", "replace").decode())[:60].strip("._")
    return f"{i:03d}-{stem or 'video'}"


class Sinks:
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
        self.domain_scores: list[float] = []  # per scored frame, when the detector has a domain model
        self.n_regions: list[int] = []        # regions (tiles or faces) per scored frame
        self.n_skipped = 0                    # frames outside the domain left out (--out-of-domain skip)
        self.frame_threshold: float | None = None
        self.no_face_times: list[float] = []
        self.n_no_face = 0
        self.peak: tuple[float, Frame, FrameResult] | None = None  # drawn once, at commit
        self.video_writer = None
        self.video_tmp: Path | None = None
        self.out_fps = out_fps

    def add(self, frame: Frame, res: FrameResult) -> None:
        thr = res.threshold if res.threshold is not None else self.det.spec.threshold
        t = f"{res.time:.4f}"
        skip = self.cfg.out_of_domain == "skip" and res.in_domain is False  # row kept, verdict left alone
        if res.score is None:
            self.n_no_face += 1
            self.no_face_times.append(res.time)
            self.writer.writerow([self.name, res.index, t, "none", "", "", "", res.note, "", "", ""])
        else:
            if skip:
                self.n_skipped += 1
            else:
                self.times.append(res.time)
                self.scores.append(res.score)
                self.n_regions.append(len(res.regions))
            self.frame_threshold = thr
            dom = ["" if res.in_domain is None else res.in_domain,
                   "" if res.domain_score is None else f"{res.domain_score:.4f}"]
            if res.domain_score is not None:
                self.domain_scores.append(res.domain_score)
            one = f"{self.det.spec.threshold:.6f}"  # a single region's threshold
            if self.cfg.faces:
                for r in res.regions:
                    self.writer.writerow([self.name, res.index, t, "face", ",".join(map(str, r.box)),
                                          f"{r.score:.6f}", self.det.label(r.score), res.note, one, *dom])
            elif self.cfg.all_tiles:
                for r in res.regions:
                    self.writer.writerow([self.name, res.index, t, "tile", ",".join(map(str, r.box)),
                                          f"{r.score:.6f}", self.det.label(r.score), "", one, *dom])
            else:
                self.writer.writerow([self.name, res.index, t, "frame", ",".join(map(str, res.hot)),
                                      f"{res.score:.6f}", res.label(self.cfg.out_of_domain),
                                      f"{len(res.regions)} tiles; region = hottest tile", f"{thr:.6f}", *dom])
        if self.heat is not None and res.heatmap is not None:
            if self.heat_shape is None:
                self.heat_shape = res.heatmap.shape
            if res.heatmap.shape == self.heat_shape:  # a stream whose size changes keeps its first grid
                self.heat.write(res.heatmap.astype("<f4").tobytes())
                self.heat_frames.append(res.index)
                self.heat_n += 1
        if self.out_dir is None:
            return
        if res.score is not None and not skip and (self.peak is None or res.score > self.peak[0]):
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
        thr = self.frame_threshold if self.frame_threshold is not None else self.det.spec.threshold
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
