"""Robust image decoding: any file becomes a ``(C, H, W)`` float tensor in [0, 1] or one typed error.

Every failure is an :class:`UnreadableImage` naming the file and the reason, so a batch never
crashes because of one bad file, and the reason can be written on that file's own row.
"""
from __future__ import annotations

import errno
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "UnreadableImage",
    "read_image",
    "decode_bytes",
    "to_channels",
    "IMAGE_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_BYTES",
]

#: Formats we decode. Anything else Pillow happens to open is refused as unsupported.
SUPPORTED_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "BMP", "TIFF", "GIF"})
#: File extensions a folder scan treats as images.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif"}
)
#: Largest image accepted (pixels). Protects against decompression bombs.
DEFAULT_MAX_PIXELS = 64_000_000
#: Largest file accepted (bytes).
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


class UnreadableImage(Exception):
    """A file that cannot be turned into an image tensor. ``str(e)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike | None, reason: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path or '<bytes>'}: {reason}")

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (UnreadableImage, (self.path, self.reason))


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable / len(text) > 0.95


def read_image(
    path: str | os.PathLike,
    channels: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> torch.Tensor:
    """Decode the image file at ``path`` to a ``(channels, H, W)`` float32 tensor in [0, 1]."""
    p = Path(path)
    try:
        st = os.stat(p)  # follows symlinks: a loop or a dangling link fails here
    except FileNotFoundError:
        if os.path.islink(p):
            raise UnreadableImage(p, "dangling symbolic link (its target does not exist)") from None
        raise UnreadableImage(p, "file not found (it may have been deleted or moved)") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnreadableImage(p, "symbolic link loop (too many levels of symbolic links)") from None
        raise UnreadableImage(p, f"cannot stat file: {e.strerror or e}") from None
    if os.path.isdir(p):
        raise UnreadableImage(p, "is a directory, not an image file")
    if st.st_size == 0:
        raise UnreadableImage(p, "empty file (0 bytes)")
    if st.st_size > max_bytes:
        raise UnreadableImage(p, f"file too large ({st.st_size} bytes > limit {max_bytes})")
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except PermissionError:
        raise UnreadableImage(p, "permission denied (file is not readable)") from None
    except FileNotFoundError:
        raise UnreadableImage(p, "file not found (it may have been deleted or moved)") from None
    except OSError as e:
        raise UnreadableImage(p, f"cannot read file: {e.strerror or e}") from None
    return decode_bytes(data, channels=channels, max_pixels=max_pixels, name=p)


def decode_bytes(
    data: bytes,
    channels: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | os.PathLike | None = None,
) -> torch.Tensor:
    """Decode encoded image bytes to a ``(channels, H, W)`` float32 tensor in [0, 1]."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    if not data:
        raise UnreadableImage(name, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise UnreadableImage(name, f"decompression bomb refused: {e}") from None
    except UnidentifiedImageError:
        if _looks_like_text(data):
            raise UnreadableImage(name, "not an image: the file contains text") from None
        raise UnreadableImage(name, "not a recognised image format (unknown or corrupt header)") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types on hostile headers
        raise UnreadableImage(name, f"corrupt image header: {e}") from None
    with img:
        fmt = img.format or "unknown"
        if fmt not in SUPPORTED_FORMATS:
            raise UnreadableImage(name, f"unsupported image format {fmt}")
        w, h = img.size
        if w <= 0 or h <= 0:
            raise UnreadableImage(name, f"image has zero size ({w}x{h})")
        if w * h > max_pixels:
            raise UnreadableImage(
                name, f"decompression bomb refused: {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}"
            )
        try:
            img.seek(0)  # first frame of an animated GIF / WebP / multi-page TIFF
            img.load()
            img = ImageOps.exif_transpose(img)
            arr = _to_float_array(img)
        except UnreadableImage:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as e:
            msg = str(e) or type(e).__name__
            if "truncated" in msg.lower() or isinstance(e, EOFError):
                raise UnreadableImage(name, f"truncated image ({fmt}): {msg}") from None
            raise UnreadableImage(name, f"corrupt image data ({fmt}): {msg}") from None
    if not np.isfinite(arr).all():
        raise UnreadableImage(name, "image contains non-finite (NaN or infinite) values")
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)  # (C', H, W)
    return to_channels(t, channels)


def _to_float_array(img: Image.Image) -> np.ndarray:
    """Pillow image of any mode -> (H, W, 1 or 3) float32 in [0, 1]; alpha is composited on white."""
    mode = img.mode
    if mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.uint16).astype(np.float32) / 65535.0
        return arr[..., None]
    if mode == "I":
        arr = np.asarray(img, dtype=np.int64)
        # 32-bit integer images are almost always 16-bit data widened by the decoder.
        scale = 65535.0 if arr.max(initial=0) > 255 or arr.min(initial=0) < 0 else 255.0
        return (np.clip(arr, 0, scale).astype(np.float32) / np.float32(scale))[..., None]
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        finite = arr[np.isfinite(arr)]
        peak = float(np.abs(finite).max(initial=0.0))
        if peak > 255.0:
            arr = arr / peak
        elif peak > 1.0:
            arr = arr / 255.0
        return np.clip(arr, 0.0, 1.0)[..., None]
    if mode in ("1", "L"):
        return (np.asarray(img.convert("L"), dtype=np.float32) / 255.0)[..., None]
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:4]
        rgb = rgba[..., :3] * alpha + (1.0 - alpha)  # composite on white
        if mode in ("LA", "La"):
            return rgb[..., :1]
        return rgb
    if mode == "P":
        pal = img.convert("RGB")
        return np.asarray(pal, dtype=np.float32) / 255.0
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def to_channels(img: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert a ``(C, H, W)`` image with C in {1, 3} to ``channels`` (grey uses ITU-R 601 luma)."""
    c = img.shape[0]
    if c == channels:
        return img.contiguous()
    if c == 1 and channels == 3:
        return img.expand(3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=img.dtype, device=img.device)
        return (img * w[:, None, None]).sum(0, keepdim=True).clamp_(0.0, 1.0)
    raise ValueError(f"cannot convert {c} channels to {channels}")
