"""One call for every input people hold: ``detector.load(DIR).score(x)``.

The Python face of the runtime, shaped after the calls people already know (Hugging Face's
``pipeline("image-classification")(images)``, scikit-learn's ``predict_proba``): give it a path, a
folder, a Pillow image, a NumPy array, a torch tensor, a batch of them or a list of any of these
(:mod:`detector.inputs`), and get one typed :class:`detector.predictions.Prediction` per image, in
the input's order.

It adds no scoring of its own. A file goes through :func:`detector.scoring.file_inputs`, the path
``unmask scan`` takes (reduced-size JPEG decoding under ``resize`` / ``crop`` included), and every
image's model inputs are scored by the one engine, :class:`detector.scoring.Scorer`, so a file's
score here equals its scan row's. An image already in memory is scored at its full size; for a big
JPEG held in memory that can differ from the file's score by the reduced decode's bound (within
0.01, tests/test_reduced.py). Work is streamed in batches of ``batch_size`` images: a folder of any
size is read batch by batch, and :func:`iter_scores` yields each result as soon as its batch is
scored, so memory stays flat (tests/test_api.py scores 20,000 files).
"""
from __future__ import annotations

from itertools import islice
from typing import Iterable, Iterator

import torch

from .artifact import Detector
from .decode import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, UnreadableImage
from .inputs import ImageInput, Item, expand
from .predictions import Prediction, Predictions
from .scoring import ImageScore, Scorer

__all__ = ["score", "iter_scores", "BATCH_SIZE", "MAX_TILES"]

#: Images per batch, and the tile budget of huge images: the defaults of ``unmask scan``
#: (``ScanConfig.batch_size``, ``ScanConfig.max_tiles``; tests/test_api.py keeps them equal).
BATCH_SIZE, MAX_TILES = 64, 1024


def iter_scores(detector: Detector, x: ImageInput, *, batch_size: int = BATCH_SIZE,
                max_pixels: int = DEFAULT_MAX_PIXELS, extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
                out_of_domain: str = "flag") -> Iterator[Prediction]:
    """Stream one :class:`Prediction` per image of ``x``, in order, ``batch_size`` images at a time.

    A wrong type raises ``TypeError`` here, before anything is read; an unreadable file yields a
    prediction with ``label == "error"`` and the reason, and the stream goes on. ``out_of_domain`` as
    ``unmask scan --out-of-domain``: ``flag`` labels an input outside the detector's domain
    ``out_of_domain``, ``score`` keeps its real/fake label, ``skip`` leaves it out of the stream.

    >>> for p in det.iter_scores("photos/"):          # doctest: +SKIP
    ...     print(p.source, p.score, p.label)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    if out_of_domain not in ("flag", "score", "skip"):
        raise ValueError(f"out_of_domain must be flag, score or skip, not {out_of_domain!r}")
    items = expand(x, detector.spec.channels, extensions)
    stream = _stream(Scorer(detector, max_tiles=MAX_TILES), items, batch_size, max_pixels, out_of_domain)
    return (p for p in stream if p.label != "out_of_domain") if out_of_domain == "skip" else stream


def score(detector: Detector, x: ImageInput, *, batch_size: int = BATCH_SIZE, max_pixels: int = DEFAULT_MAX_PIXELS,
          extensions: Iterable[str] | None = IMAGE_EXTENSIONS, out_of_domain: str = "flag") -> Predictions:
    """All of :func:`iter_scores` at once, as a :class:`Predictions` sequence (same keywords).

    >>> det.score(["a.png", Image.open("b.jpg"), np.zeros((64, 64, 3), np.uint8)]).scores  # doctest: +SKIP
    array([0.012, 0.931, 0.004])
    """
    return Predictions(iter_scores(detector, x, batch_size=batch_size, max_pixels=max_pixels, extensions=extensions,
                                   out_of_domain=out_of_domain))


def _stream(scorer: Scorer, items: Iterator[Item], batch_size: int, max_pixels: int,
            out_of_domain: str) -> Iterator[Prediction]:
    while batch := list(islice(items, batch_size)):
        yield from _score_batch(scorer, batch, max_pixels, out_of_domain)


def _score_batch(scorer: Scorer, batch: list[Item], max_pixels: int, out_of_domain: str) -> list[Prediction]:
    """Prepare every image of ``batch`` (reading files as a scan does), score them in one engine call."""
    xs, counts, corners, policies, stats = [], [], [], [], []
    prepared: list[tuple[Item, str | None, int | None, int | None]] = []  # (item, error, width, height)
    for it in batch:
        if it.path is None:
            x, c, policy = scorer.prepare(it.image)
            h, w = it.image.shape[-2:]
            st = it.stats
        else:
            try:
                f = scorer.prepare_file(it.path, max_pixels)
            except UnreadableImage as e:
                prepared.append((it, e.reason, None, None))
                continue
            except Exception as e:  # noqa: BLE001 - one hostile file must never stop the rest (as in a scan)
                prepared.append((it, f"unexpected error: {type(e).__name__}: {e}"[:500], None, None))
                continue
            x, c, policy, w, h, st = f.inputs, f.corners, f.policy, f.width, f.height, f.stats
        xs.append(x)
        counts.append(len(x))
        corners.append(c)
        policies.append(policy)
        stats.append(st)
        prepared.append((it, None, int(w), int(h)))
    scored = iter(scorer.score_inputs(torch.cat(xs), counts, corners, policies, stats) if xs else [])
    thr = float(scorer.det.spec.threshold)
    out = []
    for it, err, w, h in prepared:
        if err is not None:
            out.append(Prediction(it.source, None, "error", thr, error=err, policy=scorer.policy))
        else:
            out.append(_prediction(it.source, next(scored), w, h, out_of_domain))
    return out


def _prediction(source: str, r: ImageScore, width: int, height: int, out_of_domain: str) -> Prediction:
    tiles = None if r.tile_scores is None else tuple(float(s) for s in r.tile_scores)
    corners = None if r.corners is None else tuple((int(y), int(x)) for y, x in r.corners)
    return Prediction(source, r.score, r.label(out_of_domain), float(r.threshold), policy=r.policy,
                      n_tiles=r.n_tiles, width=width, height=height, tile_scores=tiles, corners=corners,
                      in_domain=r.in_domain, domain_score=r.domain_score)
