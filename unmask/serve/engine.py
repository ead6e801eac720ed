"""THE scoring of ``unmask serve``: decoded image -> model inputs -> calibrated P(fake), exactly as
``unmask scan`` computes it.

Every number the service returns comes from the two functions here, and both are thin wrappers
over the one scoring engine (:class:`detector.scoring.Scorer`) that ``unmask scan`` uses: the same
preprocessing with the same ``max_tiles`` budget, the images' inputs forwarded together in chunks
of ``forward_chunk``, tiles aggregated per the artifact; scores rounded to 6 decimals as in a scan
row, so a file scores the same through the API as in a scan (tests/test_serve.py checks 1e-6).
Native-resolution tiling follows NPR (Tan et al., CVPR 2024): down-scaling weakens up-sampling traces.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from detector.artifact import Detector
from detector.scoring import Scorer

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
    """``(C, H, W)`` in [0, 1] -> the model inputs under the artifact's policy (the engine's ``prepare``)."""
    _, h, w = img.shape
    x, corners, policy = Scorer(det, max_tiles=max_tiles).prepare(img)  # (N, C, S, S)
    if corners is None:
        return Prepared(x, None, policy, w, h, w, h)
    size = det.spec.input_size
    gw = max(cx for _, cx in corners) + size  # the (possibly scaled) image the corners refer to
    gh = max(cy for cy, _ in corners) + size
    return Prepared(x, corners, policy, w, h, gw, gh)


def score_prepared(det: Detector, items: Sequence[Prepared], forward_chunk: int = 2048) -> list[Scored]:
    """Score many prepared images in one pass through the engine (inputs concatenated, chunked)."""
    if not items:
        return []
    x = torch.cat([it.inputs for it in items]) if len(items) > 1 else items[0].inputs  # (sum N, C, S, S)
    results = Scorer(det, forward_chunk).score_inputs(x, [len(it.inputs) for it in items],
                                                      [it.corners for it in items])
    out = []
    for r in results:
        s = round(r.score, 6)
        tiles_ = [round(float(v), 6) for v in r.tile_scores] if r.tile_scores is not None else None
        out.append(Scored(s, det.label(s), r.n_tiles, tiles_))
    return out
