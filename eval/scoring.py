"""Loading evaluation sets from folders and scoring them through a detector artifact.

Folders are listed by the one walker (:func:`detector.files.list_files`), images decoded with
:func:`detector.decode.read_image` and scored by the one engine (:class:`detector.scoring.Scorer`:
the artifact's own preprocessing, tiles of many images batched together), so a score here equals
the scan's and ``detector.score_image``'s for the same file. Unreadable files are collected, never
fatal.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from detector.artifact import Detector
from detector.decode import UnreadableImage, read_image_reduced
from detector.domain import ImageStats
from detector.files import FAKE_DIRS, folder_label, list_files
from detector.progress import track
from detector.scoring import Scorer

__all__ = ["ScoredSet", "Unreadable", "Verdicts", "LoadedSets", "load_folder", "load_eval_sets", "score_images", "scorer",
           "domain_scorer"]


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str


@dataclass
class Verdicts:
    """What scoring says of a run of images: P(fake) each and, when the artifact has a domain model,
    each one's domain verdict (``in_domain``) and ``domain`` score (> 1: outside; see detector.domain)."""

    scores: np.ndarray
    in_domain: np.ndarray | None = None    # bool per image; None: the artifact has no domain model
    domain: np.ndarray | None = None

    def take(self, idx: Sequence[int]) -> "Verdicts":
        i = np.asarray(idx, dtype=np.int64)
        return Verdicts(self.scores[i], *(None if a is None else a[i] for a in (self.in_domain, self.domain)))

    @staticmethod
    def concat(parts: Sequence["Verdicts"]) -> "Verdicts":
        if not parts:
            return Verdicts(np.zeros(0))
        checked = all(p.in_domain is not None for p in parts)
        return Verdicts(np.concatenate([p.scores for p in parts]),
                        np.concatenate([p.in_domain for p in parts]) if checked else None,
                        np.concatenate([p.domain for p in parts]) if checked else None)


Score = Callable[[Sequence], "np.ndarray | Verdicts"]


@dataclass
class ScoredSet:
    """One test set: its name, label (0 real / 1 fake), files, decoded images, scores and domain verdicts."""

    name: str
    label: int
    files: list[str]
    images: list                          # decoded (C, H, W) in [0, 1], native size (None: not kept)
    scores: np.ndarray | None = None      # detector's P(fake) per image
    in_domain: np.ndarray | None = None   # bool per image; None: not scored, or no domain model
    domain_scores: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, keep: np.ndarray) -> "ScoredSet":
        """The images where ``keep`` (bool per image) is true."""
        idx = np.flatnonzero(keep)
        pick = (lambda a: None if a is None else a[idx])
        return ScoredSet(self.name, self.label, [self.files[i] for i in idx], [self.images[i] for i in idx],
                         pick(self.scores), pick(self.in_domain), pick(self.domain_scores))


def _scored(name: str, label: int, files: list, images: list, v: Verdicts | None) -> ScoredSet:
    if v is None:
        return ScoredSet(name, label, files, images)
    return ScoredSet(name, label, files, images, v.scores, v.in_domain, v.domain)


@dataclass
class LoadedSets:
    real: ScoredSet
    fakes: list[ScoredSet]
    unreadable: list[Unreadable] = field(default_factory=list)


def _verdicts(score: Score, items: Sequence) -> Verdicts:
    out = score(items)
    return out if isinstance(out, Verdicts) else Verdicts(np.asarray(out, dtype=np.float64))


