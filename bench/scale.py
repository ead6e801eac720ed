"""Scale-out throughput: ``unmask scan`` images/s with 2 processes (torchrun, gloo) vs 1, same files.

    PYTHONPATH=$PWD python -m bench.scale [--tiny] [--files N] [--size PX]

A folder of generated PNG files (real embedded Fashion-MNIST images tiled to ``size x size``) is
scanned by a small untrained ``dcgan_d`` (tile policy; speed does not depend on the weights), once
with ``torchrun --nproc_per_node 1`` and once with ``--nproc_per_node 2``. Each process uses one
torch thread and decoding in-process (``--workers 0``), so one process uses one core and the
comparison is "twice the processes", not "more threads". Images/s counts files in the one merged output per wall-clock second of the whole
command (start-up, sharding, every rank's scan and rank 0's merge included); ``scan_seconds_*``
is the time the scan itself reports (from sharding to the merged output). Notes: bench/scale.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from bench.common import mosaic, stand_in_detector

__all__ = ["make_folder", "scan_rate", "run"]

ROOT = Path(__file__).resolve().parents[1]


def make_folder(folder: Path, n: int, size: int) -> Path:
    """``n`` grayscale PNG files ``size x size`` made of embedded Fashion-MNIST tiles."""
    import cv2

    from detector.data import load_fashion_mnist

    imgs = load_fashion_mnist("test", variant="embedded").images
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"img_{i:06d}.png"), mosaic(imgs, i, size))
    return folder



def scan_rate(folder: Path, detector: Path, out: Path, nproc: int, workers: int = 0, batch_size: int = 32) -> dict:
    """Time ``torchrun --nproc_per_node nproc -m unmask scan folder`` end to end."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
           str(_free_port()), "-m", "unmask", "scan", str(folder), "--detector", str(detector), "--out", str(out),
           "--workers", str(workers), "--batch-size", str(batch_size), "--device", "cpu", "--quiet", "--overwrite"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"scan with {nproc} process(es) failed ({p.returncode}):\n{p.stderr[-3000:]}")
    n = sum(1 for line in out.read_text().splitlines() if line.strip()) - (1 if out.suffix == ".csv" else 0)
    m = re.search(r"\[(\d+(?:\.\d+)?)s", p.stdout)  # the scan's own time (after start-up), as rank 0 prints it
    scan_s = float(m.group(1)) if m else float("nan")
    return {"files": n, "seconds": round(dt, 2), "images_per_s": n / dt, "scan_seconds": scan_s}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(tiny: bool = False, files: int | None = None, size: int = 112) -> dict:
    n = files or (120 if tiny else 3000)
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        folder = make_folder(wd / "images", n, size)
        det = stand_in_detector(wd, width=32)
        one = scan_rate(folder, det, wd / "scan1.jsonl", 1)
        two = scan_rate(folder, det, wd / "scan2.jsonl", 2)
        rows1 = sorted(json.loads(x)["path"] for x in (wd / "scan1.jsonl").read_text().splitlines())
        rows2 = sorted(json.loads(x)["path"] for x in (wd / "scan2.jsonl").read_text().splitlines())
        if rows1 != rows2 or len(rows1) != n:
            raise RuntimeError("the 1- and 2-process scans did not cover the same files exactly once")
    return {"ratio": two["images_per_s"] / one["images_per_s"], "images_per_s_1": one["images_per_s"],
            "images_per_s_2": two["images_per_s"], "seconds_1": one["seconds"], "seconds_2": two["seconds"],
            "scan_seconds_1": one["scan_seconds"], "scan_seconds_2": two["scan_seconds"],
            "files": n, "size": size, "cores": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scale")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--files", type=int, default=None)
    ap.add_argument("--size", type=int, default=112)
    a = ap.parse_args(argv)
    print(json.dumps(run(a.tiny, a.files, a.size), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
