"""Image sources: the embedded or full Fashion-MNIST, any folder of images, frames of a video.

All of them yield ``(image, label)`` where ``image`` is ``(C, S, S)`` float32 in [0, 1] produced by
:func:`detector.preprocess.fit`, and ``label`` is 0 (real), 1 (fake) or -1 (unknown); for
Fashion-MNIST the *class* labels are kept separately in ``.classes``.

Fashion-MNIST: Xiao, Rasul & Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
Machine Learning Algorithms" (2017), MIT licence.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .decode import IMAGE_EXTENSIONS, UnreadableImage, read_image
from .files import VIDEO_EXTENSIONS, folder_label, list_files
from .preprocess import fit

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FULL_FASHION_MNIST_DIRS",
    "LabelledImages",
    "load_fashion_mnist",
    "read_idx_pair",
    "find_full_fashion_mnist",
    "list_images",
    "folder_label",
    "ImageSource",
    "TensorSource",
    "FolderSource",
    "open_source",
    "load_folder_images",
    "VIDEO_EXTENSIONS",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FULL_FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
EMBEDDED = Path(__file__).parent / "_data" / "fashion_mnist_subset.npz"


@dataclass(frozen=True)
class LabelledImages:
    """uint8 images ``(N, H, W)`` with integer class labels and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    split: str
    checksum: str = field(default="")

    def __len__(self) -> int:
        return len(self.images)


# ---------------------------------------------------------------- Fashion-MNIST


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (optionally gzipped) as an array of the shape its header declares."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, OSError) as e:
        raise ValueError(f"{path}: unreadable IDX file ({e or type(e).__name__})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != math.prod(dims):
        kind = "truncated" if arr.size < math.prod(dims) else "oversized"
        raise ValueError(f"{path}: {kind} IDX file ({arr.size} values, header says {dims})")
    return arr.reshape(dims)


def _idx_file(root: Path, stem: str) -> Path | None:
    for cand in (root / stem, root / f"{stem}.gz", root / "FashionMNIST" / "raw" / stem,
                 root / "FashionMNIST" / "raw" / f"{stem}.gz", root / "raw" / stem, root / "raw" / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


def read_idx_pair(root: str | os.PathLike, prefix: str) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Read ``{prefix}-images-idx3-ubyte[.gz]`` and labels from ``root`` (plain or torchvision layout)."""
    root = Path(root)
    img_p = _idx_file(root, f"{prefix}-images-idx3-ubyte")
    lab_p = _idx_file(root, f"{prefix}-labels-idx1-ubyte")
    if img_p is None or lab_p is None:
        raise FileNotFoundError(f"no Fashion-MNIST {prefix} IDX files under {root}")
    images, labels = _read_idx(img_p), _read_idx(lab_p)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{root}: IDX image/label files do not match ({images.shape} vs {labels.shape})")
    return images, labels, [img_p, lab_p]


def find_full_fashion_mnist() -> Path | None:
    """The first folder holding the full official Fashion-MNIST, if any (Debian's package)."""
    env = os.environ.get("UNMASK_FASHION_MNIST")
    for root in ([Path(env)] if env else []) + list(FULL_FASHION_MNIST_DIRS):
        if _idx_file(root, "train-images-idx3-ubyte") and _idx_file(root, "t10k-images-idx3-ubyte"):
            return root
    return None


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None,
                       variant: str = "auto") -> LabelledImages:
    """Fashion-MNIST ``train`` or ``test`` (the official t10k split, never trained on).

    ``variant``: ``embedded`` (the subset shipped in the package), ``full`` (official IDX files at
    ``root`` or a known location; error if absent) or ``auto`` (full when present, else embedded).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if variant not in ("auto", "embedded", "full"):
        raise ValueError(f"variant must be auto, embedded or full, not {variant!r}")
    full_root = Path(root) if root is not None else (find_full_fashion_mnist() if variant != "embedded" else None)
    if variant == "full" and full_root is None:
        raise FileNotFoundError("full Fashion-MNIST not found; install Debian's dataset-fashion-mnist or give a path")
    if full_root is not None and variant != "embedded":
        images, labels, used = read_idx_pair(full_root, "train" if split == "train" else "t10k")
        digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in used)).hexdigest()
        return LabelledImages(images, labels.astype(np.int64), f"fashion-mnist:full:{full_root}", split, digest)
    with np.load(EMBEDDED) as z:
        images, labels = z[f"{split}_images"], z[f"{split}_labels"].astype(np.int64)
    meta = json.loads(EMBEDDED.with_suffix(".json").read_text())
    return LabelledImages(images, labels, "fashion-mnist:embedded", split, meta["npz_sha256"])


# ---------------------------------------------------------------- folders


def list_images(paths: Iterable[str | os.PathLike], extensions: Iterable[str] | None = IMAGE_EXTENSIONS
                ) -> list[Path]:
    """:func:`detector.files.list_files` (the one walker) as ``Path`` objects."""
    return [Path(p) for p in list_files(paths, extensions)]


# ---------------------------------------------------------------- sources


class ImageSource(Dataset):
    """A map-style dataset of ``(image (C, S, S) float [0, 1], label)``; ``name`` describes it."""

    name: str = "images"
    size: int
    channels: int


class TensorSource(ImageSource):
    """Images already in memory: uint8 ``(N, H, W)`` / ``(N, H, W, C)`` or float ``(N, C, H, W)``."""

    def __init__(self, images, labels: Sequence[int] | np.ndarray | None, size: int, channels: int,
                 name: str = "tensor", policy: str = "resize", classes: np.ndarray | None = None,
                 checksum: str = "") -> None:
        x = images if torch.is_tensor(images) else torch.from_numpy(np.array(images))
        if x.dtype == torch.uint8:
            x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
            x = x.float().div_(255.0)
        if x.dim() != 4:
            raise ValueError(f"expected a batch of images, got shape {tuple(x.shape)}")
        if x.shape[-2:] != (size, size) or x.shape[1] != channels:
            x = torch.stack([fit(im, size, channels, policy) for im in x])
        self.images = x.contiguous()  # (N, C, S, S)
        n = len(self.images)
        self.labels = torch.full((n,), -1, dtype=torch.long) if labels is None else torch.as_tensor(
            np.asarray(labels), dtype=torch.long)
        self.classes = None if classes is None else torch.as_tensor(np.asarray(classes), dtype=torch.long)
        self.size, self.channels, self.name, self.checksum = size, channels, name, checksum

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


class FolderSource(ImageSource):
    """Every image file under one or more folders; labels from ``real``/``fake`` sub-folders.

    With ``skip_errors`` an unreadable file yields ``None`` (use :func:`collate_skip_none`);
    otherwise it raises :class:`UnreadableImage`.
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], size: int, channels: int,
                 policy: str = "resize", skip_errors: bool = False) -> None:
        roots = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
        self.files: list[Path] = []
        self.labels: list[int] = []
        for root in roots:
            files = list_images([root])
            self.files += files
            self.labels += [folder_label(f, root) for f in files]
        self.size, self.channels, self.policy, self.skip_errors = size, channels, policy, skip_errors
        self.name = ",".join(str(r) for r in roots)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            img = read_image(self.files[i], channels=self.channels)
        except UnreadableImage:
            if self.skip_errors:
                return None
            raise
        return fit(img, self.size, self.channels, self.policy), self.labels[i]


