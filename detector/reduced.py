"""Reduced-size JPEG decoding: the DCT-domain scale a policy needs, and where the picture lies.

A baseline or progressive JPEG stores 8x8 DCT blocks; libjpeg's scaled inverse DCT produces the
picture at 1/2, 1/4 or 1/8 of its size directly (at 1/8 each block's DC term, i.e. its mean), at a
fraction of a full decode's cost (IJG libjpeg ``scale_num/scale_denom``; Pillow ``Image.draft``).
:func:`detector.decode.read_image_reduced` uses it when the caller only needs ``min_side`` pixels
per side (the ``resize`` / ``crop`` policies, see :func:`detector.preprocess.reduced_side`).

A 1/s decode of a ``w``-pixel-wide picture has ``ceil(w/s)`` columns: the last also covers the
encoder's edge padding, so the picture itself spans ``w/s`` columns from its origin corner, and
EXIF orientation can move that corner to any side. :func:`content_box` says exactly where, so the
resampling (:func:`detector.preprocess.fit_reduced`) sees the same geometry as a full decode.
"""
from __future__ import annotations

from PIL import Image

__all__ = ["draft_jpeg", "content_box"]

_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}  # the mapping of PIL.ImageOps.exif_transpose
_SWAPS = {5, 6, 7, 8}


def draft_jpeg(img: Image.Image, fmt: str, min_side: int | None) -> int:
    """Ask Pillow's JPEG decoder for the smallest DCT scale (1/2, 1/4, 1/8) that keeps both sides
    ``>= min_side`` and return that ``s`` (1: a full decode, nothing changed). Call it after
    ``seek(0)`` and before ``load()``. Only plain JPEG: MPO's ``seek`` rebuilds the decoder tiles."""
    if fmt != "JPEG" or not min_side or min(img.size) // int(min_side) < 2:
        return 1
    w0 = img.size[0]
    got = img.draft(None, (int(min_side), int(min_side)))  # (mode, (0, 0, w0 / s, h0 / s)) or None
    return 1 if got is None else int(round(w0 / got[1][2]))


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation ``ImageOps.exif_transpose`` will apply (1 when none or unreadable)."""
    try:
        o = img.getexif().get(0x0112, 1)
        return int(o) if o in _TRANSPOSE else 1
    except Exception:  # noqa: BLE001 - broken EXIF: exif_transpose ignores it too
        return 1


def content_box(img: Image.Image, scale: int, w: int, h: int
                ) -> tuple[tuple[int, int] | None, tuple[float, float, float, float] | None]:
    """For a ``w x h`` picture decoded at 1/``scale`` into ``img`` (not yet oriented): its full size
    after EXIF orientation and its region ``(x0, y0, x1, y1)`` in the oriented decoded image's
    pixels. ``(None, None)`` for a full decode (``scale`` 1: the whole image is the picture)."""
    if scale == 1:
        return None, None
    dw, dh = img.size
    cw, ch = w / scale, h / scale
    o = _orientation(img)
    if o == 1:
        return (w, h), (0.0, 0.0, cw, ch)
    probe = Image.new("L", (2, 2))  # where does the origin corner (the picture's side) end up?
    probe.putpixel((0, 0), 255)
    probe = probe.transpose(_TRANSPOSE[o])
    cx, cy = next((x, y) for y in range(2) for x in range(2) if probe.getpixel((x, y)) == 255)
    if o in _SWAPS:
        dw, dh, cw, ch, w, h = dh, dw, ch, cw, h, w
    x0, y0 = (0.0 if cx == 0 else dw - cw), (0.0 if cy == 0 else dh - ch)
    return (w, h), (x0, y0, x0 + cw, y0 + ch)
