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
from detector.decode import UnreadableImage, read_image
from detector.files import FAKE_DIRS, folder_label, list_files
from detector.progress import track
from detector.scoring import Scorer

__all__ = ["ScoredSet", "Unreadable", "LoadedSets", "load_folder", "load_eval_sets", "score_images", "scorer"]


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str


@dataclass
class ScoredSet:
    """One test set: its name, label (0 real / 1 fake), files, decoded images and scores."""

    name: str
    label: int
    files: list[str]
    images: list                          # decoded (C, H, W) in [0, 1], native size (None: not kept)
    scores: np.ndarray | None = None      # detector's P(fake) per image

    def __len__(self) -> int:
        return len(self.files)


@dataclass
class LoadedSets:
    real: ScoredSet
    fakes: list[ScoredSet]
    unreadable: list[Unreadable] = field(default_factory=list)


def load_folder(paths: Sequence[str | os.PathLike], channels: int, progress: bool = True, desc: str = "reading",
                score: Callable[[Sequence[torch.Tensor]], np.ndarray] | None = None, keep: bool = True,
                chunk: int = 256) -> tuple[list[str], list, list[Unreadable], np.ndarray | None]:
    """Decode every image under ``paths``: ``(files, images, unreadable, scores)``.

    With ``score`` the images are scored in chunks as they are read; with ``keep=False`` they are
    then dropped (``images`` holds None per file), so memory stays bounded on large folders.
    """
    files = list_files(paths)
    ok_files: list[str] = []
    images: list = []
    bad: list[Unreadable] = []
    scores: list[float] = []
    pending: list[torch.Tensor] = []
    for f in track(files, desc=desc, unit="file", leave=False, enabled=progress):
        try:
            im = read_image(f, channels=channels)
        except UnreadableImage as e:
            bad.append(Unreadable(str(f), e.reason))
            continue
        ok_files.append(str(f))
        images.append(im if keep else None)
        if score is not None:
            pending.append(im)
            if len(pending) >= chunk:
                scores += score(pending).tolist()
                pending = []
    if score is not None and pending:
        scores += score(pending).tolist()
    return ok_files, images, bad, (np.asarray(scores, dtype=np.float64) if score is not None else None)


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name}-{k}", k + 1
    taken.add(out)
    return out


def load_eval_sets(real: Sequence[str | os.PathLike] = (), fake: Sequence[str | os.PathLike] = (),
                   labelled: Sequence[str | os.PathLike] = (), channels: int = 1, progress: bool = True,
                   score: Callable[[Sequence[torch.Tensor]], np.ndarray] | None = None, keep: bool = True
                   ) -> LoadedSets:
    """Real folders, fake folders (one generator each, named after the folder) and labelled folders
    holding ``real/`` + ``fake/`` (or ``0_real/`` + ``1_fake/``; CNNDetection's
    ``root/<generator>/0_real|1_fake`` layout names each generator after its folder).

    ``score`` / ``keep``: see :func:`load_folder`; with ``score`` every set comes back scored."""
    for p in [*real, *fake, *labelled]:
        if not Path(p).exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
    empty = np.zeros(0) if score is not None else None
    r_files, r_imgs, bad, r_sc = (load_folder(real, channels, progress, "real", score, keep) if real
                                  else ([], [], [], empty))
    r_scores = [] if r_sc is None else r_sc.tolist()
    fakes: dict[str, ScoredSet] = {}
    taken: set[str] = set()
    for p in fake:
        name = _unique(Path(p).resolve().name or "fake", taken)
        files, imgs, b, sc = load_folder([p], channels, progress, name, score, keep)
        bad += b
        fakes[name] = ScoredSet(name, 1, files, imgs, sc)
    for root in map(Path, labelled):
        files, imgs, b, sc = load_folder([root], channels, progress, root.name, score, keep)
        bad += b
        groups: dict[str, tuple[list, list, list]] = {}
        n_labelled = 0
        for i, (f, im) in enumerate(zip(files, imgs)):
            lab = folder_label(Path(f), root)
            if lab == 0:
                r_files.append(f)
                r_imgs.append(im)
                if sc is not None:
                    r_scores.append(float(sc[i]))
            elif lab == 1:
                parts = Path(f).relative_to(root).parts[:-1]
                k = max(j for j, part in enumerate(parts) if part.lower() in FAKE_DIRS)
                gen = parts[k - 1] if k > 0 else (root.resolve().name or "fake")
                g = groups.setdefault(gen, ([], [], []))
                g[0].append(f)
                g[1].append(im)
                if sc is not None:
                    g[2].append(float(sc[i]))
            else:
                continue
            n_labelled += 1
        if n_labelled == 0:
            raise ValueError(f"{root}: no images under real/ or fake/ (or 0_real/ and 1_fake/) sub-folders; "
                             "use --real and --fake for unlabelled folders")
        for gen, (fs, ims, scs) in groups.items():
            name = _unique(gen, taken)
            fakes[name] = ScoredSet(name, 1, fs, ims, np.asarray(scs) if score is not None else None)
    real_set = ScoredSet("real", 0, r_files, r_imgs, np.asarray(r_scores) if score is not None else None)
    return LoadedSets(real_set, [s for s in fakes.values()], bad)


def score_images(det: Detector, images: Sequence[torch.Tensor], batch_size: int = 256, progress: bool = False,
                 desc: str = "scoring") -> np.ndarray:
    """P(fake) per image, equal to ``det.score_image(img)``; at most ``batch_size`` model inputs per pass."""
    it = track(images, desc=desc, unit="image", leave=False, enabled=progress)
    return np.asarray([r.score for r in Scorer(det, batch_size).score_images(it)], dtype=np.float64)


def scorer(det: Detector, batch_size: int = 256) -> Callable[[Sequence[torch.Tensor]], np.ndarray]:
    """A ``images -> scores`` function bound to ``det`` (what robustness and matrices call)."""
    return lambda images: score_images(det, images, batch_size)

