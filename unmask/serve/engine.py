"""THE scoring of ``unmask serve``: decoded image -> model inputs -> calibrated P(fake), exactly as
``unmask scan`` computes it.

Every number the service returns comes from the two functions here, and they repeat
:mod:`detector.scan` step for step (same decoder, same artifact preprocessing, the same
``max_tiles`` budget that scales a huge image down before tiling, ``score_batch`` over the images'
inputs concatenated in chunks of ``forward_chunk``, tile aggregation per the artifact, scores as
float64 rounded to 6 decimals), so a file scores the same through the API as in a scan row
(tests/test_serve.py checks 1e-6).

The redesign's one engine (``detector.scoring.Scorer``) is the same pipeline: switching the service
to it means replacing :func:`prepare` by ``Scorer(det, forward_chunk, max_tiles=max_tiles).prepare``
and :func:`score_prepared` by ``Scorer.score_inputs``; nothing else in ``unmask.serve`` scores.
Native-resolution tiling follows NPR (Tan et al., CVPR 2024): down-scaling weakens up-sampling traces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from detector.artifact import Detector
from detector.preprocess import fit, resize, tile_grid, tiles

__all__ = ["Prepared", "Scored", "prepare", "score_prepared"]


@dataclass(frozen=True)
class Prepared:
    """One decoded image turned into the model's inputs."""

    inputs: torch.Tensor                       # (N, C, S, S) in [0, 1]
    corners: list[tuple[int, int]] | None      # top-left (y, x) per tile, None unless tiling
    policy: str                                # resize | crop | tile | tile(scaled F)
    width: int                                 # decoded image size (as a scan row reports it)
    height: int
    grid_width: int                            # size of the image the tile corners refer to
    grid_height: int


@dataclass(frozen=True)
class Scored:
    """The score of one image (a scan row's numbers) and, when tiling, its per-tile scores."""

    score: float                               # rounded to 6 decimals, like the scan's CSV
    label: str                                 # real | fake
    n_tiles: int
    tile_scores: list[float] | None            # (n_tiles,) rounded to 6 decimals, None unless tiling


def prepare(det: Detector, img: torch.Tensor, max_tiles: int = 1024) -> Prepared:
    """``(C, H, W)`` in [0, 1] -> the model inputs under the artifact's policy (scan's ``_Files``)."""
    s = det.spec
    _, h, w = img.shape
    if s.policy != "tile":
        x = fit(img, s.input_size, s.channels, s.policy).unsqueeze(0)  # (1, C, S, S)
        return Prepared(x, None, s.policy, w, h, w, h)
    policy = "tile"
    n = len(tile_grid(max(h, s.input_size), max(w, s.input_size), s.input_size))
    if n > max_tiles:  # the same shrinking loop as detector.scan._Files
        f = math.sqrt(max_tiles / n)
        while True:
            nh, nw = max(s.input_size, int(h * f)), max(s.input_size, int(w * f))
            if len(tile_grid(nh, nw, s.input_size)) <= max_tiles or f < 1e-4:
                break
            f *= 0.95
        img = resize(img, nh, nw)
        policy = f"tile(scaled {nw / w:.4g})"
    _, gh, gw = img.shape
    x, corners = tiles(img, s.input_size, s.channels)  # (N, C, S, S)
    return Prepared(x, corners, policy, w, h, max(gw, s.input_size), max(gh, s.input_size))


def score_prepared(det: Detector, items: Sequence[Prepared], forward_chunk: int = 2048) -> list[Scored]:
    """Score many prepared images in one pass: their inputs concatenated, forwarded in chunks."""
    if not items:
        return []
    x = torch.cat([it.inputs for it in items]) if len(items) > 1 else items[0].inputs  # (sum N, C, S, S)
    scores = torch.cat([det.score_batch(x[j:j + forward_chunk])
                        for j in range(0, len(x), forward_chunk)]).double()     # (sum N,)
    out, off = [], 0
    for it in items:
        n = len(it.inputs)
        part = scores[off:off + n]
        off += n
        s = round(float(part[0]) if n == 1 else det.aggregate(part), 6)
        tiles_ = [round(float(v), 6) for v in part] if it.corners is not None else None
        out.append(Scored(s, det.label(s), n, tiles_))
    return out
