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
from detector.domain import ImageStats
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
    stats: ImageStats | None = None            # of the decoded original, for the domain check


@dataclass(frozen=True)
class Scored:
    """The score of one image (a scan row's numbers) and, when tiling, its per-tile scores."""

    score: float                               # rounded to 6 decimals, like the scan's CSV
    label: str                                 # real | fake | out_of_domain
    n_tiles: int
    tile_scores: list[float] | None            # (n_tiles,) rounded to 6 decimals, None unless tiling
    threshold: float | None = None             # this image's own (its tile aggregate's)
    in_domain: bool | None = None              # None: the detector has no domain model
    domain_score: float | None = None          # > 1: unlike the detector's training reals


def prepare(det: Detector, img: torch.Tensor, max_tiles: int = 1024, stats: ImageStats | None = None) -> Prepared:
    """``(C, H, W)`` in [0, 1] -> the model inputs under the artifact's policy (the engine's ``prepare``);
    ``stats``: the decoded original's (default: measured on ``img``)."""
    _, h, w = img.shape
    st = ImageStats.of(img) if stats is None else stats
    x, corners, policy = Scorer(det, max_tiles=max_tiles).prepare(img)  # (N, C, S, S)
    if corners is None:
        return Prepared(x, None, policy, w, h, w, h, st)
    size = det.spec.input_size
    gw = max(cx for _, cx in corners) + size  # the (possibly scaled) image the corners refer to
    gh = max(cy for cy, _ in corners) + size
    return Prepared(x, corners, policy, w, h, gw, gh, st)


def score_prepared(det: Detector, items: Sequence[Prepared], forward_chunk: int = 2048) -> list[Scored]:
    """Score many prepared images in one pass through the engine (inputs concatenated, chunked)."""
    if not items:
        return []
    x = torch.cat([it.inputs for it in items]) if len(items) > 1 else items[0].inputs  # (sum N, C, S, S)
    results = Scorer(det, forward_chunk).score_inputs(x, [len(it.inputs) for it in items],
                                                      [it.corners for it in items], [it.policy for it in items],
                                                      [it.stats for it in items])
    out = []
    for r in results:
        r.score = round(r.score, 6)
        tiles_ = [round(float(v), 6) for v in r.tile_scores] if r.tile_scores is not None else None
        ds = None if r.domain_score is None else round(r.domain_score, 4)
        out.append(Scored(r.score, r.label(), r.n_tiles, tiles_, round(r.threshold, 6), r.in_domain, ds))
    return out
