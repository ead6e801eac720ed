"""Reduced (DCT-domain) JPEG decoding for the resize / crop policies: same geometry, bounded difference.

The bound. A 1/s decode gives each s x s block's mean (1/8: the DC term) or libjpeg's reduced
inverse DCT (1/2, 1/4), rounded to 8 bits; ``fit_reduced`` then applies the same triangle filter
as a full decode's antialiased resize, over the exact region the picture occupies, and
``REDUCED_MARGIN`` = 3 keeps >= 3 decoded pixels per model pixel on each side. What differs is the
block averaging inside the filter's footprint, the 8-bit rounding of the decoded pixels (+-0.5/255,
averaged over >= 9 of them) and the decoder's chroma handling. Measured on 16 of OpenCV's sample
photos (1-3 MP, all EXIF orientations, 1 and 3 channels, 28 and 64 px, resize and crop), the
largest model-input difference was 4.0/255 and the largest per-image mean 0.5/255. Bounds
asserted here, with headroom: **max |dx| <= 6/255, mean |dx| <= 1/255** on model inputs, and on
the detector's probability **|dp| <= 0.01** for the trained test detector (measured: at most
0.0018 over the same 16 photos at 1-12 MP, both policies). A model-input difference of that size
is below what re-saving a photo as a quality-90 JPEG already does to its pixels.
"""
from __future__ import annotations

import io
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector.decode import UnreadableImage, read_image, read_image_reduced
from detector.preprocess import REDUCED_MARGIN, fit, fit_reduced, reduced_side, resize, resize_box

DATA = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian's opencv-doc (.ci/run installs it)
PHOTOS = sorted(DATA.glob("*.jpg"))[:16] if DATA.is_dir() else []
needs_photos = pytest.mark.skipif(len(PHOTOS) < 8, reason="needs opencv-doc's sample photos (.ci/run installs it)")

MAX_ABS, MEAN_ABS, MAX_SCORE = 6 / 255, 1 / 255, 0.01


