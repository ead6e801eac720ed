"""detector.data and detector.preprocess: embedded Fashion-MNIST, IDX files, folders, videos, fitting, tiling."""
from __future__ import annotations

import gzip
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DataLoader

from detector import data as data_mod
from detector.data import (
    EMBEDDED,
    FolderSource,
    TensorSource,
    collate_skip_none,
    find_full_fashion_mnist,
    list_images,
    load_fashion_mnist,
    open_source,
    read_idx_pair,
)
from detector.decode import UnreadableImage
from detector.preprocess import fit, normalize, tile_grid, tiles
from tests.corpus import write_video

# ----------------------------------------------------------------------------- embedded Fashion-MNIST


@pytest.mark.parametrize("split,n", [("train", 10_000), ("test", 2_000)])
def test_embedded_subset_shape_balance_checksum(split, n):
    d = load_fashion_mnist(split, variant="embedded")
    assert d.images.shape == (n, 28, 28) and d.images.dtype == np.uint8
    assert d.labels.shape == (n,)
    assert np.bincount(d.labels, minlength=10).tolist() == [n // 10] * 10
    assert d.source == "fashion-mnist:embedded" and d.split == split
    meta = json.loads(EMBEDDED.with_suffix(".json").read_text())
    actual = hashlib.sha256(EMBEDDED.read_bytes()).hexdigest()
    assert d.checksum == meta["npz_sha256"] == actual
    assert EMBEDDED.stat().st_size < 6_000_000
    assert 20 < d.images.mean() < 120  # real clothing photos, not blank arrays


def test_embedded_train_and_test_come_from_different_official_splits():
    with np.load(EMBEDDED) as z:
        tr_idx, te_idx = z["train_index"], z["test_index"]
        tr_img, te_img = z["train_images"], z["test_images"]
    # positions in the official train (60,000) and t10k (10,000) files, each used once
    assert len(np.unique(tr_idx)) == 10_000 and 0 <= tr_idx.min() and tr_idx.max() < 60_000
    assert len(np.unique(te_idx)) == 2_000 and 0 <= te_idx.min() and te_idx.max() < 10_000
    train_hashes = {hashlib.sha1(x.tobytes()).digest() for x in tr_img}
    assert not any(hashlib.sha1(x.tobytes()).digest() in train_hashes for x in te_img)  # no leakage
    meta = json.loads(EMBEDDED.with_suffix(".json").read_text())
    assert set(meta["source_files_sha256"]) == {
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}


@pytest.mark.skipif(find_full_fashion_mnist() is None, reason="full Fashion-MNIST not installed")
def test_embedded_matches_the_official_files_when_installed():
    root = find_full_fashion_mnist()
    with np.load(EMBEDDED) as z:
        for split, prefix in (("train", "train"), ("test", "t10k")):
            images, labels, used = read_idx_pair(root, prefix)
            idx = z[f"{split}_index"]
            assert np.array_equal(z[f"{split}_images"], images[idx])
            assert np.array_equal(z[f"{split}_labels"], labels[idx])
    meta = json.loads(EMBEDDED.with_suffix(".json").read_text())
    for p in used:
        if p.name in meta["source_files_sha256"]:
            assert hashlib.sha256(p.read_bytes()).hexdigest() == meta["source_files_sha256"][p.name]


def test_bad_split_and_variant():
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test', not 'val'"):
        load_fashion_mnist("val")
    with pytest.raises(ValueError, match=r"variant must be auto, embedded or full, not 'tiny'"):
        load_fashion_mnist("train", variant="tiny")


def test_full_variant_absent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("UNMASK_FASHION_MNIST", str(tmp_path))
    monkeypatch.setattr(data_mod, "FULL_FASHION_MNIST_DIRS", (tmp_path / "nothing-here",))
    assert find_full_fashion_mnist() is None
    with pytest.raises(FileNotFoundError, match="full Fashion-MNIST not found; install Debian's "
                                                "dataset-fashion-mnist or give a path"):
        load_fashion_mnist("train", variant="full")
    auto = load_fashion_mnist("test", variant="auto")  # falls back to the shipped subset
    assert auto.source == "fashion-mnist:embedded" and len(auto) == 2000


# ----------------------------------------------------------------------------- IDX files


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_fake_fmnist(root: Path, n_train: int = 6, n_test: int = 4, gz: bool = True) -> dict:
    rng = np.random.default_rng(5)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labs = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr, dims in (("images", imgs, 3), ("labels", labs, 1)):
            name = f"{prefix}-{kind}-idx{dims}-ubyte"
            raw = _idx(arr)
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (root / name).write_bytes(raw)
        out[prefix] = (imgs, labs)
    return out


@pytest.mark.parametrize("layout", ["plain", "gz", "torchvision"])
def test_idx_reading_layouts(tmp_path, layout):
    root = tmp_path / "fm"
    files_root = root / "FashionMNIST" / "raw" if layout == "torchvision" else root
    made = _write_fake_fmnist(files_root, gz=layout != "plain")
    images, labels, used = read_idx_pair(root, "t10k")
    assert np.array_equal(images, made["t10k"][0]) and np.array_equal(labels, made["t10k"][1])
    assert all(p.parent == files_root for p in used)
    d = load_fashion_mnist("train", root=root)
    assert d.source == f"fashion-mnist:full:{root}" and d.images.shape == (6, 28, 28)
    assert np.array_equal(d.labels, np.arange(6) % 10) and len(d.checksum) == 64
    src = open_source(f"fashion-mnist:{root}", size=28, channels=1, split="test")
    assert len(src) == 4 and torch.equal(src.images[0, 0], torch.from_numpy(made["t10k"][0][0]).float() / 255)
    assert src.classes.tolist() == [0, 1, 2, 3] and src.labels.tolist() == [0, 0, 0, 0]  # all real


def test_truncated_idx_is_refused(tmp_path):
    _write_fake_fmnist(tmp_path, gz=False)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"truncated IDX file \(4604 values, header says \[6, 28, 28\]\)"):
        read_idx_pair(tmp_path, "train")


