"""Faces in a frame: OpenCV's bundled Haar cascade and the square crop around each face.

Viola & Jones, "Rapid object detection using a boosted cascade of simple features", CVPR 2001;
the crop is ``margin`` x the face box's larger side (x1.3 as in FaceForensics++, Roessler et al.,
ICCV 2019).
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["FACE_SEARCH_SIDE", "face_crop_box", "detect_faces"]


def face_crop_box(x: int, y: int, w: int, h: int, frame_w: int, frame_h: int, margin: float = 1.3
                  ) -> tuple[int, int, int, int]:
    """A face box ``(x, y, w, h)`` -> the square crop ``(y, x, side, side)`` around its centre.

    ``side = round(margin * max(w, h))`` (FaceForensics++ uses 1.3), capped at the frame's shorter
    side; the square is shifted (not shrunk) to stay inside the frame.
    """
    side = int(round(max(w, h) * margin))
    side = max(1, min(side, frame_w, frame_h))
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    x0 = min(max(x0, 0), frame_w - side)
    y0 = min(max(y0, 0), frame_h - side)
    return (y0, x0, side, side)


_CASCADE = None


def _cascade():
    global _CASCADE
    if _CASCADE is None:
        import cv2

        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        c = cv2.CascadeClassifier(path)
        if c.empty():
            raise RuntimeError(f"cannot load OpenCV's face cascade from {path}")
        _CASCADE = c
    return _CASCADE


#: Faces are searched on a copy of the frame shrunk to this long side (issue 17). The cascade's cost
#: grows with the pixels searched (about 5x less at 1080p); its smallest window is 24 px, so a
#: 1920-px frame finds faces from 24 * 1920 / 480 = 96 px up (FaceForensics++ faces are larger).
FACE_SEARCH_SIDE = 480


def detect_faces(bgr: np.ndarray, min_size: int = 24, search_side: int | None = FACE_SEARCH_SIDE
                 ) -> list[tuple[int, int, int, int]]:
    """Haar-cascade face boxes ``(x, y, w, h)`` in a BGR frame's own pixels, largest first.

    A frame longer than ``search_side`` is searched shrunk to it (area interpolation) and the boxes
    are scaled back, so crops still come from the full-resolution frame; ``None``: full frame."""
    import cv2

    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    f = min(1.0, search_side / max(gray.shape)) if search_side else 1.0
    if f < 1.0:
        gray = cv2.resize(gray, (max(1, round(gray.shape[1] * f)), max(1, round(gray.shape[0] * f))),
                          interpolation=cv2.INTER_AREA)
    m = max(1, round(min_size * f))
    found = _cascade().detectMultiScale(cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=5, minSize=(m, m))
    boxes = [tuple(int(round(v / f)) for v in b) for b in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: -b[2] * b[3])
