"""Face search on a shrunk frame (``detect_faces``' ``search_side``) still finds real faces, in
full-resolution coordinates, on a real photo and on frames of a real clip upscaled to 1080p."""
from __future__ import annotations

import inspect
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.video import detect_faces

# the default search side, read from the signature so the test holds wherever detect_faces lives
FACE_SEARCH_SIDE = inspect.signature(detect_faces).parameters["search_side"].default

DATA = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian's opencv-doc (.ci/run installs it)


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return inter / (aw * ah + bw * bh - inter)


@pytest.mark.skipif(not (DATA / "messi5.jpg").exists(), reason="needs opencv-doc's messi5.jpg")
@pytest.mark.parametrize("up", [1, 3])
def test_face_found_in_frame_pixels_on_a_real_photo(up):
    """messi5.jpg (548 px, face at about x 226-264, y 94-132) as is and 3x larger (1644 px, searched
    at 480 px): the face box comes back in the frame's own pixels."""
    img = cv2.imread(str(DATA / "messi5.jpg"))
    img = cv2.resize(img, (img.shape[1] * up, img.shape[0] * up), interpolation=cv2.INTER_CUBIC)
    assert max(img.shape[:2]) > FACE_SEARCH_SIDE  # the shrunk search is what runs
    truth = (226 * up, 94 * up, 38 * up, 38 * up)
    assert max(_iou(b, truth) for b in detect_faces(img)) > 0.6


@pytest.mark.skipif(not (DATA / "Megamind.avi").exists(), reason="needs opencv-doc's Megamind.avi")
def test_faces_of_a_real_clip_at_1080p_match_the_full_search():
    """Every 30th frame of Megamind.avi (720x528), pillarboxed to 1920x1080 as footage would be:
    the shrunk search finds a face wherever the full-resolution search of the original frame
    does, at the same place (IoU > 0.5 with one of its boxes)."""
    cap = cv2.VideoCapture(str(DATA / "Megamind.avi"))
    s = 1080 / 528
    w = round(720 * s)
    x0 = (1920 - w) // 2
    i = checked = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % 30 == 15:
            big = np.zeros((1080, 1920, 3), np.uint8)
            big[:, x0:x0 + w] = cv2.resize(frame, (w, 1080), interpolation=cv2.INTER_LINEAR)
            ref = [(x * s + x0, y * s, bw * s, bh * s) for x, y, bw, bh in detect_faces(frame, search_side=None)]
            found = detect_faces(big)
            if ref:
                checked += 1
                assert any(_iou(r, b) > 0.5 for r in ref for b in found), (i, ref, found)
        i += 1
    cap.release()
    assert checked >= 6
