"""`unmask scan`: one correct row per file over good, bad, nested and large inputs; resumable."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import detector
from detector.decode import display_path, read_image
from detector.files import list_files
from detector.imageio import save_png
from detector.preprocess import tile_grid
from detector.scan import COLUMNS, ScanConfig, ScanOutputError, read_rows, scan
from tests.corpus import bomb_png as _bomb_png
from tests.corpus import png_bytes as _png_bytes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, real_images, fake_images):
    root = tmp_path_factory.mktemp("corpus")
    good: list[Path] = []
    (root / "real" / "deep" / "er").mkdir(parents=True)
    (root / "fake").mkdir()
    for i in range(12):
        p = root / "real" / ("deep/er" if i % 3 == 0 else "") / f"r{i}.png"
        save_png(real_images[i], p)
        good.append(p)
    for i in range(12):
        p = root / "fake" / f"f{i}.png"
        save_png(fake_images[i], p)
        good.append(p)
    big = root / "big.png"
    save_png(torch.rand(3, 200, 300), big)           # a large RGB image: tiled
    jpg = root / "photo.JPG"
    Image.new("RGB", (40, 33), (120, 30, 200)).save(jpg, quality=80)
    good += [big, jpg]
    inside = root / "folder.png"                      # a directory named like an image: walked into
    inside.mkdir()
    save_png(real_images[40], inside / "inner.png")
    good.append(inside / "inner.png")
    bad = {
        "zero.png": ("", "empty file"),
        "trunc.png": (_png_bytes(Image.new("L", (64, 64), 7))[:60], "truncated"),
        "text.jpg": ("just some words, not a JPEG\n", "contains text"),
        "bomb.png": (_bomb_png(), "decompression bomb"),
        "noise.webp": (os.urandom(300), "not a recognised image"),
    }
    bad_paths = {}
    for name, (content, reason) in bad.items():
        p = root / name
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        bad_paths[p] = reason
    (root / "dangling.png").symlink_to(root / "no_such_target.png")
    bad_paths[root / "dangling.png"] = "dangling symbolic link"
    (root / "loop.png").symlink_to(root / "loop.png")
    bad_paths[root / "loop.png"] = "symbolic link loop"
    (root / "notes.txt").write_text("not an image extension: not scanned")
    return root, good, bad_paths


def test_scan_folder_one_correct_row_per_file(corpus, tiny_detector, tmp_path):
    root, good, bad = corpus
    det = detector.load(tiny_detector)
    out = tmp_path / "results.csv"
    r = scan([root], det, out, ScanConfig(workers=2, batch_size=5, progress=False, top=3))
    rows = read_rows(out)
    by_path = {row["path"]: row for row in rows}
    assert len(rows) == len(by_path) == len(good) + len(bad)          # one row per file, no duplicates
    assert set(by_path) == {str(p) for p in good} | {str(p) for p in bad}
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    for p in good:
        row = by_path[str(p)]
        assert row["label"] in ("real", "fake") and row["error"] == ""
        img = read_image(p, channels=1)
        assert abs(float(row["score"]) - det.score_image(img)) < 1e-5   # same as the library's own scoring
        assert (row["label"] == "fake") == (float(row["score"]) >= det.spec.threshold)
        assert int(row["width"]) == img.shape[2] and int(row["height"]) == img.shape[1]
        assert row["policy"] == "tile"
    assert int(by_path[str(root / "big.png")]["n_tiles"]) == len(tile_grid(200, 300, 28)) == 88
    for p, reason in bad.items():
        row = by_path[str(p)]
        assert row["label"] == "error" and row["score"] == "", row
        assert reason in row["error"], (p, row["error"])
    assert r.n_errors == len(bad) and r.n_files == len(rows)
    assert r.n_fake + r.n_real == len(good)
    assert [s for s, _ in r.top] == sorted((float(by_path[str(p)]["score"]) for p in good), reverse=True)[:3]


def test_listing_and_refusals(corpus, tiny_detector, tmp_path):
    root, good, bad = corpus
    files = list_files([root])
    assert str(root / "notes.txt") not in files and len(files) == len(set(files))
    assert str(root / "notes.txt") in list_files([root], None)
    det = detector.load(tiny_detector)
    out = tmp_path / "r.csv"
    out.write_text("something else\n")
    with pytest.raises(ScanOutputError, match="already exists"):
        scan([root], det, out, ScanConfig(progress=False, workers=0))
    with pytest.raises(ScanOutputError, match="expected CSV header"):
        scan([root], det, out, ScanConfig(progress=False, workers=0, resume=True))
    with pytest.raises(ScanOutputError, match=".csv or .jsonl"):
        scan([root], det, tmp_path / "r.txt", ScanConfig(progress=False, workers=0))


def test_jsonl_resume_drops_torn_line_and_odd_names(tmp_path, tiny_detector, real_images):
    """A torn last record is dropped; non-UTF-8 and newline-containing names survive resume."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    names = [f"{i:03d}.png" for i in range(20)] + ["new\nline.png"]
    for i, n in enumerate(names):
        save_png(real_images[i], folder / n)
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.png")     # not valid UTF-8
    with open(odd, "wb") as f:
        f.write(_png_bytes(Image.new("L", (28, 28), 99)))
    det = detector.load(tiny_detector)
    for suffix in (".jsonl", ".csv"):
        out = tmp_path / f"res{suffix}"
        scan([folder], det, out, ScanConfig(workers=0, batch_size=4, progress=False))
        full = out.read_bytes()
        cut = full[: len(full) - 37]                 # kill mid-record: a torn last line
        out.write_bytes(cut)
        r = scan([folder], det, out, ScanConfig(workers=0, batch_size=4, progress=False, resume=True))
        assert r.n_resumed > 0 and r.n_new > 0
        assert out.read_bytes() == full              # byte-identical to the uninterrupted scan
        paths = [row["path"] for row in read_rows(out)]
        assert len(paths) == len(set(paths)) == 22
        assert display_path(odd) in paths and str(folder / "new\nline.png") in paths
        assert display_path(odd).endswith("caf\\xe9.png")
        out.read_bytes().decode("utf-8")                       # the output is valid UTF-8


