"""detector.decode: every format, every pixel mode, EXIF orientation, and every kind of bad input.

All images are generated here (no committed binaries). Values are checked exactly for lossless
formats and within a small tolerance for JPEG / lossy WebP.
"""
from __future__ import annotations

import io
import os
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from detector import decode
from detector.data import FolderSource
from detector.decode import UnreadableImage, decode_bytes, display_path, read_image, to_channels
from tests.corpus import enc

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)  # (H, W, 3): 6 rows, 8 columns


def chw(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> expected float (3, H, W)."""
    return torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1)


def smooth_rgb(h: int = 32, w: int = 32) -> np.ndarray:
    """A smooth gradient: lossy codecs reproduce it closely."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 128)], -1).astype(np.uint8)


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
def test_lossless_formats_decode_exactly(tmp_path, fmt):
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(enc(Image.fromarray(RGB), fmt))
    t = read_image(path)
    assert t.dtype == torch.float32 and t.shape == (3, 6, 8)
    assert torch.equal(t, chw(RGB))


def test_webp_lossless_decodes_exactly(tmp_path):
    path = tmp_path / "img.webp"
    path.write_bytes(enc(Image.fromarray(RGB), "WEBP", lossless=True))
    assert torch.equal(read_image(path), chw(RGB))


@pytest.mark.parametrize("fmt,kw", [("JPEG", {"quality": 95}), ("WEBP", {"quality": 95})])
def test_lossy_formats_decode_close(tmp_path, fmt, kw):
    arr = smooth_rgb()
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(enc(Image.fromarray(arr), fmt, **kw))
    t = read_image(path)
    assert t.shape == (3, 32, 32)
    assert float((t - chw(arr)).abs().mean()) < 0.02
    assert float((t - chw(arr)).abs().max()) < 0.15


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (5, 4), c).convert("P") for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = enc(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    path = tmp_path / "anim.gif"
    path.write_bytes(data)
    t = read_image(path)
    assert t.shape == (3, 4, 5)
    assert torch.equal(t, torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 4, 5))


def test_multipage_tiff_gives_first_page():
    pages = [Image.new("L", (3, 3), v) for v in (10, 200)]
    t = decode_bytes(enc(pages[0], "TIFF", save_all=True, append_images=pages[1:]), channels=1)
    assert torch.allclose(t, torch.full((1, 3, 3), 10 / 255))


# ----------------------------------------------------------------------------- modes


def test_mode_1_bilevel():
    bits = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    t = decode_bytes(enc(Image.fromarray(bits), "PNG"), channels=1)
    assert Image.open(io.BytesIO(enc(Image.fromarray(bits), "PNG"))).mode == "1"
    assert torch.equal(t, torch.from_numpy(bits.astype(np.float32))[None])


def test_mode_L():
    g = np.array([[0, 1, 128], [200, 254, 255]], dtype=np.uint8)
    t = decode_bytes(enc(Image.fromarray(g, "L"), "PNG"), channels=1)
    assert torch.equal(t, torch.from_numpy(g.astype(np.float32) / 255)[None])


def test_mode_LA_composites_on_white():
    la = np.array([[[200, 255], [200, 0], [100, 128]]], dtype=np.uint8)  # (1, 3, 2): value, alpha
    img = Image.fromarray(la, "LA")
    t = decode_bytes(enc(img, "PNG"), channels=1)
    a = 128 / 255
    expected = torch.tensor([[[200 / 255, 1.0, 100 / 255 * a + (1 - a)]]])
    assert t.shape == (1, 1, 3)
    assert torch.allclose(t, expected, atol=1e-6)


def test_mode_P_uses_palette():
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2])
    data = enc(img, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "P"
    t = decode_bytes(data)
    assert torch.equal(t[:, 0, :], torch.eye(3))  # column j is the j-th primary


def test_mode_P_with_transparency_is_white():
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * (256 * 3 - 6))
    img.putdata([0, 1])
    data = enc(img, "PNG", transparency=0)
    reopened = Image.open(io.BytesIO(data))
    assert reopened.mode == "P" and "transparency" in reopened.info
    t = decode_bytes(data)
    assert torch.equal(t[:, 0, 0], torch.ones(3))  # transparent black -> white
    assert torch.allclose(t[:, 0, 1], torch.tensor([10, 20, 30]) / 255.0)


