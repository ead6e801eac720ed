"""Photo folders: ``unmask scan`` images/s vs a plain full Pillow decode of the same multi-megapixel JPEGs.

    PYTHONPATH=$PWD python -m bench --only photo_speed

2,000 JPEGs of 1-12 megapixels (uniform), made from OpenCV's sample photos (Debian's opencv-doc:
``/usr/share/doc/opencv-doc/examples/data/*.jpg|png``), upscaled (bicubic) to a random size and
re-encoded at quality 90; generated once into a cache folder outside the repository
(``$UNMASK_BENCH_CACHE`` or ``~/.cache/unmask/bench``). Both contenders use the same DataLoader
(2 workers, batches of 64) over the same files; the plain decode opens each file with Pillow and
decodes it in full (``Image.load``), nothing else. The scan is the product: decode (reduced to the
policy's need, :func:`detector.decode.read_image_reduced`), preprocess, score with the default
28-px ``dcgan_d`` (width 64, ``resize`` policy, one torch thread) and write one CSV row per file.
Target: scan images/s >= 1.5 x plain-decode images/s.

Also reported (``*_issue``): the issue's own comparison on the first 300 files, a single-process
Pillow decode + resize to 28 px (``Image.convert("L").resize``) vs the scan, as a ratio of images/s.
"""
from __future__ import annotations

import multiprocessing as mp
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from bench.common import cache_dir, pin_threads, stand_in

SOURCES = Path("/usr/share/doc/opencv-doc/examples/data")

__all__ = ["make_photos", "run"]


def _sources() -> list[Path]:
    return sorted([*SOURCES.glob("*.jpg"), *SOURCES.glob("*.png")]) if SOURCES.is_dir() else []


def _one(job: tuple[str, str, float, int]) -> None:
    """Write one JPEG: source photo ``src`` upscaled to about ``megapixels`` (aspect kept)."""
    src, out, megapixels, seed = job
    rng = random.Random(seed)
    if src:
        im = Image.open(src).convert("RGB")
    else:  # no opencv-doc: a smooth synthetic picture (gradients + a few discs), still photo-like to JPEG
        y, x = np.mgrid[0:240, 0:320].astype(np.float32)
        arr = np.stack([x / 320 * 255, y / 240 * 255, (x + y) / 560 * 255], -1)
        for _ in range(6):
            cx, cy, r = rng.uniform(0, 320), rng.uniform(0, 240), rng.uniform(10, 60)
            arr[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = [rng.uniform(0, 255) for _ in range(3)]
        im = Image.fromarray(arr.astype(np.uint8))
    f = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
    im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.BICUBIC)
    tmp = out + ".part"
    im.save(tmp, "JPEG", quality=90)
    Path(tmp).rename(out)


def make_photos(root: Path, n: int, megapixels: tuple[float, float] = (1.0, 12.0), seed: int = 0,
                processes: int = 2) -> list[str]:
    """``n`` JPEGs in ``root`` (kept: a second call with the same arguments reuses them)."""
    root.mkdir(parents=True, exist_ok=True)
    srcs = [str(p) for p in _sources()] or [""]
    rng = random.Random(seed)
    jobs = [(srcs[i % len(srcs)], str(root / f"{i:05d}.jpg"), rng.uniform(*megapixels), seed * 100_003 + i)
            for i in range(n)]
    todo = [j for j in jobs if not Path(j[1]).exists()]
    if len(todo) < 50 or processes < 2:
        for j in todo:
            _one(j)
    elif todo:
        with mp.get_context("fork").Pool(processes) as pool:  # Pillow only in the children
            for _ in pool.imap_unordered(_one, todo, chunksize=4):
                pass
    return [j[1] for j in jobs]


class _PlainDecode(Dataset):
    """Open with Pillow and decode in full; nothing else (the baseline)."""

    def __init__(self, files: list[str]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> int:
        with Image.open(self.files[i]) as im:
            im.load()
            return im.width * im.height


def _plain_decode(files: list[str], workers: int, batch_size: int) -> tuple[float, float]:
    """(seconds, megapixels decoded)."""
    dl = DataLoader(_PlainDecode(files), batch_size=batch_size, num_workers=workers, collate_fn=sum,
                    prefetch_factor=4 if workers else None)
    t0 = time.perf_counter()
    pixels = sum(dl)
    return time.perf_counter() - t0, pixels / 1e6


def _scan(files: list[str], det, workers: int, batch_size: int, out: Path) -> float:
    from detector.scan import ScanConfig, scan

    t0 = time.perf_counter()
    r = scan(files, det, out, ScanConfig(workers=workers, batch_size=batch_size, overwrite=True, progress=False),
             log=lambda m: None)
    dt = time.perf_counter() - t0
    assert r.n_files == len(files) and r.n_errors == 0, r
    return dt


def _issue_plain(files: list[str], size: int = 28) -> float:
    """The issue's single-process 'decode and resize' of the same files (seconds)."""
    t0 = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            im.convert("L").resize((size, size), Image.BILINEAR)
    return time.perf_counter() - t0


def run(tiny: bool = False, workers: int = 2, batch_size: int = 64) -> dict:
    """Headline ``ratio``: scan images/s / plain full-decode images/s (same 2,000 files, same loader)."""
    pin_threads(1)
    n, n_issue = (24, 8) if tiny else (2000, 300)
    mps = (0.2, 0.6) if tiny else (1.0, 12.0)
    det = stand_in("resize", width=64)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos" if tiny else cache_dir(f"photos-{n}-v1")
        t_gen = time.perf_counter()
        files = make_photos(root, n, mps)
        t_gen = time.perf_counter() - t_gen
        _plain_decode(files[: max(8, n // 20)], workers, batch_size)  # warm the page cache and workers' imports
        t_dec, mpix = _plain_decode(files, workers, batch_size)
        t_scan = _scan(files, det, workers, batch_size, Path(tmp) / "scan.csv")
        t_issue = _issue_plain(files[:n_issue])
        t_scan_issue = _scan(files[:n_issue], det, workers, batch_size, Path(tmp) / "scan_issue.csv")
    return {"files": n, "megapixels_mean": mpix / n, "workers": workers, "batch_size": batch_size,
            "source_photos": len(_sources()), "generate_seconds": t_gen,
            "decode_images_per_s": n / t_dec, "scan_images_per_s": n / t_scan, "ratio": t_dec / t_scan,
            "files_issue": n_issue, "plain_resize_images_per_s_issue": n_issue / t_issue,
            "scan_images_per_s_issue": n_issue / t_scan_issue, "ratio_issue": t_issue / t_scan_issue}


if __name__ == "__main__":
    print(run())
