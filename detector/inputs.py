"""What people hold -> a lazy stream of images to score: the input side of :mod:`detector.api`.

``Detector.score(x)`` accepts what a notebook or a script has at hand (the kinds Hugging Face's
``pipeline`` and timm's transforms take): a file path, a folder, a Pillow image, a NumPy array, a
torch tensor, a batch of arrays or tensors, or a list of any of these. :func:`expand` turns that into
a stream of :class:`Item`: either a file path, left for the scoring engine to read exactly as
``unmask scan`` does (:func:`detector.scoring.file_inputs`, reduced-size JPEG decoding included), or
an in-memory image converted to ``(C, H, W)`` float32 in [0, 1] by the conversion a file gets
(:func:`detector.decode.from_pil` for 8-bit pixels). The stream is lazy: a folder is listed by the
one walker (:func:`detector.files.list_files`, same files and order as a scan) and each file is
read only when its batch is scored, so memory stays flat whatever the folder holds.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence, Union

import numpy as np
import torch
from PIL import Image

from .decode import IMAGE_EXTENSIONS, display_path, from_pil, to_channels
from .domain import ImageStats

__all__ = ["ACCEPTED", "ImageInput", "Item", "expand", "array_image"]

#: What :func:`expand` (and so ``Detector.score``) accepts, as the TypeError names it.
ACCEPTED = ("a path (str or os.PathLike) to an image file or a folder", "a PIL.Image.Image",
            "a NumPy array (H, W), (H, W, C) or a batch (N, H, W, C); uint8, or float in [0, 1]; C = 1, 3 or 4",
            "a torch tensor (H, W), (C, H, W) or a batch (N, C, H, W); uint8, or float in [0, 1]; C = 1, 3 or 4",
            "a list or tuple of any of these")

#: The kinds of input :func:`expand` takes (for type hints; lists may nest and mix them).
ImageInput = Union[str, "os.PathLike[str]", np.ndarray, torch.Tensor, Image.Image, Sequence["ImageInput"]]


@dataclass(frozen=True)
class Item:
    """One image to score: a file ``path`` to read, or an ``image`` already in memory."""

    source: str                          # the display path, or "<array 2>", "<tensor 0, item 5>", "<PIL image 1>"
    path: str | None = None              # a file, read by the scoring engine as a scan would
    image: torch.Tensor | None = None    # (C, H, W) float32 in [0, 1], C = 1 or 3
    stats: ImageStats | None = None      # the in-memory image's colour and size before channel conversion


def expand(x: Any, channels: int = 3, extensions=IMAGE_EXTENSIONS) -> Iterator[Item]:
    """``x`` (see :data:`ACCEPTED`) -> its images, in order, in-memory ones with ``channels`` channels
    (the detector's). A wrong type raises ``TypeError`` naming the accepted kinds before anything is
    read; a malformed array raises ``ValueError`` naming its shape or values when its turn comes."""
    many = isinstance(x, (list, tuple))
    top = list(x) if many else [x]
    for i, v in enumerate(top):  # every kind is checked now, not when the stream gets there
        _kind(v, f"item {i}" if many else "input")
    return (it for i, v in enumerate(top) for it in _items(v, str(i), channels, extensions))


def _kind(v: Any, where: str) -> str:
    if isinstance(v, (str, os.PathLike)):
        return "path"
    if isinstance(v, np.ndarray):
        return "array"
    if isinstance(v, torch.Tensor):
        return "tensor"
    if isinstance(v, Image.Image):
        return "PIL image"
    if isinstance(v, (list, tuple)):
        for j, w in enumerate(v):
            _kind(w, f"{where}[{j}]")
        return "list"
    raise TypeError(f"cannot score {where} of type {type(v).__module__}.{type(v).__qualname__}; accepted: "
                    + "; ".join(ACCEPTED))


def _items(v: Any, label: str, channels: int, extensions) -> Iterator[Item]:
    """The images of one input ``v``; ``label`` is its position ("2", or "2.0" inside a nested list)."""
    kind = _kind(v, f"item {label}")
    if kind == "path":
        from . import files as files_  # looked up at call time, like the scan (tests hook the walker)

        p = os.fspath(v)
        for f in (files_.list_files([p], extensions) if os.path.isdir(p) else [p]):
            yield Item(display_path(f), path=f)
    elif kind == "PIL image":
        yield _memory_item(f"<PIL image {label}>", from_pil(v, 3), channels)
    elif kind in ("array", "tensor"):
        batch = _is_batch(v)
        for j, img in enumerate(v if batch else [v]):
            yield _memory_item(f"<{kind} {label}, item {j}>" if batch else f"<{kind} {label}>",
                               array_image(img, 3), channels)
    else:
        for j, w in enumerate(v):
            yield from _items(w, f"{label}.{j}", channels, extensions)


def _memory_item(source: str, rgb: torch.Tensor, channels: int) -> Item:
    """An in-memory image as 3 channels -> its :class:`Item`: the domain check's stats are taken before
    the conversion to the detector's ``channels`` (a colour photo given to a grey detector stays colour
    to the guard, as a file does)."""
    return Item(source, image=to_channels(rgb, channels), stats=ImageStats.of(rgb))


def _is_batch(v) -> bool:
    """A 4-D array is a batch (NHWC for NumPy, NCHW for torch); 2-D and 3-D are one image."""
    if v.ndim == 4:
        return True
    if v.ndim in (2, 3):
        return False
    raise ValueError(f"an image array must have 2 (H, W), 3 (one image) or 4 (a batch) dimensions, "
                     f"got shape {tuple(v.shape)}")


def array_image(a: np.ndarray | torch.Tensor, channels: int = 3) -> torch.Tensor:
    """One NumPy ``(H, W)`` / ``(H, W, C)`` or torch ``(H, W)`` / ``(C, H, W)`` image, uint8 or float in
    [0, 1], C in {1, 3, 4} -> ``(channels, H, W)`` float32 in [0, 1]. 8-bit pixels go through
    :func:`detector.decode.from_pil` (exactly what a PNG of them gives); alpha is composited on white."""
    is_np = isinstance(a, np.ndarray)
    t = torch.from_numpy(np.require(a, requirements=("C", "W"))) if is_np else a.detach().cpu()
    if t.dim() == 2:
        t = t.unsqueeze(0 if not is_np else -1)
    layout = "(H, W, C)" if is_np else "(C, H, W)"
    chw = t.permute(2, 0, 1) if is_np else t  # (C, H, W)
    if chw.dim() != 3 or chw.shape[0] not in (1, 3, 4) or min(chw.shape[1:]) < 1:
        raise ValueError(f"an image array must be (H, W) or {layout} with C = 1, 3 or 4, got shape "
                         f"{tuple(a.shape)}")
    if chw.dtype == torch.uint8:
        hwc = chw.permute(1, 2, 0).numpy()
        return from_pil(Image.fromarray(hwc[..., 0] if hwc.shape[2] == 1 else hwc), channels)
    if not chw.is_floating_point():
        raise ValueError(f"image arrays must be uint8 or float in [0, 1], got dtype {a.dtype}")
    x = chw.float()
    lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
        raise ValueError(f"float image values must lie in [0, 1], got min {lo:.4g}, max {hi:.4g} "
                         "(divide 8-bit values by 255, or pass a uint8 array)")
    if x.shape[0] == 4:  # composite on white, in the order decode._to_float_array does it
        alpha = x[3]
        x = x[:3] * alpha + (1.0 - alpha)
    return to_channels(x, channels)