def test_mode_P_transparency_in_gif():
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 250, 0, 0] + [0] * (256 * 3 - 6))
    img.putdata([0, 1])
    t = decode_bytes(enc(img, "GIF", transparency=0))
    assert torch.equal(t[:, 0, 0], torch.ones(3))
    assert torch.allclose(t[:, 0, 1], torch.tensor([250 / 255, 0, 0]))


def test_mode_RGB():
    assert torch.equal(decode_bytes(enc(Image.fromarray(RGB, "RGB"), "PNG")), chw(RGB))


def test_mode_RGBA_composites_on_white():
    px = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 255, 51]]], dtype=np.uint8)
    t = decode_bytes(enc(Image.fromarray(px, "RGBA"), "PNG"))
    a = 51 / 255
    expected = torch.tensor([[1.0, 1.0, 1 - a], [0.0, 1.0, 1 - a], [0.0, 1.0, 1.0]]).unsqueeze(1)
    assert torch.allclose(t, expected, atol=1e-6)


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_mode_CMYK(fmt):
    cmyk = np.zeros((8, 24, 4), dtype=np.uint8)
    cmyk[:, 8:16, 0] = 255          # cyan block
    cmyk[:, 16:, 3] = 255           # black block
    img = Image.fromarray(cmyk, "CMYK")
    data = enc(img, fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    t = decode_bytes(data)
    atol = 1e-6 if fmt == "TIFF" else 0.03
    assert torch.allclose(t[:, 4, 4], torch.tensor([1.0, 1.0, 1.0]), atol=atol)   # no ink = white
    assert torch.allclose(t[:, 4, 12], torch.tensor([0.0, 1.0, 1.0]), atol=atol)  # cyan
    assert torch.allclose(t[:, 4, 20], torch.tensor([0.0, 0.0, 0.0]), atol=atol)  # black


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_mode_I16_maps_full_16_bit_range(fmt):
    v = np.array([[0, 1, 255, 32768, 65535]], dtype=np.uint16)
    data = enc(Image.fromarray(v), fmt)
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    t = decode_bytes(data, channels=1)
    assert torch.allclose(t, torch.from_numpy(v.astype(np.float64) / 65535).float()[None], atol=1e-7)
    assert t[0, 0, 2] < 0.004  # 255 in a 16-bit image is dark, not white


@pytest.mark.parametrize(
    "values,scale",
    [([0, 1000, 65535], 65535.0), ([0, 100, 255], 255.0), ([0, 70000, 140000], 140000.0), ([-50, 0, 255], 255.0)],
)
def test_mode_I_32_bit_integer(values, scale):
    data = enc(Image.fromarray(np.array([values], dtype=np.int32)), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    t = decode_bytes(data, channels=1)
    expected = np.clip(np.array(values, dtype=np.float64), 0, None) / scale
    assert torch.allclose(t[0, 0], torch.from_numpy(expected).float(), atol=1e-7)


@pytest.mark.parametrize(
    "values,expected",
    [
        ([0.0, 0.25, 1.0], [0.0, 0.25, 1.0]),           # already [0, 1]
        ([0.0, 127.5, 255.0], [0.0, 0.5, 1.0]),         # 8-bit range
        ([0.0, 500.0, 1000.0], [0.0, 0.5, 1.0]),        # larger: by its maximum
        ([-1.0, 0.5, 0.75], [0.0, 0.5, 0.75]),          # negatives clip
    ],
)
def test_mode_F_float(values, expected):
    data = enc(Image.fromarray(np.array([values], dtype=np.float32)), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    t = decode_bytes(data, channels=1)
    assert torch.allclose(t[0, 0], torch.tensor(expected), atol=1e-7)


def test_mode_F_with_nan_is_refused():
    data = enc(Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)), "TIFF")
    with pytest.raises(UnreadableImage, match=r"non-finite \(NaN or infinite\) values"):
        decode_bytes(data, name="nan.tif")


def test_unsupported_pixel_mode_is_refused_by_name():
    data = enc(Image.new("LAB", (2, 2)), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "LAB"
    with pytest.raises(UnreadableImage) as e:
        decode_bytes(data, name="lab.tif")
    assert str(e.value) == "lab.tif: unsupported pixel mode LAB"


# ----------------------------------------------------------------------------- channels / EXIF


def test_grey_to_rgb_repeats_the_plane():
    g = np.array([[0, 51, 255]], dtype=np.uint8)
    t = decode_bytes(enc(Image.fromarray(g, "L"), "PNG"), channels=3)
    assert t.shape == (3, 1, 3)
    for c in range(3):
        assert torch.equal(t[c], torch.tensor([[0.0, 0.2, 1.0]]))


def test_rgb_to_grey_uses_rec601_luma():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    t = decode_bytes(enc(Image.fromarray(px), "PNG"), channels=1)
    assert t.shape == (1, 1, 4)
    assert torch.allclose(t[0, 0], torch.tensor([0.299, 0.587, 0.114, 1.0]), atol=1e-6)


def test_to_channels_rejects_bad_counts():
    with pytest.raises(ValueError, match="cannot convert 2 channels to 3"):
        to_channels(torch.zeros(2, 4, 4), 3)
    with pytest.raises(ValueError, match="channels must be 1 or 3, not 4"):
        decode_bytes(enc(Image.fromarray(RGB), "PNG"), channels=4)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    arr = np.zeros((16, 32), dtype=np.uint8)  # stored: 32 wide, 16 high
    arr[:8, :16] = 255                        # white top-left quadrant
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rot{orientation}.jpg"
    path.write_bytes(enc(Image.fromarray(arr, "L"), "JPEG", quality=95, exif=exif.tobytes()))
    t = read_image(path, channels=1)[0]
    assert t.shape == (32, 16)  # displayed upright: 16 wide, 32 high

    def quad(r, c):
        return float(t[r * 16:(r + 1) * 16, c * 8:(c + 1) * 8].mean())

    # 6: rotate 90 deg clockwise (stored top-left -> top-right); 8: counter-clockwise (-> bottom-left)
    white = (0, 1) if orientation == 6 else (1, 0)
    for r in range(2):
        for c in range(2):
            assert (quad(r, c) > 0.9) if (r, c) == white else (quad(r, c) < 0.1), (r, c, quad(r, c))


# ----------------------------------------------------------------------------- sizes


def test_one_by_one(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path)
    t = read_image(path)
    assert t.shape == (3, 1, 1)
    assert torch.allclose(t.flatten(), torch.tensor([10, 20, 30]) / 255.0)


@pytest.mark.parametrize("size", [(100_000, 1), (1, 100_000)])
def test_extreme_aspect_ratio(tmp_path, size):
    path = tmp_path / "strip.png"
    row = (np.arange(100_000) % 256).astype(np.uint8)
    Image.fromarray(row.reshape(size[1], size[0]), "L").save(path)
    t = read_image(path, channels=1)
    assert t.shape == (1, size[1], size[0])
    assert torch.equal(t.flatten(), torch.from_numpy(row.astype(np.float32) / 255))


# ----------------------------------------------------------------------------- bad input


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(UnreadableImage) as e:
        read_image(path)
    assert e.value.path == str(path) and e.value.reason == "empty file (0 bytes)"
    assert str(e.value) == f"{path}: empty file (0 bytes)"
    with pytest.raises(UnreadableImage, match=r"^<bytes>: empty file \(0 bytes\)$"):
        decode_bytes(b"")


def _gif_bytes() -> bytes:
    return enc(Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)).convert("P"), "GIF")