def test_truncated_gzip_idx_is_refused(tmp_path):
    _write_fake_fmnist(tmp_path, gz=True)
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(ValueError, match="unreadable IDX file"):
        read_idx_pair(tmp_path, "t10k")


def test_idx_errors(tmp_path):
    _write_fake_fmnist(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(np.zeros(5, np.uint8)))
    with pytest.raises(ValueError, match=r"IDX image/label files do not match \(\(6, 28, 28\) vs \(5,\)\)"):
        read_idx_pair(tmp_path, "train")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"PK\x03\x04 not idx at all")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx_pair(tmp_path, "t10k")
    with pytest.raises(FileNotFoundError, match="no Fashion-MNIST train IDX files under"):
        read_idx_pair(tmp_path / "missing", "train")


# ----------------------------------------------------------------------------- folders


def _png(path: Path, value: int = 128, size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)
    return path


def test_folder_labels(tmp_path):
    _png(tmp_path / "real" / "a.png")
    _png(tmp_path / "fake" / "b.png")
    _png(tmp_path / "set2" / "0_real" / "c.jpg".replace(".jpg", ".png"))
    _png(tmp_path / "set2" / "1_fake" / "nested" / "d.png")
    _png(tmp_path / "Real" / "e.png")
    _png(tmp_path / "misc" / "f.png")
    (tmp_path / "real" / "notes.txt").write_text("not an image")
    src = FolderSource(tmp_path, size=16, channels=3)
    got = {f.relative_to(tmp_path).as_posix(): lab for f, lab in zip(src.files, src.labels)}
    assert got == {"Real/e.png": 0, "fake/b.png": 1, "misc/f.png": -1, "real/a.png": 0,
                   "set2/0_real/c.png": 0, "set2/1_fake/nested/d.png": 1}
    img, label = src[src.files.index(tmp_path / "fake" / "b.png")]
    assert img.shape == (3, 16, 16) and label == 1
    assert torch.allclose(img, torch.full((3, 16, 16), 128 / 255), atol=1e-6)


def test_list_images_sorted_filtered_and_explicit_files(tmp_path):
    for name in ("b.png", "a.JPG", "c.txt", "sub/d.webp"):
        p = tmp_path / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images([tmp_path])] == ["a.JPG", "b.png", "sub/d.webp"]
    assert list_images([tmp_path / "c.txt"]) == [tmp_path / "c.txt"]  # named explicitly: kept
    assert len(list_images([tmp_path], extensions=None)) == 4