def _jpeg(src: Path, megapixels: float, orientation: int, rng: random.Random) -> bytes:
    """A real photo upscaled to about ``megapixels`` (sides not multiples of 16) as a quality-90
    JPEG with an EXIF orientation tag."""
    im = Image.open(src).convert("RGB")
    f = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
    im = im.resize((int(im.width * f) // 16 * 16 + rng.randint(1, 15),
                    int(im.height * f) // 16 * 16 + rng.randint(1, 15)), Image.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def test_resize_box_over_the_whole_image_is_resize():
    torch.manual_seed(0)
    for h, w, s in ((300, 200, 28), (57, 91, 28), (20, 30, 28), (640, 480, 64)):
        x = torch.rand(3, h, w)
        assert torch.allclose(resize_box(x, s, s, (0.0, 0.0, float(w), float(h))), resize(x, s, s), atol=1e-5)


def test_default_and_small_files_decode_in_full(tmp_path):
    """No ``min_side``: unchanged. A JPEG too small to halve, or a PNG, is decoded in full even with it."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    for fmt, name in (("JPEG", "a.jpg"), ("PNG", "a.png")):
        Image.fromarray(arr).save(tmp_path / name, fmt)
        full = read_image(tmp_path / name)
        d = read_image_reduced(tmp_path / name, min_side=reduced_side(28))  # needs 84 px: 90 // 84 < 2
        assert d.scale == 1 and torch.equal(d.image, full) and (d.width, d.height) == (90, 120)
        assert torch.equal(fit_reduced(d, 28, 3, "crop"), fit(full, 28, 3, "crop"))
    big = tmp_path / "b.jpg"
    Image.fromarray(np.kron(arr, np.ones((8, 8, 1), np.uint8))).save(big, "JPEG")  # 960 x 720
    assert read_image(big, min_side=84).shape == (3, 120, 90)  # 1/8
    assert read_image(big).shape == (3, 960, 720)


@needs_photos
def test_reduced_inputs_match_full_decode_on_real_photos(tmp_path):
    rng = random.Random(0)
    worst, worst_mean, scales = 0.0, 0.0, set()
    for k, src in enumerate(PHOTOS):
        path = tmp_path / f"{k:02d}.jpg"
        path.write_bytes(_jpeg(src, rng.uniform(1.0, 3.0), 1 + k % 8, rng))
        full = read_image(path)  # (3, H, W), oriented
        for channels, size, policy in ((1, 28, "resize"), (3, 28, "crop"), (3, 64, "resize"), (1, 64, "crop")):
            d = read_image_reduced(path, channels, min_side=reduced_side(size))
            assert (d.width, d.height) == (full.shape[2], full.shape[1])  # the full, oriented size
            assert min(d.image.shape[1:]) >= REDUCED_MARGIN * size
            scales.add(d.scale)
            diff = (fit_reduced(d, size, channels, policy) - fit(full, size, channels, policy)).abs()
            worst, worst_mean = max(worst, diff.max().item()), max(worst_mean, diff.mean().item())
    assert scales >= {4, 8}  # the reduced path was really taken, at more than one scale
    assert worst <= MAX_ABS and worst_mean <= MEAN_ABS, (worst * 255, worst_mean * 255)


@needs_photos
@pytest.mark.parametrize("policy", ["resize", "crop"])
def test_scan_scores_within_bound_of_full_decode(tmp_path, tiny_detector, policy):
    """The scan (reduced decode) vs full decode + the artifact's preprocessing, same detector."""
    from detector.artifact import Detector, load
    from detector.scan import ScanConfig, read_rows, scan

    base = load(tiny_detector)
    det = Detector(base.net, replace(base.spec, policy=policy))
    rng = random.Random(1)
    for k, src in enumerate(PHOTOS[:10]):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / f"{k:02d}.jpg").write_bytes(_jpeg(src, rng.uniform(1.0, 2.0), 1 + (3 * k) % 8, rng))
    scan([tmp_path / "in"], det, tmp_path / "out.csv", ScanConfig(workers=0, progress=False), log=lambda m: None)
    rows = read_rows(tmp_path / "out.csv")
    assert len(rows) == 10 and all(r["label"] != "error" for r in rows)
    for r in rows:
        full = read_image(r["path"], channels=1)
        assert (int(r["width"]), int(r["height"])) == (full.shape[2], full.shape[1])
        ref = float(det.score_batch(fit(full, 28, 1, policy).unsqueeze(0))[0])
        assert abs(float(r["score"]) - ref) <= MAX_SCORE, (r["path"], r["score"], ref)


def test_pixel_limit_still_refuses_before_a_reduced_decode(tmp_path):
    """The decompression-bomb limit applies to the declared size, not to the reduced one."""
    p = tmp_path / "big.jpg"
    Image.new("RGB", (1200, 1000), (90, 120, 150)).save(p, "JPEG")
    assert read_image_reduced(p, max_pixels=2_000_000, min_side=84).scale == 8
    with pytest.raises(UnreadableImage, match="decompression bomb refused"):
        read_image_reduced(p, max_pixels=1_000_000, min_side=84)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_with_reduced_decode(tmp_path, orientation):
    """A marked corner lands where a full decode puts it, and the size is the oriented full size."""
    arr = np.full((720, 1000, 3), 255, np.uint8)
    arr[:240, :240] = 0  # black top-left corner block in the stored picture
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "o.jpg"
    Image.fromarray(arr).save(p, "JPEG", quality=95, exif=exif.tobytes())
    full = read_image(p, channels=1)
    d = read_image_reduced(p, channels=1, min_side=84)
    assert d.scale == 8 and (d.width, d.height) == (full.shape[2], full.shape[1])
    a, b = fit(full, 28, 1, "resize"), fit_reduced(d, 28, 1, "resize")
    assert (a - b).abs().max().item() <= MAX_ABS
    assert torch.equal(a[0] < 0.5, b[0] < 0.5)  # the dark corner is in the same place
