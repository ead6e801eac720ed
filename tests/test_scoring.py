"""detector.scoring (the one engine) and detector.files (the one walker)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import detector
from detector.data import FolderSource, list_images
from detector.files import folder_label, list_files
from detector.imageio import save_png
from detector.preprocess import model_inputs
from detector.scoring import ImageScore, Scorer, score_images


@pytest.fixture(scope="module")
def det(tiny_detector):
    return detector.load(tiny_detector)  # policy "tile", tile_aggregate from the spec


def _images(real_images, fake_images) -> list[torch.Tensor]:
    """Mixed sizes: single 28x28 inputs, small ones resized up, big mosaics cut into many tiles."""
    big = torch.cat([torch.cat([real_images[i], fake_images[i], real_images[i + 1]], 2) for i in range(2)], 1)
    return [real_images[0], fake_images[0], big, real_images[3][:, :20, :17],
            torch.cat([fake_images[5], real_images[5]], 2), big[:, :50, :70]]


@pytest.mark.parametrize("policy", ["tile", "resize", "crop"])
@pytest.mark.parametrize("batch_inputs", [1, 3, 2048])
def test_engine_scores_equal_score_image_whatever_the_batching(det, real_images, fake_images, policy, batch_inputs):
    d = det.with_spec(policy=policy)
    imgs = _images(real_images, fake_images)
    results = list(Scorer(d, batch_inputs).score_images(iter(imgs)))
    assert len(results) == len(imgs) and all(isinstance(r, ImageScore) for r in results)
    for img, r in zip(imgs, results):
        assert abs(r.score - d.score_image(img)) < 1e-6
        x, corners = d.preprocess(img)
        assert r.n_tiles == len(x) and r.policy == policy
        if policy == "tile":
            assert r.corners == corners and r.tile_scores.shape == (len(x),)
            assert abs(r.score - d.aggregate(r.tile_scores)) < 1e-12
        else:
            assert r.n_tiles == 1 and r.corners is None and r.tile_scores is None
    assert np.allclose(score_images(d, imgs, batch_inputs), [r.score for r in results], rtol=0, atol=1e-12)


def test_engine_tiles_whatever_the_policy_when_asked_and_respects_max_tiles(det, real_images, fake_images):
    d = det.with_spec(policy="resize")
    big = _images(real_images, fake_images)[2]  # (1, 56, 84): 2 x 3 tiles of 28
    r = next(Scorer(d, policy="tile").score_images([big]))
    assert r.n_tiles == 6 and r.policy == "tile"
    r = next(Scorer(d, policy="tile", max_tiles=2).score_images([big]))
    assert r.n_tiles <= 2 and r.policy.startswith("tile(scaled ")
    x, corners, done = model_inputs(big, 28, 1, "tile", max_tiles=2)
    assert done == r.policy and len(corners) == len(x) == r.n_tiles


def test_engine_is_lazy_over_a_stream(det, real_images):
    """Images are read only as batches fill: a stream stays a stream."""
    pulled = []

    def stream():
        for i in range(10):
            pulled.append(i)
            yield real_images[i]

    it = Scorer(det, batch_inputs=2).score_images(stream())
    next(it)
    assert len(pulled) == 2


def _tree(root: Path, real_images) -> None:
    """Files and sub-folders interleaved by name: where the two old walkers disagreed on order."""
    for rel in ("b.png", "a/x.png", "c/real/y.png", "c/fake/z.png", "d.png", "notes.txt"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".png"):
            save_png(real_images[0], p)
        else:
            p.write_text("not an image")
    (root / "loop").symlink_to(root, target_is_directory=True)


def test_one_walker_one_order_for_scan_data_and_labels(tmp_path, real_images):
    _tree(tmp_path, real_images)
    skipped: list = []
    files = list_files([tmp_path], skipped=skipped)
    rel = [Path(f).relative_to(tmp_path).as_posix() for f in files]
    assert rel == ["a/x.png", "b.png", "c/fake/z.png", "c/real/y.png", "d.png"]  # sorted by name, recursively
    assert skipped == [os.path.join(tmp_path, "loop")]  # symlinked folder reported, not followed
    assert list_images([tmp_path]) == [Path(f) for f in files]  # datasets see the same files in the same order
    src = FolderSource(tmp_path, 28, 1)
    assert src.files == [Path(f) for f in files]
    assert [folder_label(f, tmp_path) for f in files] == [-1, -1, 1, 0, -1] == src.labels
    assert list_files([tmp_path / "notes.txt", tmp_path / "b.png", tmp_path / "b.png"]) == [
        str(tmp_path / "notes.txt"), str(tmp_path / "b.png")]  # named files kept as given, duplicates dropped
