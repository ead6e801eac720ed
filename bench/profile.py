"""The profiles and micro-measurements behind BENCHMARKS.md's findings (not part of ``python -m bench``).

    PYTHONPATH=$PWD python -m bench.profile scan       # cProfile of a 6,000-file scan (2 workers)
    PYTHONPATH=$PWD python -m bench.profile video      # cProfile of a 112-px video, every frame scored
    PYTHONPATH=$PWD python -m bench.profile transfer   # per-file vs per-batch tensors from DataLoader workers
    PYTHONPATH=$PWD python -m bench.profile layout     # dcgan_d forward: NCHW vs channels-last (1 thread)
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

import torch

from bench.common import best_of, pin_threads, stand_in, stand_in_detector


def _show(pr: cProfile.Profile, top: int) -> None:
    pstats.Stats(pr).sort_stats("tottime").print_stats(top)


def profile_scan(n: int = 6000, top: int = 18) -> None:
    from bench.scan_speed import make_files
    from detector.scan import ScanConfig, scan

    det = stand_in()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_files(root / "imgs", n)
        cfg = ScanConfig(workers=2, overwrite=True, progress=False)
        scan([root / "imgs"], det, root / "o.csv", cfg, log=lambda m: None)  # warm the page cache
        pr = cProfile.Profile()
        t0 = time.perf_counter()
        pr.enable()
        scan([root / "imgs"], det, root / "o.csv", cfg, log=lambda m: None)
        pr.disable()
        print(f"scan: {n / (time.perf_counter() - t0):.0f} files/s under the profiler (main process only)")
        _show(pr, top)


def profile_video(frames: int = 300, size: int = 112, top: int = 14) -> None:
    from bench.video_speed import decode_fps, make_video
    from detector.artifact import load
    from detector.video import VideoConfig, analyze_video

    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        path = make_video(wd / "v.avi", frames, size)
        det = load(stand_in_detector(wd, width=64))
        print(f"decode: {decode_fps(path)[1]:.0f} frames/s")
        cfg = VideoConfig(every=1, batch_size=256, progress=False)
        analyze_video(path, det, cfg, frames_out=io.StringIO())
        pr = cProfile.Profile()
        t0 = time.perf_counter()
        pr.enable()
        analyze_video(path, det, cfg, frames_out=io.StringIO())
        pr.disable()
        print(f"pipeline: {frames / (time.perf_counter() - t0):.0f} frames/s under the profiler")
        _show(pr, top)


def transfer(n: int = 4000) -> None:
    from torch.utils.data import DataLoader

    from bench.scan_speed import _DecodeOnly, make_files

    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp) / "imgs", n)
        for rep in range(2):
            for name, col in (("one tensor per file ", lambda items: items), ("one tensor per batch", torch.stack)):
                t0 = time.perf_counter()
                for _ in DataLoader(_DecodeOnly(files), batch_size=64, num_workers=2, collate_fn=col, prefetch_factor=4):
                    pass
                print(f"decode-only, 2 workers, {name}: {n / (time.perf_counter() - t0):.0f} files/s")


def layout(batch: int = 512) -> None:
    import copy

    from detector.nets import create_network

    torch.manual_seed(0)
    net = create_network("dcgan_d", in_channels=1, image_size=28).eval()
    fast = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x = torch.rand(batch, 1, 28, 28) * 2 - 1
    xc = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        print(f"max |logit difference| NCHW vs channels-last: {(net(x) - fast(xc)).abs().max().item():.2e}")
        for name, m, inp in (("NCHW weights, NCHW input", net, x), ("NCHW weights, channels-last input", net, xc),
                             ("channels-last weights and input", fast, xc)):
            m(inp)
            print(f"{name}: {1e6 * best_of(lambda: m(inp), 5) / batch:.0f} us/image")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["scan", "video", "transfer", "layout"])
    a = ap.parse_args()
    pin_threads(1)
    {"scan": profile_scan, "video": profile_video, "transfer": transfer, "layout": layout}[a.what]()


if __name__ == "__main__":
    main()
