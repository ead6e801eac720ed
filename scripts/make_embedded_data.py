#!/usr/bin/env python3
"""Regenerate ``detector/_data/fashion_mnist_subset.npz`` from the official Fashion-MNIST IDX files.

Usage: python scripts/make_embedded_data.py [IDX_DIR]   (default /usr/share/datasets/fashion-mnist,
Debian's ``dataset-fashion-mnist``). Takes a class-balanced random subset (seed 0): 10,000 images
from the official train split and 2,000 from the official t10k split, and records the SHA-256 of
every source file beside the arrays in ``fashion_mnist_subset.json``.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detector.data import read_idx_pair  # noqa: E402

SEED = 0
N_TRAIN, N_TEST = 10_000, 2_000


def balanced_subset(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    per_class = n // 10
    idx = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(idx))


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/usr/share/datasets/fashion-mnist")
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}
    files: dict[str, str] = {}
    for split, prefix, n in (("train", "train", N_TRAIN), ("test", "t10k", N_TEST)):
        images, labels, used = read_idx_pair(src, prefix)
        for p in used:
            files[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
        idx = balanced_subset(labels, n, rng)
        out[f"{split}_images"], out[f"{split}_labels"] = images[idx], labels[idx].astype(np.uint8)
        out[f"{split}_index"] = idx.astype(np.int32)  # position in the official split
    dst = ROOT / "detector" / "_data" / "fashion_mnist_subset.npz"
    np.savez_compressed(dst, **out)
    meta = {
        "dataset": "Fashion-MNIST (Xiao, Rasul, Vollgraf 2017), MIT licence, https://github.com/zalandoresearch/fashion-mnist",
        "subset": {"train": N_TRAIN, "test": N_TEST, "seed": SEED, "class_balanced": True},
        "source_files_sha256": files,
        "npz_sha256": hashlib.sha256(dst.read_bytes()).hexdigest(),
    }
    (dst.with_suffix(".json")).write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