def test_skip_errors_and_collate_skip_none(tmp_path):
    for i in range(3):
        _png(tmp_path / "real" / f"{i}.png", value=40 * i)
    (tmp_path / "real" / "3.png").write_bytes(b"")
    strict = FolderSource(tmp_path, size=8, channels=1)
    with pytest.raises(UnreadableImage, match=r"3\.png: empty file \(0 bytes\)"):
        strict[3]
    src = FolderSource(tmp_path, size=8, channels=1, skip_errors=True)
    assert src[3] is None
    batches = list(DataLoader(src, batch_size=4, collate_fn=collate_skip_none))
    assert len(batches) == 1
    x, y = batches[0]
    assert x.shape == (3, 1, 8, 8) and y.tolist() == [0, 0, 0]
    assert torch.allclose(x[:, 0, 0, 0], torch.tensor([0.0, 40 / 255, 80 / 255]))
    assert collate_skip_none([None, None]) is None


def test_open_source_folder_and_errors(tmp_path):
    _png(tmp_path / "imgs" / "fake" / "x.png", size=(40, 20))
    src = open_source(str(tmp_path / "imgs"), size=32, channels=3)
    assert isinstance(src, FolderSource) and len(src) == 1
    img, label = src[0]
    assert img.shape == (3, 32, 32) and label == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files under"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=r"image source '.*nowhere': no such file or folder"):
        open_source(str(tmp_path / "nowhere"))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="expected 'fashion-mnist', a folder of images or a video file"):
        open_source(str(tmp_path / "notes.txt"))


def test_open_source_fashion_mnist_embedded():
    src = open_source("fashion-mnist:embedded", size=32, channels=3, split="test")
    assert isinstance(src, TensorSource) and len(src) == 2000
    img, label = src[0]
    assert img.shape == (3, 32, 32) and label == 0
    assert torch.equal(img[0], img[1]) and 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    assert src.classes.shape == (2000,) and np.bincount(src.classes.numpy()).tolist() == [200] * 10
    assert src.name == "fashion-mnist:embedded:test" and len(src.checksum) == 64


# ----------------------------------------------------------------------------- video


def test_open_source_video_from_real_images(tmp_path):
    real = load_fashion_mnist("test", variant="embedded").images[:6]  # (6, 28, 28) uint8
    big = np.kron(real, np.ones((2, 2), np.uint8))  # 56x56 so MJPG blocks stay sharp
    frames = np.repeat(big[..., None], 3, axis=-1)
    path = tmp_path / "clip.avi"
    write_video(path, frames, fps=5)
    src = open_source(str(path), size=28, channels=1)
    assert isinstance(src, TensorSource) and len(src) == 6 and src.name == f"video:{path}"
    expected = torch.from_numpy(real).float().unsqueeze(1) / 255
    assert src.images.shape == (6, 1, 28, 28)
    assert float((src.images - expected).abs().mean()) < 0.04  # the frames are those images
    assert float((src.images[0] - expected[1]).abs().mean()) > 0.1  # and in order
    every2 = open_source(str(path), size=28, channels=1, video_every=2)
    assert len(every2) == 3 and torch.allclose(every2.images[1], src.images[2])
    assert len(open_source(str(path), size=28, channels=1, max_video_frames=4)) == 4


def test_open_source_video_errors(tmp_path):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(UnreadableImage, match=r"broken\.avi: cannot open as a video"):
        open_source(str(bad))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableImage, match=r"empty\.mp4: cannot open as a video"):
        open_source(str(empty))
    good = tmp_path / "ok.avi"
    write_video(good, np.zeros((2, 16, 16, 3), np.uint8), fps=5)
    with pytest.raises(ValueError, match="video_every and max_video_frames must be >= 1, not 0, 20000"):
        open_source(str(good), video_every=0)


# ----------------------------------------------------------------------------- fit / tiles


def test_fit_resize_and_channels():
    img = torch.rand(3, 40, 60)
    out = fit(img, 28, 1, "resize")
    assert out.shape == (1, 28, 28) and 0 <= float(out.min()) and float(out.max()) <= 1
    flat = torch.full((1, 50, 30), 0.25)
    assert torch.allclose(fit(flat, 28, 3, "resize"), torch.full((3, 28, 28), 0.25))
    same = torch.rand(1, 28, 28)
    assert torch.equal(fit(same, 28, 1, "resize"), same)
    with pytest.raises(ValueError, match=r"unknown resize policy 'zoom'"):
        fit(img, 28, 1, "zoom")


