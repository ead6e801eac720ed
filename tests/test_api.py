"""The Python API: ``detector.load(DIR).score(x)`` for every input kind, equal to ``unmask scan``'s
scores on the same files; typed results; a clear TypeError; flat memory over a large folder."""
from __future__ import annotations

import csv
import math
import os
import resource
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import detector
from detector.imageio import save_png
from unmask.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory, real_images, fake_images):
    """A folder of grey, RGB and RGBA PNGs, two JPEGs (one big enough to be decoded at reduced size
    under the resize policy) and one unreadable file, with its nested order as a scan lists it."""
    root = tmp_path_factory.mktemp("api_files")
    (root / "sub").mkdir()
    for i in range(3):
        save_png(real_images[i], root / f"grey{i}.png")
        save_png(fake_images[i], root / "sub" / f"fake{i}.png")
    g = torch.Generator().manual_seed(3)
    save_png(torch.rand(3, 45, 61, generator=g), root / "rgb.png")
    rgba = (torch.rand(45, 30, 4, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    small = (torch.rand(40, 52, 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(small).save(root / "small.jpg", quality=85)
    big = Image.fromarray((torch.rand(180, 240, 3, generator=g) * 255).to(torch.uint8).numpy()).resize((720, 540))
    big.save(root / "big.jpg", quality=90)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def _scan(folder: Path, det_dir: Path, out: Path) -> dict[str, float | None]:
    """``unmask scan`` on ``folder``: ``{file name: score}`` (None for an error row)."""
    res = CliRunner().invoke(main, ["scan", str(folder), "--detector", str(det_dir), "--out", str(out),
                                    "--workers", "0", "--quiet", "--overwrite"])
    assert res.exit_code in (0, 1), res.output
    with open(out, newline="", encoding="utf-8") as f:
        return {Path(r["path"]).name: (float(r["score"]) if r["score"] else None) for r in csv.DictReader(f)}


@pytest.fixture(scope="module", params=["tile", "resize"])
def setup(request, tiny_detector, files, tmp_path_factory):
    """(detector, its scan scores by file name): the fixture's tiling detector, and the same network
    under ``resize`` (where the big JPEG is decoded at reduced size)."""
    d = detector.load(tiny_detector)
    if request.param == "resize":
        out = tmp_path_factory.mktemp("det_resize")
        d.with_spec(policy="resize").save(out)
        d = detector.load(out)
        det_dir = out
    else:
        det_dir = tiny_detector
    return d, _scan(files, det_dir, tmp_path_factory.mktemp("scan") / "rows.csv")


def _close(preds, names, ref) -> None:
    """``preds`` are the files ``names``, in order, each with its scan score."""
    assert len(preds) == len(names)
    for p, n in zip(preds, names):
        assert p.source.startswith("<") or Path(p.source).name == n
        assert p.ok and abs(p.score - ref[n]) <= 1e-6, (n, p.score, ref[n])
        assert p.label == ("fake" if p.score >= p.threshold else "real")


def test_paths_folders_and_lists_score_as_unmask_scan(setup, files):
    det, ref = setup
    walked = detector.list_files([files])
    got = det.score(files)                                       # a folder: the scan's files, in its order
    assert [p.source for p in got] == [detector.decode.display_path(f) for f in walked]
    for p in got:
        name = Path(p.source).name
        if ref[name] is None:
            assert p.label == "error" and p.score is None and "broken.png" in p.source and p.error
        else:
            assert abs(p.score - ref[name]) <= 1e-6, name
    assert got.scores[np.isfinite(got.scores)].size == len(walked) - 1
    names = ["big.jpg", "small.jpg", "rgba.png", "grey1.png"]
    _close(det.score([str(files / n) for n in names]), names, ref)        # a list of str paths
    _close(det.score(tuple(files / n for n in names)), names, ref)        # a tuple of PathLike
    one = det.score(files / "big.jpg")                                   # one PathLike
    assert len(one) == 1 and abs(one[0].score - ref["big.jpg"]) <= 1e-6
    assert (one[0].width, one[0].height) == (720, 540)


def _u8(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).copy()


def test_in_memory_kinds_score_as_unmask_scan(setup, files):
    """PIL images, NumPy arrays and torch tensors of the files' pixels score as the files do."""
    det, ref = setup
    names = ["grey0.png", "rgb.png", "rgba.png", "small.jpg"]   # no reduced decode for these under any policy
    pils = [Image.open(files / n) for n in names]
    _close(det.score(pils), names, ref)
    arrays = [_u8(files / n) for n in names]                     # (H, W) grey, (H, W, 3), (H, W, 4) uint8
    assert [a.ndim for a in arrays] == [2, 3, 3, 3] and arrays[2].shape[2] == 4
    _close(det.score(arrays), names, ref)
    floats = [a.astype(np.float32) / np.float32(255) for a in arrays]
    _close(det.score(floats), names, ref)                       # float in [0, 1], RGBA composited on white
    tensors = [torch.from_numpy(a).permute(2, 0, 1) if a.ndim == 3 else torch.from_numpy(a) for a in arrays]
    _close(det.score(tensors), names, ref)                      # uint8 CHW / HW
    _close(det.score([t.float() / 255 for t in tensors]), names, ref)   # float CHW
    nhwc = np.stack([_u8(files / "sub" / f"fake{i}.png") for i in range(3)])[..., None]   # (3, 28, 28, 1)
    batch = det.score(nhwc)
    _close(batch, [f"fake{i}.png" for i in range(3)], ref)
    assert [p.source for p in batch] == [f"<array 0, item {i}>" for i in range(3)]
    nchw = torch.from_numpy(nhwc).permute(0, 3, 1, 2).float() / 255
    mixed = det.score([str(files / "rgb.png"), nchw, pils[0], [arrays[1], files / "big.jpg"]])
    _close(mixed, ["rgb.png", "fake0.png", "fake1.png", "fake2.png", "grey0.png", "rgb.png", "big.jpg"], ref)
    assert mixed[1].source == "<tensor 1, item 0>" and mixed[5].source == "<array 3.0>"


def test_iter_scores_streams_in_order_and_keeps_going_past_unreadable_files(tiny_detector, files):
    det = detector.load(tiny_detector)
    it = det.iter_scores([files / "grey0.png", files / "missing.png", files / "broken.png", files / "rgb.png"],
                         batch_size=1)
    first = next(it)
    assert first.ok and first.source.endswith("grey0.png")
    rest = list(it)
    assert [p.label for p in rest[:2]] == ["error", "error"] and rest[2].ok
    assert "file not found" in rest[0].error and rest[0].score is None and rest[0].logit is None
    assert [p.to_record()["label"] for p in rest] == ["error", "error", rest[2].label]


def test_wrong_types_raise_a_type_error_naming_the_accepted_kinds(tiny_detector, files):
    det = detector.load(tiny_detector)
    for bad, where in ((3, "input"), ([files / "rgb.png", {"a": 1}], "item 1"), ([[b"bytes"]], "item 0[0]")):
        with pytest.raises(TypeError) as e:
            det.iter_scores(bad)                   # refused at the call, before anything is read
        msg = str(e.value)
        assert where in msg and "path" in msg and "PIL.Image" in msg and "NumPy array" in msg and "torch tensor" in msg
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        det.score(np.full((8, 8), 2.0))
    with pytest.raises(ValueError, match=r"shape \(8, 8, 2\)"):
        det.score(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="dimensions"):
        det.score(torch.zeros(1, 1, 1, 8, 8))


def test_prediction_fields_records_and_heat_map(tiny_detector, files):
    from detector.scan import COLUMNS

    det = detector.load(tiny_detector)                 # tiles: a 45x61 image is a 2x3 grid of 28-px tiles
    preds = det.score([files / "rgb.png", files / "broken.png"])
    p = preds[0]
    assert p.policy == "tile" and p.n_tiles == 6 and p.heatmap.shape == (2, 3)
    assert max(p.tile_scores) == pytest.approx(p.score) and np.isfinite(p.heatmap).all()
    assert math.isclose(1 / (1 + math.exp(-p.logit)), p.score, rel_tol=1e-9)
    recs = preds.to_records()
    assert list(recs[0]) == ["source"] + [c for c in COLUMNS if c != "path"]   # a scan row's columns
    assert recs[1]["score"] is None and recs[1]["label"] == "error"
    assert isinstance(preds[:1], detector.Predictions) and len(preds[:1]) == 1
    with pytest.raises(Exception) as e:
        p.score = 0.0                                  # frozen
    assert "cannot assign" in str(e.value)
    import importlib.util

    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="needs pandas"):
            preds.to_pandas()
    else:
        df = preds.to_pandas()
        assert list(df["label"]) == [p.label, "error"]


def test_api_defaults_are_the_scan_defaults():
    from detector import api
    from detector.scan import ScanConfig

    assert (api.BATCH_SIZE, api.MAX_TILES) == (ScanConfig().batch_size, ScanConfig().max_tiles)


def test_public_surface_is_the_runtime():
    assert "Prediction" in detector.__all__ and "load" in detector.__all__ and "from_pil" in detector.__all__
    for name in detector.__all__:
        assert getattr(detector, name) is not None
    for training in ("HardenConfig", "RetrainConfig", "harden", "retrain", "fit_bce", "Registry", "fit"):
        assert training not in detector.__all__
    for old in detector._LAZY:                         # older imports keep working
        assert getattr(detector, old) is not None
    assert (ROOT / "detector" / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()
    for obj in (detector.Detector.score, detector.Detector.iter_scores, detector.from_pil, detector.api.iter_scores,
                detector.api.score, detector.read_image, detector.load):
        assert ">>>" in obj.__doc__ or "Example" in obj.__doc__, obj
        assert "return" in obj.__annotations__, obj


@pytest.mark.slow
def test_a_folder_of_20000_images_streams_with_flat_memory(tmp_path):
    """Peak RSS after 2,000 predictions vs after 20,000 (measured: +4 MB): holding each image's model
    input would add ~35 MB. A 16-px detector keeps the test to the API's own work (reading, batching,
    streaming); the files are hard links to one 16x16 PNG."""
    from detector.artifact import Detector, spec_for_network
    from detector.nets import create_network

    folder = tmp_path / "many"
    folder.mkdir()
    first = folder / "00000.png"
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(first)
    for i in range(1, 20_000):
        try:
            os.link(first, folder / f"{i:05d}.png")
        except OSError:  # a file system without hard links
            shutil.copyfile(first, folder / f"{i:05d}.png")
    args = dict(in_channels=1, image_size=16, width=8, norm="batch")
    det = Detector(create_network("dcgan_d", **args), spec_for_network("dcgan_d", args, 16, 1, policy="resize"))
    n, peak_2k, score0 = 0, 0, None
    for p in det.iter_scores(folder):
        assert p.ok
        score0 = p.score if score0 is None else score0
        assert abs(p.score - score0) < 1e-6           # the same pixels: the same score, batch after batch
        n += 1
        if n == 2_000:
            peak_2k = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_2k) / 1024
    assert n == 20_000
    assert growth_mb < 12, f"peak memory grew {growth_mb:.1f} MB between 2,000 and 20,000 images"
