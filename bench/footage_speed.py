"""Real footage: ``unmask video --fps 2`` (tiles, and ``--faces``) vs decoding the same frames.

    PYTHONPATH=$PWD python -m bench --only footage_speed

Clips are re-encoded with Debian's ffmpeg from OpenCV's real sample footage (opencv-doc:
``vtest.avi``, pedestrians, 768x576 @ 10 fps; ``Megamind.avi``, an animated film trailer with
faces, 720x528 @ 23.976 fps), scaled with their aspect kept and pillarboxed to 720p / 1080p, into
a cache folder outside the repository (``$UNMASK_BENCH_CACHE`` or ``~/.cache/unmask/bench``):

* ``vtest_720p_h264``     1280x720, H.264 (libx264 veryfast, CRF 20), 25 fps, first 20 s
* ``megamind_720p_h264``  1280x720, H.264, 23.976 fps, 11.3 s
* ``megamind_1080p_h264`` 1920x1080, H.264
* ``megamind_1080p_hevc`` 1920x1080, HEVC (libx265 ultrafast, CRF 24)

Decoding baseline ("the same frames"): OpenCV/FFmpeg ``grab()`` of every frame (an inter-coded
stream must decode them all) and ``retrieve()`` (conversion to BGR) of every round(fps/2)-th one,
about the frames the pipeline samples, nothing else. Pipeline: :func:`detector.video.analyze_video`
at ``--fps 2`` (what ``unmask video --fps 2`` runs, minus process start-up), one torch thread, the
default 28-px ``dcgan_d`` (width 64): tiles (every 28-px tile of the frame, ``tile`` policy) or
``--faces`` (Haar search, each face crop through the artifact's ``resize`` policy). Targets: video
seconds/s of the pipeline >= 0.7 x the baseline's, and >= 1 (real time) on this machine.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import cache_dir, pin_threads, stand_in

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
CLIPS = {  # name: (source, height, codec, extra ffmpeg input options, filters before scaling)
    "vtest_720p_h264": ("vtest.avi", 720, "h264", ["-t", "20"], "fps=25,"),
    "megamind_720p_h264": ("Megamind.avi", 720, "h264", [], ""),
    "megamind_1080p_h264": ("Megamind.avi", 1080, "h264", [], ""),
    "megamind_1080p_hevc": ("Megamind.avi", 1080, "hevc", [], ""),
}
_CODEC = {"h264": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20"],
          "hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-crf", "24", "-x265-params", "log-level=error",
                   "-tag:v", "hvc1"]}

__all__ = ["CLIPS", "make_clip", "decode_same_frames", "run"]


def make_clip(out: Path, source: Path, height: int, codec: str, pre: list[str], filters: str,
              seconds: float | None = None) -> Path:
    """Re-encode ``source`` to ``out`` (kept if present): aspect kept, pillarboxed to 16:9."""
    if out.exists():
        return out
    width = height * 16 // 9
    vf = f"{filters}scale=-2:{height},pad={width}:{height}:(ow-iw)/2:0,format=yuv420p"
    tmp = out.with_suffix(".part" + out.suffix)
    cmd = ["ffmpeg", "-v", "error", "-y", *pre, *(["-t", str(seconds)] if seconds else []), "-i", str(source),
           "-vf", vf, *_CODEC[codec], "-an", str(tmp)]
    subprocess.run(cmd, check=True, timeout=900)
    tmp.rename(out)
    return out


def _fallback_clip(out: Path, source: Path, height: int, frames: int) -> Path:
    """Without ffmpeg (a smoke run only): OpenCV's own MPEG-4 Part 2 writer."""
    import cv2

    cap = cv2.VideoCapture(str(source))
    width = height * 16 // 9
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (width, height))
    for _ in range(frames):
        ok, img = cap.read()
        if not ok:
            break
        vw.write(cv2.resize(img, (width, height)))
    vw.release()
    cap.release()
    return out


def decode_same_frames(path: Path, fps: float = 2.0) -> tuple[float, int, int, float]:
    """Grab every frame, retrieve every round(video fps / ``fps``)-th: (seconds, decoded, retrieved, duration_s)."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    vfps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(vfps / fps))
    n = kept = 0
    t0 = time.perf_counter()
    while cap.grab():
        if n % step == 0:
            ok, _ = cap.retrieve()
            kept += ok
        n += 1
    dt = time.perf_counter() - t0
    cap.release()
    return dt, n, kept, n / vfps


def _pipeline(path: Path, det, faces: bool, fps: float = 2.0) -> tuple[float, int, int]:
    """(seconds, frames scored, frames with a face) for ``analyze_video`` at ``--fps``."""
    from detector.video import VideoConfig, analyze_video

    cfg = VideoConfig(fps=fps, faces=faces, progress=False)
    t0 = time.perf_counter()
    r = analyze_video(path, det, cfg, frames_out=io.StringIO())
    dt = time.perf_counter() - t0
    assert r.status in ("ok", "warning"), r.error
    return dt, r.n_frames if not faces else r.n_frames + r.n_no_face, r.n_frames if faces else 0


def _clips(root: Path, tiny: bool) -> dict[str, tuple[Path, str]]:
    have_ffmpeg = shutil.which("ffmpeg") is not None
    out = {}
    for name, (src, height, codec, pre, filters) in CLIPS.items():
        if tiny and name not in ("megamind_720p_h264", "megamind_1080p_hevc"):
            continue
        h = 240 if tiny else height
        if have_ffmpeg:
            p = make_clip(root / f"{name}.mp4", DATA / src, h, codec, pre, filters, seconds=2 if tiny else None)
            out[name] = (p, codec)
        else:
            out[name] = (_fallback_clip(root / f"{name}.mp4", DATA / src, h, 30), "mp4v (no ffmpeg)")
    return out


def run(tiny: bool = False) -> dict:
    """Headline ``ratio``: the worst pipeline / baseline ratio over every clip, tiles and faces."""
    pin_threads(1)
    dets = {"tiles": stand_in("tile", width=64, norm="batch"), "faces": stand_in("resize", width=64, norm="batch")}
    res: dict = {"fps": 2.0, "ffmpeg": shutil.which("ffmpeg") is not None, "torch_threads": 1}
    ratios, realtime = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) if tiny else cache_dir("footage-v1")
        t_gen = time.perf_counter()
        clips = _clips(root, tiny)
        res["generate_seconds"] = time.perf_counter() - t_gen
        for name, (path, codec) in clips.items():
            decode_same_frames(path)  # warm: page cache, decoder libraries
            t_dec, n, kept, dur = decode_same_frames(path)
            res[f"{name}_codec"], res[f"{name}_frames"], res[f"{name}_seconds_of_video"] = codec, n, dur
            res[f"{name}_decode_video_s_per_s"] = dur / t_dec
            for mode, det in dets.items():
                t, scored, with_face = _pipeline(path, det, mode == "faces")
                res[f"{name}_{mode}_video_s_per_s"] = dur / t
                res[f"{name}_{mode}_ratio"] = t_dec / t
                res[f"{name}_{mode}_frames_sampled"] = scored
                if mode == "faces":
                    res[f"{name}_faces_frames_with_face"] = with_face
                ratios.append(t_dec / t)
                realtime.append(dur / t)
    res["ratio"] = min(ratios)
    res["realtime_min"] = min(realtime)
    return res


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=1))