@pytest.mark.parametrize(
    "fmt,make",
    [
        ("PNG", lambda: enc(Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)), "PNG")),
        ("JPEG", lambda: enc(Image.fromarray(smooth_rgb()), "JPEG")),
        ("WEBP", lambda: enc(Image.fromarray(smooth_rgb()), "WEBP")),
        ("GIF", _gif_bytes),
    ],
)
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files(tmp_path, fmt, make, keep):
    data = make()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UnreadableImage) as e:
        read_image(path)
    assert e.value.reason.startswith(f"truncated image ({fmt})"), e.value.reason
    assert str(e.value).startswith(f"{path}: truncated image ({fmt})")


def test_random_bytes_with_image_extension(tmp_path):
    path = tmp_path / "noise.png"
    path.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(UnreadableImage) as e:
        read_image(path)
    assert e.value.reason == "not a recognised image format (unknown or corrupt header)"


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("These are my holiday notes, not a photo.\n" * 20)
    with pytest.raises(UnreadableImage) as e:
        read_image(path)
    assert e.value.reason == "not an image: the file contains text"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_bomb(w: int, h: int, real_data: bool) -> bytes:
    """A greyscale PNG declaring w x h; with real_data the IDAT holds all rows (zeros, compressed)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    if real_data:
        comp = zlib.compressobj(9)
        row = bytes(w + 1)
        idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    else:
        idat = zlib.compress(bytes(w + 1))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_without_allocating(tmp_path):
    data = _png_bomb(9000, 9000, real_data=True)  # a real 81-megapixel image of zeros
    assert len(data) < 200_000
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableImage) as e:
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert e.value.reason == (
        "decompression bomb refused: 9000x9000 = 81000000 pixels exceeds the limit of 64000000 pixels")
    assert peak < 5_000_000  # refused from the header: nothing near 81 MB was allocated


def test_pillow_level_bomb_reports_our_limit():
    data = _png_bomb(100_000, 100_000, real_data=False)  # 10^10 pixels declared in a ~100-byte file
    with pytest.raises(UnreadableImage) as e:
        decode_bytes(data, name="huge.png")
    assert str(e.value) == ("huge.png: decompression bomb refused: 10000000000 pixels exceeds the limit of "
                            "64000000 pixels")


def test_pixel_limit_is_configurable():
    data = enc(Image.new("L", (100, 100)), "PNG")
    with pytest.raises(UnreadableImage, match=r"100x100 = 10000 pixels exceeds the limit of 9999 pixels"):
        decode_bytes(data, max_pixels=9999)
    assert decode_bytes(data, max_pixels=10_000, channels=1).shape == (1, 100, 100)


def test_byte_limit(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(enc(Image.fromarray(RGB), "PNG"))
    with pytest.raises(UnreadableImage, match=r"file too large \(\d+ bytes > limit 10\)"):
        read_image(path, max_bytes=10)


@pytest.mark.parametrize("fmt", ["ICO", "PCX", "TGA"])
def test_unsupported_format_pillow_can_open(tmp_path, fmt):
    path = tmp_path / f"icon.{fmt.lower()}"
    path.write_bytes(enc(Image.fromarray(RGB), fmt))
    assert Image.open(path).format == fmt  # Pillow itself would open it
    with pytest.raises(UnreadableImage) as e:
        read_image(path)
    assert e.value.reason == f"unsupported image format {fmt} (supported: PNG, JPEG, WebP, BMP, TIFF, GIF)"


def test_directory_named_like_an_image(tmp_path):
    d = tmp_path / "holiday.jpg"
    d.mkdir()
    with pytest.raises(UnreadableImage) as e:
        read_image(d)
    assert e.value.reason == "is a directory, not an image file"


def test_symlink_loop(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(UnreadableImage) as e:
        read_image(a)
    assert e.value.reason == "symbolic link loop (too many levels of symbolic links)"


def test_dangling_symlink(tmp_path):
    link = tmp_path / "gone.png"
    link.symlink_to(tmp_path / "never-existed.png")
    with pytest.raises(UnreadableImage) as e:
        read_image(link)
    assert e.value.reason == "dangling symbolic link (its target does not exist)"


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableImage) as e:
        read_image(tmp_path / "nope.png")
    assert e.value.reason == "file not found (it may have been deleted or moved)"


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableImage) as e:
        read_image(fifo)  # open() on a FIFO would block forever
    assert e.value.reason == "not a regular file (named pipe (FIFO))"


def test_permission_denied_simulated(tmp_path, monkeypatch):
    """Root reads anything, so CI (running as root) simulates the error the OS would give."""
    path = tmp_path / "secret.png"
    path.write_bytes(enc(Image.fromarray(RGB), "PNG"))

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(decode, "open", deny, raising=False)
    with pytest.raises(UnreadableImage) as e:
        read_image(path)
    assert e.value.reason == "permission denied (file is not readable)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_real(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(enc(Image.fromarray(RGB), "PNG"))
    path.chmod(0)
    try:
        with pytest.raises(UnreadableImage) as e:
            read_image(path)
        assert e.value.reason == "permission denied (file is not readable)"
    finally:
        path.chmod(0o644)


def test_file_deleted_between_listing_and_reading(tmp_path):
    (tmp_path / "real").mkdir()
    for i in range(3):
        Image.fromarray(RGB).save(tmp_path / "real" / f"{i}.png")
    src = FolderSource(tmp_path, size=8, channels=3)
    skipping = FolderSource(tmp_path, size=8, channels=3, skip_errors=True)
    assert len(src) == 3
    os.unlink(src.files[1])
    assert src[0][0].shape == (3, 8, 8)
    with pytest.raises(UnreadableImage) as e:
        src[1]
    assert e.value.path == str(src.files[1])
    assert e.value.reason == "file not found (it may have been deleted or moved)"
    assert skipping[1] is None and skipping[2][1] == 0


def test_non_utf8_file_name(tmp_path):
    name = os.fsdecode(b"caf\xe9-\xff.png")  # Latin-1 bytes: not valid UTF-8
    good = tmp_path / name
    good.write_bytes(enc(Image.fromarray(RGB), "PNG"))
    assert torch.equal(read_image(good), chw(RGB))
    bad = tmp_path / os.fsdecode(b"bad-\xe9.jpg")
    bad.write_bytes(b"")
    with pytest.raises(UnreadableImage) as e:
        read_image(bad)
    assert e.value.path == str(bad)  # the exact name, usable to open the file
    msg = str(e.value)
    msg.encode("utf-8")  # printable: no lone surrogates
    assert msg == f"{display_path(tmp_path)}/bad-\\xe9.jpg: empty file (0 bytes)"


def test_very_long_file_names(tmp_path):
    long_name = "x" * 240 + ".png"  # 244 bytes: within the usual 255-byte limit
    path = tmp_path / long_name
    Image.fromarray(RGB).save(path)
    assert torch.equal(read_image(path), chw(RGB))
    too_long = tmp_path / ("y" * 300 + ".png")
    with pytest.raises(UnreadableImage) as e:
        read_image(too_long)
    assert e.value.reason == "file name too long for the file system"


def test_error_pickles_with_path_and_reason():
    import pickle

    err = pickle.loads(pickle.dumps(UnreadableImage("a/b.png", "empty file (0 bytes)")))
    assert isinstance(err, UnreadableImage) and err.path == "a/b.png" and str(err) == "a/b.png: empty file (0 bytes)"


# ----------------------------------------------------------------------------- fuzzing

_SMALL = np.random.default_rng(3).integers(0, 256, (12, 10, 3), dtype=np.uint8)
SEEDS = {
    "png": enc(Image.fromarray(_SMALL), "PNG"),
    "jpeg": enc(Image.fromarray(_SMALL), "JPEG", quality=80),
    "gif": enc(Image.fromarray(_SMALL).convert("P"), "GIF"),
    "tiff": enc(Image.fromarray(_SMALL), "TIFF"),
    "webp": enc(Image.fromarray(_SMALL), "WEBP", lossless=True),
    "bmp": enc(Image.fromarray(_SMALL), "BMP"),
}
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def _check_outcome(data: bytes, channels: int) -> None:
    try:
        t = decode_bytes(data, channels=channels, max_pixels=1_000_000)
    except UnreadableImage as e:
        assert e.reason and str(e).startswith("<bytes>: ")
        return
    assert t.dtype == torch.float32 and t.dim() == 3 and t.shape[0] == channels
    assert t.shape[1] >= 1 and t.shape[2] >= 1
    assert bool(torch.isfinite(t).all()) and float(t.min()) >= 0.0 and float(t.max()) <= 1.0


@FUZZ
@given(data=st.binary(min_size=0, max_size=2048), channels=st.sampled_from([1, 3]))
def test_fuzz_random_bytes(data, channels):
    _check_outcome(data, channels)


@FUZZ
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
    channels=st.sampled_from([1, 3]),
)
def test_fuzz_mutated_valid_images(seed, edits, cut, channels):
    buf = bytearray(SEEDS[seed])
    for pos, byte in edits:
        buf[pos % len(buf)] = byte
    if cut is not None:
        buf = buf[: cut % (len(buf) + 1)]
    _check_outcome(bytes(buf), channels)