def test_fit_crop_keeps_the_centre():
    img = torch.zeros(1, 28, 84)
    img[:, :, 28:56] = 1.0  # white centre square, black sides
    assert torch.equal(fit(img, 28, 1, "crop"), torch.ones(1, 28, 28))
    resized = fit(img, 28, 1, "resize")
    assert float(resized.mean()) == pytest.approx(1 / 3, abs=0.02)  # resize squashes the sides in
    tall = torch.zeros(1, 90, 30)
    tall[:, 30:60] = 1.0
    assert torch.allclose(fit(tall, 15, 1, "crop"), torch.ones(1, 15, 15))


def test_fit_thin_strip_is_cheap_and_correct():
    strip = torch.rand(1, 1, 100_000)
    assert fit(strip, 28, 1, "crop").shape == (1, 28, 28)
    assert fit(strip, 28, 1, "resize").shape == (1, 28, 28)


def test_tile_grid_exact_corners():
    assert tile_grid(28, 28, 28) == [(0, 0)]
    assert tile_grid(20, 10, 28) == [(0, 0)]
    assert tile_grid(60, 50, 28) == [(0, 0), (0, 22), (28, 0), (28, 22), (32, 0), (32, 22)]
    assert tile_grid(28, 60, 28, stride=14) == [(0, 0), (0, 14), (0, 28), (0, 32)]
    with pytest.raises(ValueError, match=r"tile stride must be in \[1, 28\]"):
        tile_grid(60, 60, 28, stride=29)
    with pytest.raises(ValueError, match=r"tile stride must be in \[1, 28\]"):
        tile_grid(60, 60, 28, stride=0)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), size=st.integers(1, 64), data=st.data())
def test_tile_grid_covers_every_pixel(h, w, size, data):
    stride = data.draw(st.integers(1, size))
    corners = tile_grid(h, w, size, stride)
    cover = np.zeros((max(h, size), max(w, size)), dtype=bool)
    for y, x in corners:
        assert 0 <= y and 0 <= x
        if h >= size and w >= size:
            assert y + size <= h and x + size <= w  # no padding
        cover[y:y + size, x:x + size] = True
    assert cover[:h, :w].all()
    ys, xs = sorted({y for y, _ in corners}), sorted({x for _, x in corners})
    assert ys[-1] == max(0, h - size) and xs[-1] == max(0, w - size)  # edge-aligned
    assert len(ys) == (1 if h <= size else math.ceil((h - size) / stride) + 1)
    assert len(corners) == len(set(corners))


def test_tiles_are_native_pixels():
    img = torch.rand(3, 60, 50)
    batch, corners = tiles(img, 28, 3)
    assert batch.shape == (6, 3, 28, 28) and len(corners) == 6
    for t, (y, x) in zip(batch, corners):
        assert torch.equal(t, img[:, y:y + 28, x:x + 28])  # no resampling at all
    grey, _ = tiles(img, 28, 1)
    assert grey.shape == (6, 1, 28, 28)


def test_tiles_upscale_small_images():
    one, corners = tiles(torch.full((1, 1, 1), 0.5), 28, 1)
    assert one.shape == (1, 1, 28, 28) and corners == [(0, 0)]
    assert torch.allclose(one, torch.full_like(one, 0.5))
    short, corners = tiles(torch.rand(1, 10, 60), 28, 1)  # height 10 -> 28, width kept at 60
    assert short.shape == (3, 1, 28, 28) and corners == [(0, 0), (0, 28), (0, 32)]
    strip, corners = tiles(torch.rand(1, 1, 100_000), 28, 1)
    assert strip.shape == (math.ceil((100_000 - 28) / 28) + 1, 1, 28, 28)


def test_normalize():
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    assert torch.equal(normalize(x, [0.5], [0.5]), torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3))
    rgb = torch.ones(2, 3, 2, 2)
    out = normalize(rgb, [0.0, 0.5, 1.0], [1.0, 0.5, 2.0])
    assert out[:, :, 0, 0].tolist() == [[1.0, 1.0, 0.0]] * 2
