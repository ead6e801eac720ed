"""Synthetic test media with known ground truth: videos of real image mosaics with generated
content spliced into known frames and a known tile. Used by ``unmask data video`` and the demo."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from detector.atomic import write_json
from detector.imageio import to_uint8

__all__ = ["splice_video"]


def splice_video(path: str | os.PathLike, real: torch.Tensor, fakes: torch.Tensor | None = None, *,
                 frames: int = 60, grid: int = 4, fps: float = 12.0, fake_span: tuple[float, float] = (1 / 3, 2 / 3),
                 tile: tuple[int, int] = (1, 1), seed: int = 0) -> dict:
    """Write an MJPG video whose frames are ``grid x grid`` mosaics of random ``real`` images
    ``(N, C, S, S)`` in [0, 1]; in frames ``[lo, hi)`` (``fake_span`` of the length) the mosaic cell
    ``tile`` (row, col) shows consecutive ``fakes`` instead. Writes ``<path>.truth.json`` beside it
    and returns the same ground truth."""
    import cv2

    path = Path(path)
    if real.dim() != 4 or real.shape[-1] != real.shape[-2]:
        raise ValueError(f"real must be (N, C, S, S), got {tuple(real.shape)}")
    n, c, s, _ = real.shape
    if fakes is not None and tuple(fakes.shape[1:]) != (c, s, s):
        raise ValueError(f"fakes must match real images' shape {(c, s, s)}, got {tuple(fakes.shape[1:])}")
    if not 0 <= tile[0] < grid or not 0 <= tile[1] < grid:
        raise ValueError(f"tile {tile} outside the {grid}x{grid} grid")
    lo, hi = (int(round(f * frames)) for f in fake_span) if fakes is not None else (0, 0)
    side = grid * s
    g = torch.Generator().manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (side, side))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}: OpenCV's MJPG encoder is unavailable")
    done = False
    try:
        for f in range(frames):
            cells = real[torch.randint(0, n, (grid * grid,), generator=g)]
            if lo <= f < hi:
                cells[tile[0] * grid + tile[1]] = fakes[(f - lo) % len(fakes)]
            mosaic = np.zeros((side, side, 3), np.uint8)
            for k, img in enumerate(cells):
                y, x = divmod(k, grid)
                a = to_uint8(img)
                mosaic[y * s:(y + 1) * s, x * s:(x + 1) * s] = a[..., None] if a.ndim == 2 else a[..., ::-1]
            writer.write(mosaic)
        done = True
    finally:
        writer.release()
        if not done:
            tmp.unlink(missing_ok=True)  # a failed write leaves neither a torn video nor its temp file
    os.replace(tmp, path)
    truth = {"video": str(path), "frames": frames, "fps": fps, "fake_frames": [lo, hi],
             "tile": list(tile), "box_yxhw": [tile[0] * s, tile[1] * s, s, s], "grid": grid, "seed": seed}
    write_json(path.with_name(path.name + ".truth.json"), truth)
    return truth