def test_cli_scan_sigkill_then_resume_every_file_once(tmp_path, tiny_detector, real_images):
    folder = tmp_path / "many"
    for i in range(600):
        sub = folder / f"d{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        save_png(torch.rand(1, 84, 84) if i % 2 else real_images[i % 512], sub / f"{i:04d}.png")
    out = tmp_path / "scan.csv"
    cmd = [sys.executable, "-m", "unmask", "scan", str(folder), "--detector", str(tiny_detector), "--out", str(out),
           "--batch-size", "2", "--workers", "0", "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") > 60:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the scan finished before it could be killed"
    partial = read_rows(out)
    assert 0 < len(partial) < 600
    res = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"{len(partial)} from before" in res.stdout
    paths = [row["path"] for row in read_rows(out)]
    assert len(paths) == 600 and len(set(paths)) == 600
    assert out.read_bytes().endswith(b"\n")


def test_cli_exit_codes(corpus, tiny_detector, tmp_path):
    from click.testing import CliRunner

    from unmask.cli import main

    root, good, bad = corpus
    run = lambda *a: CliRunner().invoke(main, ["scan", *map(str, a), "--quiet"])  # noqa: E731
    ok = run(good[0], good[1], "--detector", tiny_detector, "--out", tmp_path / "a.jsonl", "--top", "1",
             "--workers", "0")
    assert ok.exit_code == 0, ok.output
    assert "files: 2" in ok.output and "top 1 most suspicious" in ok.output
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(good[0]), str(good[1])]
    some_bad = run(good[0], root / "zero.png", "--detector", tiny_detector, "--out", tmp_path / "b.csv",
                   "--workers", "0")
    assert some_bad.exit_code == 1 and "errors: 1" in some_bad.output
    usage = run(root / "missing.png", "--detector", tiny_detector, "--out", tmp_path / "c.csv")
    assert usage.exit_code == 2 and "no such file or folder" in usage.output
    bad_det = run(good[0], "--detector", root / "real", "--out", tmp_path / "d.csv")
    assert bad_det.exit_code == 2 and "missing file" in bad_det.output
    exists = run(good[0], "--detector", tiny_detector, "--out", tmp_path / "a.jsonl")
    assert exists.exit_code == 2 and "--resume" in exists.output
