"""Typed results of ``Detector.score``: one frozen :class:`Prediction` per image, in a :class:`Predictions`.

Results are dataclasses, not tuples or bare floats (STYLE habit 9): a notebook reads ``p.score``,
``p.label`` and ``p.error`` by name, and a record view (:meth:`Predictions.to_records`,
:meth:`Predictions.to_pandas`) carries the columns of an ``unmask scan`` row, so a table from the
Python API and one from the command line line up. New fields (a domain verdict, say) are added with
a default, so code written against today's fields keeps working.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence, overload

import numpy as np

if TYPE_CHECKING:  # optional: imported by to_pandas() only
    import pandas

__all__ = ["Prediction", "Predictions"]


@dataclass(frozen=True)
class Prediction:
    """The verdict on one image.

    >>> p = Prediction("a.png", 0.91, "fake", 0.5)
    >>> p.ok, p.label, round(p.logit, 3)
    (True, 'fake', 2.314)
    """

    source: str                                      # the file (as a scan row shows it) or "<array 0>", ...
    score: float | None                              # calibrated P(fake); None when the image was unreadable
    label: str                                       # "real", "fake", "out_of_domain" or "error"
    threshold: float                                 # score >= threshold means fake
    error: str | None = None                         # why the file could not be read (label "error")
    policy: str | None = None                        # what preprocessing did: resize, crop, tile, tile(scaled F)
    n_tiles: int = 0                                 # model inputs the image became (1 unless tiling)
    width: int | None = None                         # the image's size (after EXIF orientation)
    height: int | None = None
    tile_scores: tuple[float, ...] | None = None     # one score per tile, when the policy tiles
    corners: tuple[tuple[int, int], ...] | None = None  # top-left (y, x) of each tile, when tiling
    in_domain: bool | None = None                    # None: the artifact has no domain model (docs/trust.md)
    domain_score: float | None = None                # > 1: unlike the detector's training images

    @property
    def ok(self) -> bool:
        """True when the image was scored (False: see ``error``)."""
        return self.score is not None

    @property
    def logit(self) -> float | None:
        """The calibrated log-odds of fake, ``log(score / (1 - score))`` (None when unreadable)."""
        if self.score is None:
            return None
        s = min(max(self.score, 1e-12), 1.0 - 1e-12)
        return math.log(s / (1.0 - s))

    @property
    def heatmap(self) -> np.ndarray | None:
        """Tile scores laid out as the tile grid, ``(rows, cols)`` float64 (None unless tiled).

        >>> Prediction("a", .9, "fake", .5, tile_scores=(.1, .9), corners=((0, 0), (0, 28))).heatmap.tolist()
        [[0.1, 0.9]]
        """
        if self.tile_scores is None or self.corners is None:
            return None
        ys = sorted({y for y, _ in self.corners})
        xs = sorted({x for _, x in self.corners})
        grid = np.full((len(ys), len(xs)), np.nan)
        for (y, x), s in zip(self.corners, self.tile_scores):
            grid[ys.index(y), xs.index(x)] = s
        return grid

    def to_record(self) -> dict[str, Any]:
        """A flat dict: the columns of an ``unmask scan`` row, ``source`` for ``path`` (no tile lists)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("tile_scores", "corners")}


class Predictions(Sequence[Prediction]):
    """The predictions of one ``Detector.score`` call, in the input's order.

    >>> ps = Predictions([Prediction("a", 0.9, "fake", 0.5), Prediction("b", None, "error", 0.5, "empty file")])
    >>> len(ps), ps[0].label, ps.scores.tolist()[1] != ps.scores.tolist()[1], len(ps.errors)
    (2, 'fake', True, 1)
    """

    def __init__(self, items: Iterable[Prediction]) -> None:
        self._items: tuple[Prediction, ...] = tuple(items)

    @overload
    def __getitem__(self, i: int) -> Prediction: ...

    @overload
    def __getitem__(self, i: slice) -> "Predictions": ...

    def __getitem__(self, i):
        return Predictions(self._items[i]) if isinstance(i, slice) else self._items[i]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Prediction]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Predictions) and self._items == other._items

    def __repr__(self) -> str:
        n_fake = sum(p.label == "fake" for p in self._items)
        return f"Predictions({len(self)} images: {n_fake} fake, {len(self.errors)} unreadable)"

    @property
    def scores(self) -> np.ndarray:
        """``(N,)`` float64 scores, NaN for unreadable images."""
        return np.array([np.nan if p.score is None else p.score for p in self._items], dtype=np.float64)

    @property
    def labels(self) -> list[str]:
        return [p.label for p in self._items]

    @property
    def errors(self) -> list[Prediction]:
        """The images that could not be read (each with its reason)."""
        return [p for p in self._items if p.error is not None]

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per image (:meth:`Prediction.to_record`), JSON-ready."""
        return [p.to_record() for p in self._items]

    def to_pandas(self) -> "pandas.DataFrame":
        """A ``pandas.DataFrame`` with one row per image (pandas is optional: imported here, only)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Predictions.to_pandas() needs pandas (pip install pandas); "
                              "to_records() gives the same rows as dicts") from None
        cols = [f.name for f in fields(Prediction) if f.name not in ("tile_scores", "corners")]
        return pd.DataFrame(self.to_records(), columns=cols)

