"""The one scoring engine: decoded images -> calibrated P(fake) per image, per the artifact.

Scan, video, evaluation (and calibration / serving on top of them) all score through here, so a
file gets the same score whichever command looks at it. Each image goes through the artifact's
own preprocessing (:func:`detector.preprocess.model_inputs`: its size, channels, resize / crop /
tile policy); the model inputs of many images are batched together, forwarded in chunks of at most
``batch_inputs`` and the scores of each image's inputs are aggregated per the artifact
(``tile_aggregate``, ``tile_topk``). Native-resolution tiling follows NPR (Tan et al., "Rethinking
the Up-Sampling Operations in CNN-based Generative Network for Generalizable Deepfake Detection",
CVPR 2024): down-scaling weakens up-sampling traces, so big images are cut, not shrunk.

Each image also gets its aggregate's own threshold (:meth:`Detector.threshold_for`: the promised
false-positive rate per image, not per tile) and, when the artifact has a domain model, a domain
verdict from the same forward pass (:mod:`detector.domain`): ``in_domain`` and ``domain_score``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .artifact import Detector, DetectorSpec, aggregate
from .decode import DEFAULT_MAX_PIXELS, read_image_reduced
from .domain import ImageStats
from .preprocess import fit_reduced, model_inputs, reduced_side

__all__ = ["ImageScore", "FileInputs", "Scorer", "file_inputs", "score_images"]


@dataclass(frozen=True)
class FileInputs:
    """An image file turned into the model's inputs (what a scan row reports beside its score)."""

    inputs: torch.Tensor                           # (N, C, S, S) in [0, 1]
    corners: list[tuple[int, int]] | None          # top-left (y, x) of each tile, when tiling
    policy: str                                    # resize, crop, tile or tile(scaled F)
    width: int                                     # the decoded image's size (after EXIF orientation)
    height: int
    colour: float = 0.0                            # colourfulness before channel conversion

    @property
    def stats(self) -> ImageStats:
        return ImageStats(self.colour, self.width, self.height)


def file_inputs(path: str, spec: DetectorSpec, max_pixels: int = DEFAULT_MAX_PIXELS,
                max_tiles: int | None = None) -> FileInputs:
    """THE path from an image file to model inputs: every file-scoring caller (scan, the Python API,
    the service's ``--allow-dir``) goes through here, so a file scores the same everywhere.

    Under ``resize`` / ``crop`` a JPEG is decoded only as large as the policy needs (the decoder's
    DCT-domain reduced decoding, :mod:`detector.reduced`; issue 17: 2.3x faster on multi-megapixel
    photo folders, scores within 0.01 of a full decode, tests/test_reduced.py). Tiles need every
    native pixel, so the tile policy always decodes in full. Raises ``UnreadableImage``."""
    s = spec
    if s.policy != "tile":
        d = read_image_reduced(path, s.channels, max_pixels, min_side=reduced_side(s.input_size))
        x = fit_reduced(d, s.input_size, s.channels, s.policy).unsqueeze(0)  # (1, C, S, S)
        return FileInputs(x, None, s.policy, d.width, d.height, d.colour)
    d = read_image_reduced(path, s.channels, max_pixels)  # a full decode: (C, H, W)
    x, corners, policy = model_inputs(d.image, s.input_size, s.channels, s.policy, max_tiles)
    return FileInputs(x, corners, policy, d.width, d.height, d.colour)


@dataclass
class ImageScore:
    """The score of one image and how it was reached."""

    score: float                                   # calibrated P(fake), tiles aggregated per the artifact
    n_tiles: int                                   # model inputs the image became (1 unless tiling)
    tile_scores: torch.Tensor | None = None        # (n_tiles,) float64 when tiling, else None
    corners: list[tuple[int, int]] | None = None   # top-left (y, x) of each tile, when tiling
    policy: str = "resize"                         # what preprocessing did (resize, crop, tile, tile(scaled F))
    threshold: float | None = None                 # this image's threshold (its aggregate's, when tiled)
    in_domain: bool | None = None                  # None: the artifact has no domain model
    domain_score: float | None = None              # > 1: outside the detector's domain (detector.domain)

    def label(self, out_of_domain: str = "flag") -> str:
        """``fake`` / ``real`` by the threshold, or ``out_of_domain`` when outside the domain and
        ``out_of_domain`` is ``flag`` or ``skip`` (``score``: the score's label whatever the domain)."""
        if self.in_domain is False and out_of_domain != "score":
            return "out_of_domain"
        return "fake" if self.score >= self.threshold else "real"


