"""Video: streamed sampling, tiles and heatmaps, face crops, per-video verdicts, every bad input.

Videos are built here with cv2.VideoWriter (MJPG .avi) from real embedded images, with GAN
output (the ``fake_images`` fixture) spliced into known frames and known tiles.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from detector.artifact import load
from detector.video import (
    FRAME_COLUMNS,
    VIDEO_COLUMNS,
    FrameScorer,
    VideoConfig,
    analyze_video,
    analyze_videos,
    count_frames,
    face_crop_box,
    probe,
    sample_indices,
    stream_frames,
    video_stats,
)
from tests.corpus import header_only_avi, patch_avi_count, write_video, zero_frame_video

FAKE_FRAMES = set(range(8, 14))   # frames carrying GAN content in the mosaic video
FAKE_TILE = (1, 2)                # (row, col) of the spliced tile in the 3x3 mosaic
N_FRAMES = 24


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()  # (H, W)


def mosaic(real_images, i: int, fake: torch.Tensor | None = None) -> np.ndarray:
    m = np.zeros((84, 84), np.uint8)
    for r in range(3):
        for c in range(3):
            m[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] = _u8(real_images[(i * 9 + r * 3 + c) % 384])
    if fake is not None:
        r, c = FAKE_TILE
        m[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] = _u8(fake)
    return m


@pytest.fixture(scope="module")
def det(tiny_detector):
    return load(tiny_detector)


@pytest.fixture(scope="module")
def videos(tmp_path_factory, real_images, fake_images):
    d = tmp_path_factory.mktemp("videos")
    fake = write_video(d / "manipulated.avi", [mosaic(real_images, i, fake_images[i] if i in FAKE_FRAMES else None)
                                               for i in range(N_FRAMES)])
    clean = write_video(d / "clean.avi", [mosaic(real_images, i + 100) for i in range(N_FRAMES)])
    whole = write_video(d / "frames.avi", [_u8(fake_images[i] if i in FAKE_FRAMES else real_images[i])
                                           for i in range(N_FRAMES)])
    return {"manipulated": fake, "clean": clean, "whole": whole, "dir": d}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------- sampling


def test_sample_indices_uniform_and_complete():
    assert sample_indices(10, 20) == list(range(10))
    assert sample_indices(100, 5) == [0, 25, 50, 74, 99]
    assert sample_indices(0, 5) == []


def test_stream_frames_indices_times_and_stats(videos):
    from detector.video import StreamStats

    stats = StreamStats()
    got = [(f.index, round(f.time, 3), f.image.shape) for f in
           stream_frames(videos["whole"], lambda i, t: i % 5 == 0, stats=stats)]
    assert [g[0] for g in got] == [0, 5, 10, 15, 20]
    assert [g[1] for g in got] == [0.0, 0.5, 1.0, 1.5, 2.0]   # 10 fps
    assert got[0][2] == (28, 28, 3)
    assert stats.decoded == N_FRAMES and stats.sampled == 5
    assert count_frames(videos["whole"]) == N_FRAMES
    info = probe(videos["whole"])
    assert (info.frame_count, info.fps, info.width, info.height) == (N_FRAMES, 10.0, 28, 28)


@pytest.mark.parametrize("cfg, expected", [
    (VideoConfig(every=4), [0, 4, 8, 12, 16, 20]),
    (VideoConfig(fps=2.5), [0, 4, 8, 12, 16, 20]),       # 10 fps video, one frame every 0.4 s
    (VideoConfig(frames=4), [0, 8, 15, 23]),
    (VideoConfig(), list(range(N_FRAMES))),               # default: 32 frames, the video has 24
])
def test_sampling_modes(det, videos, cfg, expected):
    buf = io.StringIO()
    r = analyze_video(videos["whole"], det, cfg, frames_out=buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert [int(row[1]) for row in rows] == expected
    assert r.status == "ok" and r.n_frames == len(expected) and r.n_decoded == N_FRAMES
    assert [float(row[2]) for row in rows] == pytest.approx([i / 10 for i in expected])


def test_config_rejects_two_modes():
    with pytest.raises(ValueError, match="one sampling mode"):
        VideoConfig(every=2, fps=1.0).validate()
    with pytest.raises(ValueError, match="aggregation"):
        VideoConfig(aggregate="median").validate()


# --------------------------------------------------------------------------------- tiles / frames


def test_tiled_heatmap_finds_the_spliced_tile(det, videos, tmp_path):
    results = analyze_videos([videos["manipulated"]], det, VideoConfig(every=1, progress=False), tmp_path)
    assert results[0].status == "ok"
    rows = read_csv(tmp_path / "frames.csv")
    assert tuple(rows[0]) == FRAME_COLUMNS and len(rows) == N_FRAMES
    labels = [int(int(r["frame"]) in FAKE_FRAMES) for r in rows]
    scores = [float(r["score"]) for r in rows]
    assert roc_auc_score(labels, scores) > 0.95
    thr = det.spec.threshold
    assert all(float(r["score"]) >= thr for r in rows if int(r["frame"]) in FAKE_FRAMES)
    assert all(float(r["score"]) < thr for r in rows if int(r["frame"]) not in FAKE_FRAMES)
    # the hottest tile (the frames.csv region and the heatmap's argmax) is the spliced one
    fy, fx = FAKE_TILE[0] * 28, FAKE_TILE[1] * 28
    for r in rows:
        if int(r["frame"]) in FAKE_FRAMES:
            assert r["region"] == f"{fy},{fx},28,28" and r["label"] == "fake"
    heat = np.load(tmp_path / "heatmaps" / f"{results[0].id}.npy")
    assert heat.shape == (N_FRAMES, 3, 3)
    for i in FAKE_FRAMES:
        assert np.unravel_index(heat[i].argmax(), heat[i].shape) == FAKE_TILE
        others = np.delete(heat[i].ravel(), FAKE_TILE[0] * 3 + FAKE_TILE[1])
        assert others.max() < thr
    assert (tmp_path / "timelines" / f"{results[0].id}.png").stat().st_size > 1000
    assert (tmp_path / "peaks" / f"{results[0].id}.png").is_file()


def test_scorer_matches_detector_tiles(det, videos):
    """Batching regions across frames gives the same scores as scoring each frame alone."""
    frames = list(stream_frames(videos["manipulated"], lambda i, t: i in (7, 8, 9)))
    a = [r.score for _, r in FrameScorer(det, VideoConfig(batch_size=1)).score(frames)]
    b = [r.score for _, r in FrameScorer(det, VideoConfig(batch_size=1000)).score(frames)]
    direct = [det.score_image(torch.from_numpy(f.image[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255)
              for f in frames]
    assert a == pytest.approx(b, abs=1e-5) and a == pytest.approx(direct, abs=1e-5)


def test_whole_frame_splices_flagged(det, videos):
    buf = io.StringIO()
    r = analyze_video(videos["whole"], det, VideoConfig(every=1, all_tiles=True), frames_out=buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert len(rows) == N_FRAMES and all(row[3] == "tile" for row in rows)  # 28x28 frame = one tile
    labels = [int(int(row[1]) in FAKE_FRAMES) for row in rows]
    assert roc_auc_score(labels, [float(row[5]) for row in rows]) > 0.95
    assert r.flagged_fraction == pytest.approx(len(FAKE_FRAMES) / N_FRAMES)


@pytest.mark.parametrize("how", ["topk_mean", "max", "flagged_fraction"])
def test_video_verdict_separates_manipulated_from_clean(det, videos, tmp_path, how):
    cfg = VideoConfig(aggregate=how, progress=False)
    res = analyze_videos([videos["dir"] / "clean.avi", videos["dir"] / "manipulated.avi"], det, cfg, tmp_path)
    rows = {Path(r["video"]).name: r for r in read_csv(tmp_path / "videos.csv")}
    assert set(rows) == {"clean.avi", "manipulated.avi"} and tuple(next(iter(rows.values()))) == VIDEO_COLUMNS
    assert rows["manipulated.avi"]["verdict"] == "fake" and rows["clean.avi"]["verdict"] == "real"
    assert float(rows["manipulated.avi"]["score"]) > float(rows["clean.avi"]["score"])
    assert all(r["aggregation"] == how and r["status"] == "ok" and r["error"] == "" for r in rows.values())
    assert [r.status for r in res] == ["ok", "ok"]


def test_frames_smaller_than_the_input_size(det, tmp_path, real_images):
    """A 20x14 video: each short side is stretched to the input size, boxes are given in frame pixels."""
    path = write_video(tmp_path / "small.avi", [np.ascontiguousarray(_u8(real_images[i])[:14, :20])
                                                for i in range(4)])
    buf = io.StringIO()
    r = analyze_video(path, det, VideoConfig(every=1, all_tiles=True), frames_out=buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert r.status == "ok" and r.n_frames == 4 and (r.width, r.height) == (20, 14)
    boxes = {tuple(map(int, row[4].split(","))) for row in rows}
    assert boxes == {(0, 0, 14, 20)}  # both sides below 28: one tile stretched over the whole frame


def test_mean_dilutes_a_short_manipulation(det):
    """Why topk_mean is the default: 6 fake frames of 24 pass under a mean but not a top-k mean."""
    scores = [0.01] * 18 + [0.99] * 6
    assert video_stats(scores, 0.5, VideoConfig(aggregate="mean"))["verdict"] == "real"
    st = video_stats(scores, 0.5, VideoConfig())
    assert st["verdict"] == "fake" and st["topk"] == 3
    one_false_positive = [0.01] * 23 + [0.9]
    assert video_stats(one_false_positive, 0.5, VideoConfig())["verdict"] == "real"
    assert video_stats(one_false_positive, 0.5, VideoConfig(aggregate="max"))["verdict"] == "fake"


def test_annotated_video_written(det, videos, tmp_path):
    res = analyze_videos([videos["manipulated"]], det, VideoConfig(every=3, annotate=True, progress=False), tmp_path)
    out = Path(res[0].outputs["annotated"])
    assert out.parent == tmp_path / "annotated" and out.suffix == ".avi"
    assert count_frames(out) == N_FRAMES // 3
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind


# --------------------------------------------------------------------------------- faces


def test_face_crop_box_geometry():
    # centred square, 1.3 x the larger side
    assert face_crop_box(100, 50, 40, 60, 640, 480, 1.3) == (41, 81, 78, 78)
    # near the top-left corner: shifted inside, not shrunk
    assert face_crop_box(0, 0, 40, 40, 640, 480, 1.3) == (0, 0, 52, 52)
    # near the bottom-right corner
    assert face_crop_box(610, 450, 30, 30, 640, 480, 1.3) == (441, 601, 39, 39)
    # larger than the frame: capped at the shorter side
    assert face_crop_box(10, 10, 100, 100, 120, 90, 1.3) == (0, 15, 90, 90)
    # margin 1.0 is the box itself (square)
    assert face_crop_box(20, 30, 50, 50, 640, 480, 1.0) == (30, 20, 50, 50)


def test_no_face_rows_and_verdict(det, videos, tmp_path):
    res = analyze_videos([videos["clean"]], det, VideoConfig(faces=True, every=6, progress=False), tmp_path)
    rows = read_csv(tmp_path / "frames.csv")
    assert len(rows) == 4 and all(r["kind"] == "none" and r["score"] == "" and r["note"] == "no face detected"
                                  for r in rows)
    v = read_csv(tmp_path / "videos.csv")[0]
    assert v["verdict"] == "no-face" and v["n_no_face"] == "4" and v["n_frames"] == "0"
    assert "no face detected in any of the 4 sampled frames" in v["error"] and res[0].status == "ok"


def test_faces_mode_scores_each_face_crop(det, videos, monkeypatch):
    """With the detector's boxes given, each face is cropped with the margin and scored on its own."""
    import detector.video.faces as V  # FrameScorer looks faces up through this module

    # "faces" at the spliced tile (fake) and at the top-left tile (real), as (x, y, w, h)
    fy, fx = FAKE_TILE[0] * 28, FAKE_TILE[1] * 28
    monkeypatch.setattr(V, "detect_faces", lambda img, min_size=24: [(fx + 3, fy + 3, 22, 22), (3, 3, 22, 22)])
    buf = io.StringIO()
    r = analyze_video(videos["manipulated"], det, VideoConfig(faces=True, every=1, margin=28 / 22), frames_out=buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert len(rows) == 2 * N_FRAMES and all(row[3] == "face" for row in rows)
    spliced = [row for row in rows if row[4] == f"{fy},{fx},28,28"]
    plain = [row for row in rows if row[4] == "0,0,28,28"]
    assert len(spliced) == len(plain) == N_FRAMES
    assert all((float(row[5]) >= 0.5) == (int(row[1]) in FAKE_FRAMES) for row in spliced)
    assert all(float(row[5]) < 0.5 for row in plain)
    assert r.verdict == "fake" and r.n_frames == N_FRAMES


def draw_face(size: int = 120, bg: int = 60) -> np.ndarray:
    """A synthetic grey face (skin oval, hair, dark eyes and brows, bright nose, dark mouth) that
    OpenCV's frontal-face Haar cascade detects; (size, size) uint8."""
    img = np.full((size, size), bg, np.uint8)
    c, s = size // 2, size / 200
    cv2.ellipse(img, (c, c), (int(70 * s), int(92 * s)), 0, 0, 360, 190, -1)
    cv2.ellipse(img, (c, int(c - 88 * s)), (int(72 * s), int(30 * s)), 0, 180, 360, 40, -1)
    for dx in (-30, 30):
        cv2.ellipse(img, (int(c + dx * s), int(c - 25 * s)), (int(16 * s), int(6 * s)), 0, 0, 360, 40, -1)
        cv2.ellipse(img, (int(c + dx * s), int(c - 42 * s)), (int(20 * s), int(4 * s)), 0, 0, 360, 70, -1)
    cv2.ellipse(img, (c, int(c + 10 * s)), (int(8 * s), int(22 * s)), 0, 0, 360, 215, -1)
    cv2.ellipse(img, (c, int(c + 48 * s)), (int(28 * s), int(8 * s)), 0, 0, 360, 70, -1)
    return cv2.GaussianBlur(img, (0, 0), 3 * s)


def test_faces_detected_cropped_and_missing_faces_reported(det, tmp_path):
    """Frames 0-5 show a face at a known place, frames 6-9 show none."""
    fx, fy, size = 150, 60, 120
    frames = []
    for i in range(10):
        f = np.full((240, 320), 60, np.uint8)
        if i < 6:
            f[fy:fy + size, fx:fx + size] = draw_face(size)
        frames.append(f)
    path = write_video(tmp_path / "face.avi", frames)
    res = analyze_videos([path], det, VideoConfig(faces=True, every=1, annotate=True, progress=False), tmp_path / "o")
    rows = read_csv(tmp_path / "o" / "frames.csv")
    assert [int(r["frame"]) for r in rows] == list(range(10))  # one face per face frame, one row per empty frame
    for r in rows:
        if int(r["frame"]) < 6:
            assert r["kind"] == "face" and r["score"] != "" and r["label"] in ("real", "fake")
            y, x, h, w = map(int, r["region"].split(","))
            assert h == w and size < h <= 240  # 1.3 x the detected box: larger than the drawn face
            cy, cx = y + h / 2, x + w / 2
            assert abs(cy - (fy + size / 2)) < 0.15 * size and abs(cx - (fx + size / 2)) < 0.15 * size
        else:
            assert r["kind"] == "none" and r["note"] == "no face detected" and r["score"] == ""
    v = res[0]
    assert v.n_frames == 6 and v.n_no_face == 4 and v.verdict in ("real", "fake")
    assert count_frames(v.outputs["annotated"]) == 10


MESSI = Path("/usr/share/doc/opencv-doc/examples/data/messi5.jpg")  # Debian's opencv-doc (.ci/run installs it)


@pytest.mark.skipif(not MESSI.exists(), reason="needs opencv-doc's messi5.jpg for a real face")
def test_haar_cascade_finds_a_real_face():
    """The bundled cascade finds the player's face in a real 548x342 photo, where a person sees it."""
    from detector.video import detect_faces

    img = cv2.imread(str(MESSI))
    boxes = detect_faces(img)
    assert 1 <= len(boxes) <= 3

    def iou(b):  # the face lies at about x 226-264, y 94-132 (checked by eye)
        x, y, w, h = b
        inter = max(0, min(x + w, 264) - max(x, 226)) * max(0, min(y + h, 132) - max(y, 94))
        return inter / (w * h + 38 * 38 - inter)

    assert max(map(iou, boxes)) > 0.6


# --------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad_inputs(videos, tmp_path_factory, real_images):
    d = tmp_path_factory.mktemp("bad")
    good = videos["whole"].read_bytes()
    movi = good.find(b"movi")
    (d / "text.mp4").write_text("this is a text file, not a video\n" * 4)
    (d / "noise.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (d / "empty.mkv").write_bytes(b"")
    zero_frame_video(d / "zero.avi")
    header_only_avi(videos["whole"], d / "headeronly.avi")        # frames cut off: header says 24, none decode
    (d / "truncated.avi").write_bytes(good[: movi + (len(good) - movi) // 2])
    big = write_video(d / "big.avi", [np.zeros((80, 100), np.uint8)] * 3)
    patch_avi_count(videos["whole"], d / "overcount.avi", 500)
    patch_avi_count(videos["whole"], d / "undercount.avi", 5)
    patch_avi_count(videos["whole"], d / "nocount.avi", 0)
    os.symlink(d / "gone.avi", d / "dangling.avi")
    return d, big


EXPECTED = {
    "text.mp4": ("error", "a text file: OpenCV/FFmpeg cannot open it as a video"),
    "noise.avi": ("error", "not a video: OpenCV/FFmpeg cannot open it"),
    "empty.mkv": ("error", "empty file (0 bytes)"),
    "zero.avi": ("error", "video has zero frames"),
    "headeronly.avi": ("error", "corrupt video: the header announces 24 frames but none could be decoded"),
    "big.avi": ("error", "frame size 100x80 (8,000 pixels) is above the limit of 7,500 pixels (--max-pixels)"),
    "truncated.avi": ("warning", "frame count mismatch: the header says 24 frames but"),
    "overcount.avi": ("warning", "the header says 500 frames but 24 decoded (truncated file or wrong header); "
                                 "resampled 8 frames over the 24 decoded"),
    "undercount.avi": ("warning", "the header says 5 frames but 24 decoded (wrong header)"),
    "nocount.avi": ("ok", "frame count not in the header; counted 24 frames in a first pass"),
    "missing.avi": ("error", "file not found"),
    "dangling.avi": ("error", "dangling symbolic link"),
}


def test_every_bad_input_gets_its_row_and_the_rest_go_on(det, videos, bad_inputs, tmp_path):
    d, _ = bad_inputs
    names = sorted(EXPECTED)
    paths = [d / n for n in names] + [videos["manipulated"]]
    res = analyze_videos(paths, det, VideoConfig(frames=8, max_pixels=7500, progress=False), tmp_path)
    rows = read_csv(tmp_path / "videos.csv")
    assert len(rows) == len(paths)  # exactly one row per input
    by = {Path(r["video"]).name: r for r in rows}
    for name, (status, reason) in EXPECTED.items():
        assert by[name]["status"] == status, (name, by[name])
        assert reason in by[name]["error"], (name, by[name]["error"])
        if status == "error":
            assert by[name]["verdict"] == "" and by[name]["score"] == ""
        else:
            assert by[name]["verdict"] in ("real", "fake")
    assert by["manipulated.avi"]["status"] == "ok" and by["manipulated.avi"]["verdict"] == "fake"
    frames = read_csv(tmp_path / "frames.csv")
    assert not any(Path(r["video"]).name in {n for n, (s, _) in EXPECTED.items() if s == "error"} for r in frames)
    assert len(res) == len(paths)


def test_wrong_header_count_resamples_over_the_real_frames(det, bad_inputs):
    d, _ = bad_inputs
    for name in ("overcount.avi", "undercount.avi", "nocount.avi"):
        buf = io.StringIO()
        r = analyze_video(d / name, det, VideoConfig(frames=4), frames_out=buf)
        idx = [int(row[1]) for row in csv.reader(io.StringIO(buf.getvalue()))]
        assert idx == [0, 8, 15, 23], name  # spread over the 24 real frames, whatever the header says
        assert r.n_decoded == 24 and r.n_frames == 4
    assert probe(d / "overcount.avi").frame_count == 500  # the header really lies


def test_truncated_video_scores_what_decodes(det, bad_inputs):
    d, _ = bad_inputs
    r = analyze_video(d / "truncated.avi", det, VideoConfig(every=1))
    assert r.status == "warning" and 0 < r.n_decoded < 24 and r.n_frames == r.n_decoded


def test_time_limit_gives_an_error_row(det, videos):
    r = analyze_video(videos["manipulated"], det, VideoConfig(every=1, time_limit=1e-6))
    assert r.status == "error" and r.error.startswith("time limit reached")


def test_memory_stays_flat_however_long_the_video(det, tmp_path, real_images):
    """Peak traced allocations do not grow with the number of frames (frames are streamed)."""
    frame = np.kron(_u8(real_images[0]), np.ones((3, 3), np.uint8))  # 84x84
    short = write_video(tmp_path / "short.avi", [frame] * 6)
    long = write_video(tmp_path / "long.avi", [frame] * 42)
    cfg = VideoConfig(every=1, batch_size=64)
    peaks = []
    for p in (short, long):
        tracemalloc.start()
        r = analyze_video(p, det, cfg, frames_out=io.StringIO())
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert r.status == "ok"
    frame_bytes = 84 * 84 * 3
    assert peaks[1] < peaks[0] + 8 * frame_bytes, peaks  # holding the 36 extra frames would add ~0.8 MB


# --------------------------------------------------------------------------------- CLI


def test_cli_video_outputs_and_exit_codes(tiny_detector, videos, bad_inputs, tmp_path):
    from unmask.cli import main

    d, _ = bad_inputs
    runner = CliRunner()
    out = tmp_path / "out"
    r = runner.invoke(main, ["video", str(videos["manipulated"]), str(videos["clean"]), "--detector",
                             str(tiny_detector), "--out", str(out), "--every", "2", "--annotate", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "FAKE" in r.output and "REAL" in r.output
    for sub in ("timelines", "heatmaps", "peaks", "annotated"):
        assert len(list((out / sub).glob("*.png" if sub in ("timelines", "peaks") else "*"))) >= 2, sub
    assert (out / "run.json").is_file()
    # a folder with a bad file: its error row, the others scored, exit code 1
    r = runner.invoke(main, ["video", str(d / "text.mp4"), str(videos["clean"]), "--detector", str(tiny_detector),
                             "--out", str(tmp_path / "o2"), "--quiet", "--json"])
    assert r.exit_code == 1 and "ERROR" in r.stderr and "a text file" in r.stderr
    summary = json.loads(r.stdout)  # --json: one object on stdout, the result lines on stderr
    assert (summary["command"], summary["videos"], summary["errors"]) == ("video", 2, 1)
    assert [Path(v["video"]).name for v in summary["results"]] == ["text.mp4", "clean.avi"]
    assert len(read_csv(tmp_path / "o2" / "videos.csv")) == 2
    r = runner.invoke(main, ["video", str(videos["clean"]), "--detector", str(tiny_detector), "--out",
                             str(tmp_path / "o3"), "--every", "2", "--fps", "3"])
    assert r.exit_code == 2 and "one sampling mode" in r.output
    r = runner.invoke(main, ["video", str(videos["clean"]), "--detector", str(tmp_path / "nope"), "--out",
                             str(tmp_path / "o4")])
    assert r.exit_code == 2 and "not a detector directory" in r.output
    r = runner.invoke(main, ["video", "--help"])
    assert r.exit_code == 0 and "Example:" in r.output


def test_cli_folder_recursive(tiny_detector, videos, tmp_path):
    from unmask.cli import main

    sub = tmp_path / "in" / "nested"
    sub.mkdir(parents=True)
    (sub / "a.avi").write_bytes(videos["clean"].read_bytes())
    (sub / "notes.txt").write_text("ignored: not a video extension")
    r = CliRunner().invoke(main, ["video", str(tmp_path / "in"), "--detector", str(tiny_detector), "--out",
                                  str(tmp_path / "out"), "--frames", "3", "--quiet"])
    assert r.exit_code == 0, r.output
    rows = read_csv(tmp_path / "out" / "videos.csv")
    assert [Path(x["video"]).name for x in rows] == ["a.avi"] and rows[0]["n_frames"] == "3"


def test_bench_runs_tiny(tiny_detector, tmp_path):
    from bench.video_speed import measure

    m = measure(tiny_detector, frames=6, size=56, workdir=tmp_path)
    assert m["frames"] == 6 and m["decode_fps"] > 0 and m["score_fps"] > 0
    assert m["ratio"] == pytest.approx(m["score_fps"] / m["decode_fps"])
