"""The one folder walker: which files a scan, an evaluation or a training folder sees.

Every stage that turns "these paths" into "these files" calls :func:`list_files`, so a scan, an
evaluation and a training run over the same folder see the same files in the same order:

* explicitly named paths are kept as given (a file, a missing path, a dangling link: the reader
  reports why it cannot be read), whatever their extension;
* folders are walked recursively, entries sorted by name (a sub-folder's files come at the
  sub-folder's place in that order), keeping files whose extension is in ``extensions``;
* symbolic links to folders are not followed (they could loop or leave the tree); they are
  appended to ``skipped``; an unlistable folder is returned itself, so its row can say why;
* a path listed twice is kept once (first place).

Folder labels follow CNNDetection's layout (Wang et al., "CNN-generated images are surprisingly
easy to spot... for now", CVPR 2020): files under ``real``/``0_real`` are real, under
``fake``/``1_fake`` fake.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .decode import IMAGE_EXTENSIONS

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "REAL_DIRS", "FAKE_DIRS", "list_files", "folder_label"]

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})
REAL_DIRS = frozenset({"real", "0_real"})
FAKE_DIRS = frozenset({"fake", "1_fake"})


def list_files(paths: Iterable[str | os.PathLike], extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
               skipped: list | None = None) -> list[str]:
    """Files under ``paths`` in a stable order (see the module docstring); ``extensions=None`` keeps
    every file. Paths come back as strings, spelled as given (``./a.png`` stays ``./a.png``)."""
    exts = None if extensions is None else {e.lower() for e in extensions}
    seen: set[str] = set()
    out: list[str] = []

    def add(p: str) -> None:
        if p not in seen:
            seen.add(p)
            out.append(p)

    def walk(d: str) -> None:
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            add(d)
            return
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                walk(e.path)
                continue
            if e.is_symlink() and os.path.isdir(e.path):
                if skipped is not None:
                    skipped.append(e.path)
                continue
            if exts is None or os.path.splitext(e.name)[1].lower() in exts:
                add(e.path)

    for p in map(os.fspath, paths):
        if os.path.isdir(p):
            walk(p)
        else:
            add(p)
    return out


def folder_label(path: str | os.PathLike, root: str | os.PathLike) -> int:
    """0 if the path lies under a ``real``/``0_real`` folder, 1 under ``fake``/``1_fake``, else -1
    (the innermost such folder below ``root`` decides)."""
    path, root = Path(path), Path(root)
    try:
        parts = path.relative_to(root).parts[:-1]
    except ValueError:
        parts = path.parts[:-1]
    for part in reversed(parts):
        low = part.lower()
        if low in REAL_DIRS:
            return 0
        if low in FAKE_DIRS:
            return 1
    return -1