class Scorer:
    """Batches the model inputs of many images and scores them through ``detector``.

    ``policy`` overrides the artifact's preprocessing policy (video scores frames as native tiles
    whatever the artifact says); ``max_tiles`` scales huge images down so their tile grid fits.
    """

    def __init__(self, detector: Detector, batch_inputs: int = 2048, *, policy: str | None = None,
                 max_tiles: int | None = None) -> None:
        if batch_inputs < 1:
            raise ValueError(f"batch_inputs must be >= 1, not {batch_inputs}")
        self.det, self.batch_inputs, self.max_tiles = detector, batch_inputs, max_tiles
        self.policy = detector.spec.policy if policy is None else policy

    def prepare(self, img: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]] | None, str]:
        """``(C, H, W)`` in [0, 1] -> ``(inputs (N, C, S, S), corners, policy)``; see ``model_inputs``."""
        s = self.det.spec
        return model_inputs(img, s.input_size, s.channels, self.policy, self.max_tiles)

    def prepare_file(self, path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> FileInputs:
        """An image file -> its model inputs (see :func:`file_inputs`; the artifact's own policy)."""
        return file_inputs(path, self.det.spec, max_pixels, self.max_tiles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, S, S)`` model inputs -> ``(N,)`` float64 scores, at most ``batch_inputs`` per pass."""
        return self.forward_domain(x)[0]

    def forward_domain(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`forward` and, with a domain model, each input's feature-distance ratio (one pass)."""
        domain = self.det.trust.domain if self.det.trust is not None else None
        if not len(x):
            return torch.empty(0, dtype=torch.float64), (None if domain is None else torch.empty(0))
        step, t = self.batch_inputs, self.det.spec.temperature
        if domain is None:
            return torch.cat([self.det.score_batch(x[j:j + step]) for j in range(0, len(x), step)]).double(), None
        zs, ds = [], []
        for j in range(0, len(x), step):
            z, f = self.det.logits_and_features(x[j:j + step])
            zs.append(z)
            ds.append(domain.distance(f))
        return torch.sigmoid(torch.cat(zs) / t).double(), torch.cat(ds)

    def aggregate(self, scores: torch.Tensor) -> float:
        """``(n,)`` scores of one image's inputs -> its score (one input: that input's score)."""
        if len(scores) == 1:
            return float(scores[0])
        s = self.det.spec
        return aggregate(scores, s.tile_aggregate, s.tile_topk)

    def score_inputs(self, x: torch.Tensor, counts: Sequence[int], corners: Sequence | None = None,
                     policies: Sequence[str] | None = None, stats: Sequence[ImageStats | None] | None = None
                     ) -> list[ImageScore]:
        """Score already prepared inputs: ``x`` is the images' inputs concatenated, ``counts[i]`` how
        many belong to image ``i`` (in order); ``stats[i]`` what the domain's pre-network check needs
        of image ``i`` (None: that check is skipped)."""
        scores, ratios = self.forward_domain(x)
        domain = self.det.trust.domain if ratios is not None else None
        spreads = x.flatten(1).std(1) if domain is not None else None  # intensity spread per input, one op
        out, off = [], 0
        for i, n in enumerate(counts):
            part = scores[off:off + n]
            c = None if corners is None else corners[i]
            policy = self.policy if policies is None else policies[i]
            r = ImageScore(self.aggregate(part), n, part if c is not None else None, c, policy,
                           self.det.threshold_for(n))
            if domain is not None:
                st = None if stats is None else stats[i]
                spread = float(spreads[off] if n == 1 else spreads[off:off + n].median())
                r.domain_score = domain.image_score(ratios[off:off + n], st, policy.startswith("tile"), spread)
                r.in_domain = r.domain_score <= 1.0
            off += n
            out.append(r)
        return out

    def score_images(self, images: Iterable[torch.Tensor]) -> Iterator[ImageScore]:
        """``(C, H, W)`` images in [0, 1] (any sizes) -> one :class:`ImageScore` each, in order.

        Lazy: images are read from the iterable only as batches fill, so a stream stays a stream.
        An item may also be ``(image, ImageStats)`` when the image was converted (e.g. to grey) before
        it got here: the stats describe the original for the domain check."""
        xs: list[torch.Tensor] = []
        counts: list[int] = []
        corners: list = []
        policies: list[str] = []
        stats: list = []
        n = 0
        for img in images:
            img, st = img if isinstance(img, tuple) else (img, ImageStats.of(img))
            x, c, p = self.prepare(img)
            xs.append(x)
            counts.append(len(x))
            corners.append(c)
            policies.append(p)
            stats.append(st)
            n += len(x)
            if n >= self.batch_inputs:
                yield from self.score_inputs(torch.cat(xs), counts, corners, policies, stats)
                xs, counts, corners, policies, stats, n = [], [], [], [], [], 0
        if xs:
            yield from self.score_inputs(torch.cat(xs), counts, corners, policies, stats)


def score_images(detector: Detector, images: Iterable[torch.Tensor], batch_inputs: int = 2048) -> np.ndarray:
    """P(fake) per image as a float64 array (equal to ``detector.score_image`` per image)."""
    return np.asarray([r.score for r in Scorer(detector, batch_inputs).score_images(images)], dtype=np.float64)