def load_folder(paths: Sequence[str | os.PathLike], channels: int, progress: bool = True, desc: str = "reading",
                score: Score | None = None, keep: bool = True,
                chunk: int = 256) -> tuple[list[str], list, list[Unreadable], Verdicts | None]:
    """Decode every image under ``paths``: ``(files, images, unreadable, verdicts)``.

    With ``score`` the images are scored in chunks as they are read, each handed over as
    ``(image, ImageStats)``: the stats (colour, original size) are taken before the conversion to
    the detector's channels, as scan takes them, so the domain check sees a colour photo as colour.
    ``score`` returns scores or :class:`Verdicts` (see :func:`domain_scorer`). With ``keep=False``
    the images are then dropped (``images`` holds None per file), so memory stays bounded."""
    files = list_files(paths)
    ok_files: list[str] = []
    images: list = []
    bad: list[Unreadable] = []
    parts: list[Verdicts] = []
    pending: list = []
    for f in track(files, desc=desc, unit="file", leave=False, enabled=progress):
        try:
            d = read_image_reduced(f, channels)
        except UnreadableImage as e:
            bad.append(Unreadable(str(f), e.reason))
            continue
        ok_files.append(str(f))
        images.append(d.image if keep else None)
        if score is not None:
            pending.append((d.image, ImageStats(d.colour, d.width, d.height)))
            if len(pending) >= chunk:
                parts.append(_verdicts(score, pending))
                pending = []
    if score is not None and pending:
        parts.append(_verdicts(score, pending))
    return ok_files, images, bad, (Verdicts.concat(parts) if score is not None else None)


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name}-{k}", k + 1
    taken.add(out)
    return out


def _generator(f: str, root: Path) -> str:
    """A labelled fake's generator: the folder above its ``fake/`` (``root``'s own name at the top)."""
    parts = Path(f).relative_to(root).parts[:-1]
    k = max(j for j, part in enumerate(parts) if part.lower() in FAKE_DIRS)
    return parts[k - 1] if k > 0 else (root.resolve().name or "fake")


def load_eval_sets(real: Sequence[str | os.PathLike] = (), fake: Sequence[str | os.PathLike] = (),
                   labelled: Sequence[str | os.PathLike] = (), channels: int = 1, progress: bool = True,
                   score: Score | None = None, keep: bool = True) -> LoadedSets:
    """Real folders, fake folders (one generator each, named after the folder) and labelled folders
    holding ``real/`` + ``fake/`` (or ``0_real/`` + ``1_fake/``; CNNDetection's
    ``root/<generator>/0_real|1_fake`` layout names each generator after its folder).

    ``score`` / ``keep``: see :func:`load_folder`; with ``score`` every set comes back scored."""
    for p in [*real, *fake, *labelled]:
        if not Path(p).exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
    r_files, r_imgs, bad, r_v = load_folder(real, channels, progress, "real", score, keep) if real else ([], [], [], None)
    r_parts = [] if r_v is None else [r_v]
    fakes: dict[str, ScoredSet] = {}
    taken: set[str] = set()
    for p in fake:
        name = _unique(Path(p).resolve().name or "fake", taken)
        files, imgs, b, v = load_folder([p], channels, progress, name, score, keep)
        bad += b
        fakes[name] = _scored(name, 1, files, imgs, v)
    for root in map(Path, labelled):
        files, imgs, b, v = load_folder([root], channels, progress, root.name, score, keep)
        bad += b
        reals: list[int] = []
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(files):
            lab = folder_label(Path(f), root)
            if lab == 0:
                reals.append(i)
            elif lab == 1:
                groups.setdefault(_generator(f, root), []).append(i)
        if not reals and not groups:
            raise ValueError(f"{root}: no images under real/ or fake/ (or 0_real/ and 1_fake/) sub-folders; "
                             "use --real and --fake for unlabelled folders")
        r_files += [files[i] for i in reals]
        r_imgs += [imgs[i] for i in reals]
        if v is not None:
            r_parts.append(v.take(reals))
        for gen, idx in groups.items():
            name = _unique(gen, taken)
            fakes[name] = _scored(name, 1, [files[i] for i in idx], [imgs[i] for i in idx],
                                  None if v is None else v.take(idx))
    real_set = _scored("real", 0, r_files, r_imgs, Verdicts.concat(r_parts) if score is not None else None)
    return LoadedSets(real_set, list(fakes.values()), bad)


