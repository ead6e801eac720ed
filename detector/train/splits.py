"""Cutting image sets into disjoint, seeded train / validation / test parts.

One rule for every split in unmask (hardening, retraining, the cross-generator matrix): a seeded
permutation cut into consecutive parts. Thresholds and temperatures are chosen on validation and
reported on test, never the other way round (the hygiene failure of DeepfakeBench and
UniversalFakeDetect, where the "best" checkpoint is picked on the test set).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence, TypeVar

import numpy as np
import torch

__all__ = ["Splits", "split_indices", "split_tensor", "split_train_test", "fingerprint", "real_splits"]

T = TypeVar("T")


@dataclass(frozen=True)
class Splits:
    """One image set cut into train / validation / test tensors ``(N, C, S, S)`` in [0, 1]."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def split_indices(n: int, fractions: Sequence[float], seed: int, sort: bool = True) -> list[np.ndarray]:
    """Disjoint index sets covering ``range(n)``: one per fraction, the last takes the rest.

    Part ``i`` holds ``max(1, round(fractions[i] * n))`` items of a permutation seeded by ``seed``,
    never so many that a later part is left without one. ``sort`` returns each part in index
    order, else in the permutation's (random) order."""
    if n < len(fractions):
        raise ValueError(f"cannot split {n} items into {len(fractions)} parts")
    if any(f < 0 for f in fractions) or sum(fractions) > 1.0 + 1e-9:
        raise ValueError(f"fractions must be non-negative and sum to at most 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    out, start = [], 0
    for i, f in enumerate(fractions):
        later = len(fractions) - 1 - i
        stop = n if later == 0 else min(start + max(1, int(round(f * n))), n - later)
        part = perm[start:stop]
        out.append(np.sort(part) if sort else part)
        start = stop
    return out


def split_tensor(x: torch.Tensor, seed: int, val: float = 0.15, test: float = 0.15) -> Splits:
    """Cut ``x`` ``(N, ...)`` into train / val / test by ``seed`` with no overlap."""
    tr, va, te = split_indices(len(x), (1.0 - val - test, val, test), seed)
    return Splits(x[tr], x[va], x[te])


def split_train_test(images: Sequence[T] | torch.Tensor, test_fraction: float = 0.5, seed: int = 0
                     ) -> tuple[list[T], list[T]]:
    """Seeded random split of a list of (possibly differently sized) images into (train, test)
    lists, both non-empty, each in the permutation's order."""
    n = len(images)
    if n < 2:
        raise ValueError(f"need at least 2 images to split into train and test, got {n}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
    test, train = split_indices(n, (test_fraction, 1.0 - test_fraction), seed, sort=False)
    return [images[i] for i in train], [images[i] for i in test]


def fingerprint(*tensors: torch.Tensor) -> str:
    """SHA-256 of tensors' bytes (to refuse resuming on different data)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


def real_splits(source: str, size: int, channels: int, seed: int, val_fraction: float = 0.15,
                test_fraction: float = 0.15, limit: int | None = None) -> tuple[Splits, dict]:
    """Real images from ``source`` split into train / val / test by ``seed`` with no overlap.

    For Fashion-MNIST, train and validation come from the official *train* split and test is the
    official t10k split (never trained on); for a folder or video, all three are cut from it.
    Returns the splits and a provenance dict (source, checksum, seed, sizes).
    """
    from ..data import open_source

    info: dict = {"source": source, "split_seed": seed, "val_fraction": val_fraction,
                  "test_fraction": test_fraction, "limit": limit}
    if source.startswith("fashion-mnist"):
        tr = open_source(source, size, channels, "train")
        te = open_source(source, size, channels, "test")
        x = tr.images if limit is None else tr.images[:limit]
        a, b = split_indices(len(x), (1.0 - val_fraction, val_fraction), seed)
        sp = Splits(x[torch.from_numpy(a)], x[torch.from_numpy(b)], te.images)
        info.update({"name": tr.name, "checksum": getattr(tr, "checksum", ""), "test": "official t10k split",
                     "train_val_from": "official train split"})
    else:
        src = open_source(source, size, channels, "train")
        imgs = src.images if hasattr(src, "images") else torch.stack(
            [src[i][0] for i in range(len(src) if limit is None else min(limit, len(src)))])
        sp = split_tensor(imgs, seed, val_fraction, test_fraction)
        info.update({"name": getattr(src, "name", source), "checksum": fingerprint(imgs)})
    info["sizes"] = sp.sizes()
    return sp, info