def collate_skip_none(batch):
    """DataLoader collate that drops ``None`` items (unreadable files in a skip_errors source)."""
    from torch.utils.data import default_collate

    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    return default_collate(batch)


def _video_frames(path: Path, size: int, channels: int, policy: str, every: int, max_frames: int) -> torch.Tensor:
    """Every ``every``-th frame (at most ``max_frames``) through the video reader, with its default
    pixel limit; a video it refuses raises :class:`UnreadableImage` with the reader's reason."""
    from .video.read import VideoError, bgr_to_tensor, probe, stream_frames

    try:
        probe(path)
    except VideoError as e:
        raise UnreadableImage(path, f"cannot open as a video ({e.reason})") from None
    frames: list[torch.Tensor] = []
    try:
        for frame in stream_frames(path, lambda i, t: i % every == 0, stop_after=(max_frames - 1) * every):
            frames.append(fit(bgr_to_tensor(frame.image, channels), size, channels, policy))
    except VideoError as e:
        raise UnreadableImage(path, e.reason) from None
    if not frames:
        raise UnreadableImage(path, "video has no decodable frames")
    return torch.stack(frames)


def open_source(spec: str, size: int = 28, channels: int = 1, split: str = "train", policy: str = "resize",
                video_every: int = 1, max_video_frames: int = 20_000) -> ImageSource:
    """Open an image source from a string:

    * ``fashion-mnist`` (full if installed, else embedded), ``fashion-mnist:embedded``,
      ``fashion-mnist:full`` or ``fashion-mnist:/path/to/idx``;
    * a folder of images (recursive);
    * a video file (every ``video_every``-th frame, at most ``max_video_frames``).
    """
    if video_every < 1 or max_video_frames < 1:
        raise ValueError(f"video_every and max_video_frames must be >= 1, not {video_every}, {max_video_frames}")
    if spec.startswith("fashion-mnist"):
        _, _, rest = spec.partition(":")
        if rest in ("", "auto", "embedded", "full"):
            data = load_fashion_mnist(split, variant=rest or "auto")
        else:
            data = load_fashion_mnist(split, root=rest, variant="full")
        return TensorSource(data.images, np.zeros(len(data), dtype=np.int64), size, channels,
                            name=f"{data.source}:{split}", policy=policy, classes=data.labels,
                            checksum=data.checksum)
    p = Path(spec)
    if p.is_dir():
        src = FolderSource(p, size, channels, policy)
        if not len(src):
            raise ValueError(f"no image files under {p}")
        return src
    if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS:
        frames = _video_frames(p, size, channels, policy, video_every, max_video_frames)
        return TensorSource(frames, np.zeros(len(frames), dtype=np.int64), size, channels, name=f"video:{p}")
    if not p.exists():
        raise FileNotFoundError(f"image source {spec!r}: no such file or folder (or use 'fashion-mnist')")
    raise ValueError(f"image source {spec!r}: expected 'fashion-mnist', a folder of images or a video file")


def load_folder_images(dirs: Sequence[str | os.PathLike], size: int, channels: int, policy: str = "resize",
                       limit: int | None = None) -> tuple[torch.Tensor, int]:
    """All readable images under ``dirs`` fitted to the model's input ``(N, C, S, S)``; returns them
    and how many files were unreadable. The ``tile`` policy takes a native-resolution centre crop."""
    src = FolderSource(list(dirs), size, channels, "crop" if policy == "tile" else policy, skip_errors=True)
    imgs, bad = [], 0
    for i in range(len(src) if limit is None else min(limit, len(src))):
        item = src[i]
        if item is None:
            bad += 1
        else:
            imgs.append(item[0])
    if not imgs:
        raise ValueError(f"no readable images under {', '.join(map(str, dirs))}")
    return torch.stack(imgs), bad