def score_images(det: Detector, images: Sequence[torch.Tensor], batch_size: int = 256, progress: bool = False,
                 desc: str = "scoring") -> np.ndarray:
    """P(fake) per image, equal to ``det.score_image(img)``; at most ``batch_size`` model inputs per pass."""
    it = track(images, desc=desc, unit="image", leave=False, enabled=progress)
    return np.asarray([r.score for r in Scorer(det, batch_size).score_images(it)], dtype=np.float64)


def scorer(det: Detector, batch_size: int = 256) -> Callable[[Sequence[torch.Tensor]], np.ndarray]:
    """A ``images -> scores`` function bound to ``det`` (what robustness and matrices call)."""
    return lambda images: score_images(det, images, batch_size)



def domain_scorer(det: Detector, batch_size: int = 256) -> Callable[[Sequence], Verdicts]:
    """An ``images -> Verdicts`` function bound to ``det``: scores and, when the artifact has a domain
    model, domain verdicts from the same forward pass. Items may be ``(image, ImageStats)``."""
    def score(items: Sequence) -> Verdicts:
        rs = list(Scorer(det, batch_size).score_images(items))
        v = Verdicts(np.asarray([r.score for r in rs], dtype=np.float64))
        if rs and rs[0].in_domain is not None:
            v.in_domain = np.asarray([r.in_domain for r in rs], dtype=bool)
            v.domain = np.asarray([r.domain_score for r in rs], dtype=np.float64)
        elif not rs and det.trust is not None and det.trust.domain is not None:
            v.in_domain, v.domain = np.zeros(0, dtype=bool), np.zeros(0)
        return v
    return score


@dataclass
class DomainSummary:
    """The eval's domain verdicts: how many images of each set lie outside the detector's domain and,
    under ``flag``, which ones. ``checked`` is False for an artifact without a domain model."""

    mode: str                              # flag | score | skip (as `unmask scan --out-of-domain`)
    checked: bool
    counts: dict = field(default_factory=dict)   # set name -> images out of domain
    files: list = field(default_factory=list)    # (set, path, score, domain_score), under flag

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def excluded(self) -> bool:
        """Whether the out-of-domain images were left out of the metrics."""
        return self.checked and self.mode != "score"

    def to_json(self) -> dict:
        return {"mode": self.mode, "checked": self.checked, "excluded_from_metrics": self.excluded,
                "total": self.total, "per_set": dict(self.counts),
                "files": [{"set": s, "path": p, "score": round(sc, 6), "domain_score": round(d, 4)}
                          for s, p, sc, d in self.files]}


def split_domain(sets: LoadedSets, mode: str) -> tuple[LoadedSets, DomainSummary]:
    """Count each set's out-of-domain images; under ``flag`` / ``skip`` leave them out of the sets
    (the metrics then measure only images the detector can speak about), under ``score`` keep all."""
    if mode not in ("flag", "score", "skip"):
        raise ValueError(f"out_of_domain must be flag, score or skip, not {mode!r}")
    every = [sets.real, *sets.fakes]
    checked = any(s.in_domain is not None for s in every)
    summary = DomainSummary(mode, checked)
    if not checked:
        return sets, summary
    inside = [np.ones(len(s), dtype=bool) if s.in_domain is None else s.in_domain for s in every]
    for s, ok in zip(every, inside):
        out = np.flatnonzero(~ok)
        summary.counts[s.name] = len(out)
        if mode == "flag":
            summary.files += [(s.name, s.files[i], float(s.scores[i]), float(s.domain_scores[i])) for i in out]
    if mode == "score":
        return sets, summary
    return LoadedSets(sets.real.subset(inside[0]), [s.subset(ok) for s, ok in zip(sets.fakes, inside[1:])],
                      sets.unreadable), summary
