"""Aggregate-aware thresholds: the promised false-positive rate per image, per frame, per video.

The artifact's threshold holds the target false-positive rate (FPR) for ONE model input. A verdict
that combines many inputs (the max or top-k mean of an image's N tiles, a video's top-k mean over
frames) would use that threshold N times: a clean frame of 16 tiles at a 1% per-tile threshold is
flagged about 1 - 0.99^16 = 15% of the time. Hardening therefore stores the validation reals'
logits (:mod:`detector.train.trust`), and here the threshold of each aggregate is set on them so
that the aggregate itself is flagged at the target rate:

* the real scores' distribution is the validation logits' empirical one below their 95th
  percentile, and above it an exponential tail fitted to the top 5% (peaks over threshold, the
  generalised Pareto of shape 0): a 16-tile max at 1% needs the 99.94th percentile, far beyond what
  1,500 validation images pin down empirically (their largest value, give or take one). On
  simulated logits the exponential errs on the safe side for light (Gaussian) tails (0.7x the
  target) where a fitted Pareto shape overshoots (1.9x);
* the max of N scores exceeds ``t`` with probability ``1 - F(t)^N``, so ``t`` is the real scores'
  ``(1 - fpr)^(1/N)`` quantile (exact, no simulation);
* a mean or top-k mean (of tiles, or of frames that are themselves tile aggregates) is simulated:
  20,000 draws of the aggregate from the tail model and 20,000 from the validation scores
  themselves (bootstrap; fixed seed, so a detector always gives the same thresholds); the larger
  ``1 - fpr`` quantile of the two is taken.

Tiles are drawn independently: for tiles of different images (a collage, the test clips) this is
exact; for tiles of one photo, or frames of one shot, scores are correlated and the real rate is
lower than the target (the guard errs on the side of calling real). Thresholds are cached per
aggregate.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["Tails", "DRAWS"]

DRAWS = 20_000
TAIL = 0.05  # the share of validation logits the exponential tail is fitted to
_SEED = 20240615


def _agg(a: np.ndarray, how: str, k: int) -> np.ndarray:
    """Aggregate the last axis of ``a`` (already sorted ascending when ``how`` is topk_mean)."""
    if how == "max":
        return a.max(-1)
    if how == "mean":
        return a.mean(-1)
    if how == "topk_mean":
        return np.sort(a, -1)[..., -min(k, a.shape[-1]):].mean(-1)
    raise ValueError(f"unknown aggregate {how!r}")


class Tails:
    """Thresholds for aggregates of real scores at a target FPR, from stored validation logits."""

    def __init__(self, logits: np.ndarray, temperature: float, target_fpr: float) -> None:
        z = np.asarray(logits, dtype=np.float64).ravel()
        if len(z) < 10 or not np.isfinite(z).all():
            raise ValueError("tails need at least 10 finite validation logits")
        if not 0.0 < target_fpr < 1.0:
            raise ValueError(f"target_fpr must be in (0, 1), got {target_fpr}")
        self.z, self.temperature = np.sort(z), float(temperature)
        self.u = float(np.quantile(self.z, 1.0 - TAIL))
        ex = self.z[self.z > self.u] - self.u
        self.sigma = max(float(ex.mean()) if len(ex) else 0.0, 1e-6)  # the exponential's scale
        self.target_fpr = float(target_fpr)
        self._cache: dict = {}

    def score_at(self, p: np.ndarray) -> np.ndarray:
        """The real-score quantile function (empirical body, exponential tail) at ``p`` in [0, 1)."""
        p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0 - 1e-12)
        body = np.interp(p, np.linspace(0.0, 1.0, len(self.z)), self.z)
        tail = self.u + self.sigma * np.log(TAIL / (1.0 - np.maximum(p, 1.0 - TAIL)))
        z = np.where(p > 1.0 - TAIL, tail, body)
        return 0.5 * (1.0 + np.tanh(z / (2.0 * self.temperature)))  # sigmoid, overflow-free

    def _quantile(self, q: float) -> float:
        return float(self.score_at(q))

    def tiles(self, n: int, how: str = "max", k: int = 3) -> float:
        """Threshold for the aggregate ``how`` of ``n`` tile scores (n = 1: one input's threshold)."""
        key = ("tiles", n, how, k if how == "topk_mean" else 0)
        if key not in self._cache:
            if n <= 1 or how == "max":
                t = self._quantile((1.0 - self.target_fpr) ** (1.0 / max(n, 1)))
            else:
                t = self._simulate(n, how, k, 1, "max", 1)
            self._cache[key] = t
        return self._cache[key]

    def video(self, n_tiles: int, tile_how: str, tile_k: int, n_frames: int, how: str, k: int) -> float:
        """Threshold for a video score: ``how`` (mean | max | topk_mean over ``k``) of ``n_frames``
        frame scores, each the ``tile_how`` aggregate of ``n_tiles`` tile scores."""
        if how == "max" and (n_tiles <= 1 or tile_how == "max"):
            return self.tiles(max(n_tiles, 1) * n_frames, "max")
        key = ("video", n_tiles, tile_how, tile_k, n_frames, how, k)
        if key not in self._cache:
            self._cache[key] = self._simulate(n_tiles, tile_how, tile_k, n_frames, how, k)
        return self._cache[key]

    def _simulate(self, n_tiles: int, tile_how: str, tile_k: int, n_frames: int, how: str, k: int) -> float:
        """The ``1 - fpr`` quantile of the nested aggregate over DRAWS draws, the larger of two
        simulations: from the tail model, and a bootstrap of the validation images themselves. In
        probability space a top-k mean is dominated by the rare real tile the detector is sure is
        fake, and one such image drawn twice in a clip flags it; the bootstrap keeps those images
        (and their repeats) as they are, where the smooth tail thins them out."""
        rng = np.random.default_rng(_SEED)
        per_draw = max(n_tiles, 1) * n_frames
        chunk = max(1, 4_000_000 // per_draw)  # bound memory: at most ~32 MB of draws at a time
        boot = 0.5 * (1.0 + np.tanh(self.z / (2.0 * self.temperature)))
        qs = []
        for draw in (lambda m: self.score_at(rng.random(size=(m, n_frames, max(n_tiles, 1)))),
                     lambda m: boot[rng.integers(0, len(boot), size=(m, n_frames, max(n_tiles, 1)))]):
            out = []
            for start in range(0, DRAWS, chunk):
                draws = draw(min(chunk, DRAWS - start))
                frames = _agg(draws, tile_how, tile_k) if n_tiles > 1 else draws[..., 0]
                out.append(_agg(frames, how, k) if n_frames > 1 else frames[..., 0])
            qs.append(float(np.quantile(np.concatenate(out), 1.0 - self.target_fpr)))
        return max(qs)

    @staticmethod
    def per_input_fpr(target: float, n: int) -> float:
        """What a plain per-input threshold gives an aggregate max of ``n``: ``1 - (1 - fpr)^n``."""
        return 1.0 - math.pow(1.0 - target, n)
