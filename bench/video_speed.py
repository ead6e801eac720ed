"""Video throughput: frames/s through ``unmask video`` vs frames/s merely decoded, same file, same run.

    PYTHONPATH=$PWD python bench/video_speed.py --detector runs/det [--size 224] [--frames 300]

Without ``--detector`` a small untrained ``dcgan_d`` (width 64, 28 px input, tile policy) stands in:
speed does not depend on the weights. Frames/s "scored" counts video frames that went through the
whole pipeline (decode, sample, tile, score, write rows) per wall-clock second; the target is a
ratio of at least 0.7 to plain decoding. Notes and numbers: bench/video_speed.md.
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import torch

from bench.common import mosaic, stand_in_detector

__all__ = ["make_video", "decode_fps", "measure", "run"]


def make_video(path: Path, frames: int, size: int, fps: float = 25.0) -> Path:
    """An MJPG .avi of ``frames`` frames ``size x size`` made of real embedded Fashion-MNIST tiles."""
    import cv2

    from detector.data import load_fashion_mnist

    imgs = load_fashion_mnist("test", variant="embedded").images
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    for i in range(frames):
        vw.write(cv2.cvtColor(mosaic(imgs, i, size), cv2.COLOR_GRAY2BGR))
    vw.release()
    return path


def decode_fps(path: Path) -> tuple[int, float]:
    """Decode every frame (``read()``: decode + convert to BGR) and nothing else."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n, t0 = 0, time.perf_counter()
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    dt = time.perf_counter() - t0
    cap.release()
    return n, n / dt



def measure(detector_dir: str | Path | None = None, frames: int = 200, size: int = 224, every: int | None = 1,
            sample: int | None = None, batch_size: int = 256, workdir: str | Path | None = None) -> dict:
    """Write a ``size x size`` test video of ``frames`` frames and time decoding vs the full pipeline
    (sampling every ``every``-th frame, or ``sample`` frames spread uniformly)."""
    from detector.artifact import load
    from detector.video import VideoConfig, analyze_video

    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(workdir) if workdir is not None else Path(tmp)
        path = make_video(wd / f"bench_{size}.avi", frames, size)
        det = load(detector_dir if detector_dir is not None else stand_in_detector(wd, width=64))
        n, dfps = decode_fps(path)
        cfg = VideoConfig(every=None if sample else every, frames=sample, batch_size=batch_size, progress=False)
        t0 = time.perf_counter()
        r = analyze_video(path, det, cfg, frames_out=io.StringIO())
        dt = time.perf_counter() - t0
        assert r.status == "ok", r.error
        sfps = r.n_decoded / dt  # video frames through the pipeline per second
        tiles = (-(-size // det.spec.input_size)) ** 2
        return {"frames": n, "size": size, "sampling": cfg.sampling, "tiles_per_frame": tiles,
                "decode_fps": dfps, "score_fps": sfps, "scored_frames_per_s": r.n_frames / dt,
                "ratio": sfps / dfps}


def run(tiny: bool = False) -> dict:
    """``python -m bench`` entry. Headline ``ratio``: every frame scored (112 px MJPG, 400 frames,
    one torch thread), the issue's definition. Also reported, same size: ``--every 25``,
    ``--every 100`` and ``--frames 32`` sampling (``ratio_every25`` ...), and 224 px every frame."""
    torch.set_num_threads(1)
    frames, size = (8, 56) if tiny else (400, 112)
    head = measure(None, frames, size, every=1)
    out = {"frames": head["frames"], "size": size, "tiles_per_frame": head["tiles_per_frame"],
           "decode_fps": head["decode_fps"], "score_fps": head["score_fps"], "ratio": head["ratio"]}
    for key, every, sample in (("every25", 25, None), ("every100", 100, None), ("frames32", None, 32)):
        m = measure(None, frames, size, every=every, sample=min(sample, frames) if sample else None)
        out[f"ratio_{key}"] = m["ratio"]
        out[f"score_fps_{key}"] = m["score_fps"]
    if not tiny:
        m = measure(None, 200, 224, every=1)
        out["ratio_224px"] = m["ratio"]
        out["score_fps_224px"] = m["score_fps"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default=None)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, nargs="+", default=[112, 224, 448])
    ap.add_argument("--every", type=int, nargs="+", default=[1, 10, 25])
    ap.add_argument("--sample", type=int, nargs="*", default=[32], help="also: K frames spread uniformly")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"video: {a.frames} frames, MJPG; torch threads: {a.threads}; detector: {a.detector or 'stand-in dcgan_d w64'}")
    print(f"{'size':>5} {'sampling':>10} {'tiles':>5} {'decode fps':>11} {'pipeline fps':>13} "
          f"{'scored fps':>11} {'ratio':>6}")
    for size in a.size:
        for every, sample in [(e, None) for e in a.every] + [(None, k) for k in a.sample]:
            m = measure(a.detector, a.frames, size, every, sample)
            print(f"{size:>5} {m['sampling']:>10} {m['tiles_per_frame']:>5} {m['decode_fps']:>11.1f} "
                  f"{m['score_fps']:>13.1f} {m['scored_frames_per_s']:>11.1f} {m['ratio']:>6.2f}")


if __name__ == "__main__":
    main()
