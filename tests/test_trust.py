"""The trust guard (issue 15): domain verdicts, aggregate thresholds, the artifact's trust section.

Uses OpenCV's sample photos and clips when opencv-doc is installed (CI installs it); otherwise
generated colour stand-ins, and the tests that need the real files say so when they skip.
"""
from __future__ import annotations

import csv
import glob
import io
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import detector
from detector.scoring import Scorer
from detector.tails import Tails

OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")
ARGS = dict(in_channels=1, image_size=28, width=16, norm="batch")
FPR = 0.05  # a high target keeps the rate tests small: hundreds of frames, not tens of thousands


def _fmnist(split: str, n: int, last: bool = False) -> torch.Tensor:
    from detector.data import load_fashion_mnist

    im = load_fashion_mnist(split, variant="embedded").images
    im = im[-n:] if last else im[:n]
    return torch.from_numpy(im.copy()).unsqueeze(1).float() / 255.0


def _held_out() -> torch.Tensor:
    """Real images the fixture detector never saw, from the distribution its validation reals came
    from (the official train split beyond the first 3,000): the rate tests check the calibration
    itself; scripts/trust_study.py measures it across the train/t10k shift with the demo detector."""
    from detector.data import load_fashion_mnist

    im = load_fashion_mnist("train", variant="embedded").images[3000:6000]
    return torch.from_numpy(im.copy()).unsqueeze(1).float() / 255.0


def _photos() -> list[str]:
    return sorted(p for p in glob.glob(str(OPENCV / "*")) if p.lower().endswith((".jpg", ".png")))


@pytest.fixture(scope="module")
def trusted(tmp_path_factory, fake_images):
    """A tiny detector hardened with a trust section (grey 28x28 Fashion-MNIST reals)."""
    from detector.nets import create_network
    from detector.train.config import HardenConfig
    from detector.train.harden import harden
    from detector.train.splits import Splits, split_tensor

    x = _fmnist("train", 3000)
    real = Splits(x[:1500], x[1500:], _fmnist("test", 200))
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("trusted") / "det"
    harden(create_network("dcgan_d", **ARGS), "dcgan_d", ARGS, real, {"tconv": split_tensor(fake_images, 1)}, out,
           HardenConfig(steps=60, target_fpr=FPR), flip=False, log=lambda m: None, progress=False,
           originals={"sides": np.full((len(real.train), 2), 28.0)})
    return out


def test_tails_keep_the_target_rate_for_aggregates():
    rng = np.random.default_rng(0)
    val, fresh = rng.normal(-3, 1, 3000), rng.normal(-3, 1, (20000, 16))
    t = Tails(val, 1.0, 0.01)
    p = 1 / (1 + np.exp(-fresh))
    for how, agg in (("max", p.max(1)), ("topk_mean", np.sort(p, 1)[:, -3:].mean(1)), ("mean", p.mean(1))):
        rate = float((agg >= t.tiles(16, how, 3)).mean())
        assert 0.005 <= rate <= 0.015, (how, rate)
    naive = float((p.max(1) >= t.tiles(1)).mean())
    assert naive > 0.1  # what a per-tile threshold would give: 1 - 0.99^16
    assert t.tiles(16) == t.tiles(16) and t.tiles(16) > t.tiles(4) > t.tiles(1)  # cached, monotone


def test_artifact_round_trip_and_old_artifacts(trusted, tiny_detector, tmp_path, caplog):
    det = detector.load(trusted)
    cfg = json.loads((trusted / "detector.json").read_text())
    assert cfg["format_version"] == 2 and cfg["trust"]["version"] == 1 and cfg["trust"]["target_fpr"] == FPR
    assert (trusted / "trust.safetensors").read_bytes()[:2] not in (b"\x80\x04", b"PK")
    d = det.trust.domain
    assert d.side_lo == d.side_hi == 28 and d.colour_hi is not None and d.precision.dtype == torch.float32
    assert det.threshold_for(1) == det.spec.threshold < det.threshold_for(16)
    # an artifact written the old way (format 1, no trust section) loads with a one-line warning
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.safetensors").write_bytes((tiny_detector / "model.safetensors").read_bytes())
    spec = json.loads((tiny_detector / "detector.json").read_text())
    spec.pop("trust")
    spec["format_version"] = 1
    (old / "detector.json").write_text(json.dumps(spec))
    with caplog.at_level(logging.WARNING, logger="detector"):
        od = detector.load(old)
    msgs = [r.getMessage() for r in caplog.records]
    assert od.trust is None and len(msgs) == 1 and "no domain check is possible" in msgs[0] and "\n" not in msgs[0]
    r = next(Scorer(od).score_images([_fmnist("test", 1)[0]]))
    assert r.in_domain is None and r.domain_score is None and r.label() in ("real", "fake")
    # a damaged trust file is refused by name
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("model.safetensors", "detector.json"):
        (bad / f).write_bytes((trusted / f).read_bytes())
    (bad / "trust.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(detector.ArtifactError, match="trust.safetensors: is a pickle"):
        detector.load(bad)


def test_held_out_reals_and_own_fakes_stay_in_domain(trusted, fake_images):
    det = detector.load(trusted)
    sc = Scorer(det)
    real = list(sc.score_images(_fmnist("test", 1000, last=True)))
    assert np.mean([r.in_domain for r in real]) >= 0.98
    fakes = list(sc.score_images(fake_images[-200:]))
    assert np.mean([r.in_domain for r in fakes]) >= 0.95
    assert np.mean([r.label() == "fake" for r in fakes]) >= 0.9


def _colour_standins(folder: Path, n: int = 20) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((360, 240), Image.BILINEAR)
        paths.append(str(folder / f"photo{i}.jpg"))
        img.save(paths[-1], quality=90)
    return paths


def test_photos_are_out_of_domain_never_fake(trusted, tmp_path):
    from unmask.cli import main

    photos = _photos()
    if not photos:
        print("opencv-doc not installed: using generated colour stand-ins")
        photos = _colour_standins(tmp_path / "photos")
    src = tmp_path / "in"
    src.mkdir()
    for p in photos:
        (src / Path(p).name).symlink_to(p)
    out = tmp_path / "r.csv"
    res = CliRunner().invoke(main, ["scan", str(src), "--detector", str(trusted), "--out", str(out), "--workers", "0",
                                    "--quiet"])
    assert res.exit_code == 4, res.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == len(photos) and "out of domain:" in res.output and "not counted as real or fake" in res.output
    assert np.mean([r["label"] == "out_of_domain" for r in rows]) >= 0.95
    assert not [r for r in rows if r["label"] == "fake"]
    assert all(r["score"] and r["domain_score"] for r in rows)  # the raw score is still there
    assert "most suspicious" not in res.output or "in-domain" in res.output
    few = tmp_path / "few"  # the other modes on a handful of them (and one in-domain image)
    few.mkdir()
    for p in photos[:6]:
        (few / Path(p).name).symlink_to(p)
    from PIL import Image

    Image.fromarray((_fmnist("test", 1)[0, 0] * 255).byte().numpy()).save(few / "fmnist.png")
    res = CliRunner().invoke(main, ["scan", str(few), "--detector", str(trusted), "--out", str(out), "--overwrite",
                                    "--workers", "0", "--quiet", "--out-of-domain", "score"])
    scored = list(csv.DictReader(open(out)))
    assert res.exit_code == 0 and {r["label"] for r in scored} <= {"real", "fake"}
    assert "their real/fake labels are kept" in res.output
    res = CliRunner().invoke(main, ["scan", str(few), "--detector", str(trusted), "--out", str(out), "--overwrite",
                                    "--workers", "0", "--quiet", "--out-of-domain", "skip"])
    kept = list(csv.DictReader(open(out)))
    assert res.exit_code == 4 and [r["path"] for r in kept] == [str(few / "fmnist.png")]
    assert "top 1 most suspicious in-domain" in res.output


def test_tiled_images_keep_the_per_image_rate(trusted):
    det = detector.load(trusted)
    real = _held_out()
    g = torch.Generator().manual_seed(1)
    imgs = [real[torch.randint(0, len(real), (16,), generator=g)].view(4, 4, 28, 28).permute(0, 2, 1, 3)
            .reshape(1, 112, 112) for _ in range(1500)]
    rs = list(Scorer(det, policy="tile").score_images(imgs))
    assert {r.n_tiles for r in rs} == {16}
    rate = np.mean([r.label() == "fake" for r in rs])
    assert 0.5 * FPR <= rate <= 1.5 * FPR, rate
    assert np.mean([r.score >= det.spec.threshold for r in rs]) > 2 * FPR  # the per-tile threshold's rate


def test_clean_clips_keep_frame_and_video_rates(trusted, tmp_path):
    from detector.video import VideoConfig, analyze_videos
    from unmask.synth import splice_video

    det = detector.load(trusted)
    real = _held_out()
    paths = [tmp_path / f"c{i}.avi" for i in range(30)]
    for i, p in enumerate(paths):
        splice_video(p, real, None, frames=10, seed=100 + i)
    res = analyze_videos(paths, det, VideoConfig(every=1, progress=False), tmp_path / "out")
    rows = list(csv.DictReader(open(tmp_path / "out" / "frames.csv")))
    frame_rate = np.mean([r["label"] == "fake" for r in rows])
    assert len(rows) == 300 and 0.5 * FPR <= frame_rate <= 1.5 * FPR, frame_rate
    assert np.mean([r.verdict == "fake" for r in res]) <= 1.5 * FPR
    assert all(r.in_domain for r in res)


def test_colour_clip_is_out_of_domain(trusted, tmp_path):
    import cv2

    clip = tmp_path / "colour.avi"  # the first 16 frames of OpenCV's street-camera clip (or a stand-in)
    src = cv2.VideoCapture(str(OPENCV / "vtest.avi"))
    frames = [f for ok, f in (src.read() for _ in range(16)) if ok]
    src.release()
    if not frames:
        print("opencv-doc not installed: using a generated colour clip")
        rng = np.random.default_rng(0)
        frames = [cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (160, 120)) for _ in range(16)]
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for f in frames:
        out.write(f)
    out.release()
    from unmask.cli import main

    res = CliRunner().invoke(main, ["video", str(clip), "--detector", str(trusted), "--out", str(tmp_path / "v"),
                                    "--frames", "6", "--quiet"])
    assert res.exit_code == 4, res.output
    (row,) = list(csv.DictReader(open(tmp_path / "v" / "videos.csv")))
    assert row["verdict"] == "out_of_domain" and row["in_domain"] == "False" and float(row["ood_fraction"]) > 0.5


def _colour_images() -> list[torch.Tensor]:
    from detector.decode import read_image_reduced

    imgs = []
    for p in _photos():
        d = read_image_reduced(p, 3)
        if d.colour > 0.02 and min(d.image.shape[1:]) >= 96:
            imgs.append(d.image)
    if not imgs:
        print("opencv-doc not installed: using generated colour stand-ins")
        g = torch.Generator().manual_seed(0)
        imgs = [torch.nn.functional.interpolate(torch.rand(1, 3, 6, 8, generator=g), size=(120, 160), mode="bilinear")[0]
                for _ in range(24)]
    return imgs


def test_colour_detector_knows_grey_images_are_foreign(tmp_path):
    import torch.nn.functional as F

    from detector.nets import create_network
    from detector.train.config import HardenConfig
    from detector.train.harden import harden
    from detector.train.splits import split_tensor

    imgs = _colour_images()
    g = torch.Generator().manual_seed(0)

    def crops(group, k):
        out = []
        for im in group:
            _, h, w = im.shape
            for _ in range(k):
                y, x = (int(torch.randint(0, n - 31, (1,), generator=g)) for n in (h, w))
                out.append(im[:, y:y + 32, x:x + 32])
        return torch.stack(out)

    train, held = crops(imgs[::2] + imgs[3::4], 40), crops(imgs[1::4], 40)
    fake = F.interpolate(F.avg_pool2d(train, 2), scale_factor=2, mode="nearest")  # an up-sampling artefact
    args = dict(in_channels=3, image_size=32, width=16, norm="batch")
    torch.manual_seed(0)
    harden(create_network("dcgan_d", **args), "dcgan_d", args, split_tensor(train, 0), {"up": split_tensor(fake, 1)},
           tmp_path / "det", HardenConfig(steps=60), flip=False, log=lambda m: None, progress=False)
    sc = Scorer(detector.load(tmp_path / "det"))
    assert np.mean([r.in_domain for r in sc.score_images(held)]) >= 0.95
    grey = _fmnist("test", 300, last=True)
    assert np.mean([r.label() == "out_of_domain" for r in sc.score_images(grey)]) >= 0.95


def test_python_api_gives_the_scan_domain_verdicts(trusted, tmp_path):
    """``Detector.score`` carries the same domain verdict as a scan row, for files and for in-memory images
    (a colour photo held as a PIL image or an array is judged before its conversion to grey)."""
    import detector
    from PIL import Image
    from unmask.cli import main

    photos = _photos()[:4] or _colour_standins(tmp_path / "photos")[:4]
    src = tmp_path / "in"
    src.mkdir()
    for p in photos:
        (src / Path(p).name).symlink_to(p)
    Image.fromarray((_fmnist("test", 1)[0, 0] * 255).byte().numpy()).save(src / "fmnist.png")
    out = tmp_path / "r.csv"
    CliRunner().invoke(main, ["scan", str(src), "--detector", str(trusted), "--out", str(out), "--workers", "0",
                              "--quiet"])
    rows = {r["path"]: r for r in csv.DictReader(open(out))}
    det = detector.load(trusted)
    preds = det.score(str(src))
    assert [p.source for p in preds] == list(rows)
    for p in preds:
        row = rows[p.source]
        assert p.label == row["label"] and p.in_domain == (row["in_domain"] == "True")
        assert abs(p.domain_score - float(row["domain_score"])) < 1e-4
    far = [p for p in preds if p.label == "out_of_domain" and p.domain_score > 1.5]
    assert far, "the photos are far outside a grey 28-px detector's domain"
    rgb = Image.open(str(src / Path(far[0].source).name)).convert("RGB")
    mem = det.score([rgb, np.asarray(rgb)])
    assert [p.label for p in mem] == ["out_of_domain", "out_of_domain"]
    assert [p.label for p in det.score([rgb], out_of_domain="score")][0] in ("real", "fake")
    assert len(det.score([rgb], out_of_domain="skip")) == 0


def test_eval_counts_photos_out_of_domain(trusted, fake_images, tmp_path):
    """`unmask eval` gives the scan's domain verdicts: colour photos among the reals are counted apart and
    left out of the metrics (flag, skip) or measured (score); an artifact without a trust section evaluates
    as before."""
    from tests.corpus import save_pngs
    from unmask.cli import main

    save_pngs(tmp_path / "real", _fmnist("test", 40, last=True), "r{i:03d}.png")
    save_pngs(tmp_path / "fake", fake_images[-40:], "f{i:03d}.png")
    photos = tmp_path / "photos"
    src = _photos()[:12]
    if src:
        photos.mkdir()
        for p in src:
            (photos / Path(p).name).symlink_to(p)
    else:
        src = _colour_standins(photos, 12)

    def run(det, mode):
        out = tmp_path / f"{det.name}-{mode}"
        res = CliRunner().invoke(main, ["eval", "--detector", str(det), "--real", str(tmp_path / "real"), "--real",
                                        str(photos), "--fake", str(tmp_path / "fake"), "--out", str(out),
                                        "--bootstrap", "0", "--out-of-domain", mode, "--json"])
        assert res.exit_code == 0, res.output
        m = json.loads((out / "metrics.json").read_text())
        assert json.loads(res.stdout)["out_of_domain"] == m["out_of_domain"]
        return res, out, m

    res, out, m = run(trusted, "flag")
    d = m["out_of_domain"]
    assert d["checked"] and d["excluded_from_metrics"] and d["total"] == len(d["files"]) == sum(d["per_set"].values())
    ood_photos = [f for f in d["files"] if f["path"].startswith(str(photos))]
    assert len(ood_photos) >= 0.9 * len(src) and all(f["set"] == "real" and f["domain_score"] > 1 for f in ood_photos)
    assert m["overall"]["n_real"] == 40 + len(src) - d["per_set"]["real"] and m["overall"]["n_fake"] == 40 - d["per_set"]["fake"]
    assert d["per_set"]["real"] - len(ood_photos) <= 2 and d["per_set"]["fake"] <= 2  # FMNIST reals, own fakes: inside
    assert "out of domain:" in res.stderr and "left out of the metrics" in res.stderr
    assert "Out of domain" in (out / "summary.md").read_text() and "id=out-of-domain" in (out / "index.html").read_text()
    _, _, sc = run(trusted, "score")
    assert not sc["out_of_domain"]["excluded_from_metrics"] and sc["out_of_domain"]["per_set"] == d["per_set"]
    assert (sc["overall"]["n_real"], sc["overall"]["n_fake"]) == (40 + len(src), 40)
    _, _, sk = run(trusted, "skip")
    assert sk["out_of_domain"]["files"] == [] and sk["overall"]["n_real"] == m["overall"]["n_real"]
    old = tmp_path / "old"  # no trust section: no domain check, every image measured, no crash
    old.mkdir()
    (old / "model.safetensors").write_bytes((trusted / "model.safetensors").read_bytes())
    spec = json.loads((trusted / "detector.json").read_text())
    spec.pop("trust")
    spec["format_version"] = 1
    (old / "detector.json").write_text(json.dumps(spec))
    res, out, om = run(old, "flag")
    assert om["out_of_domain"]["checked"] is False and om["out_of_domain"]["total"] == 0
    assert (om["overall"]["n_real"], om["overall"]["n_fake"]) == (40 + len(src), 40) and "out of domain" not in res.stderr
    assert "no domain model" in (out / "index.html").read_text()


def test_video_skip_leaves_frames_outside_the_domain_out_of_the_verdict(trusted, tmp_path):
    """A clean grey clip with a colour 'title card' in its first frames: under flag every frame is
    scored, under skip the colour frames keep their out_of_domain rows but leave the verdict alone."""
    import cv2

    from detector import load
    from detector.video import VideoConfig, analyze_video
    from unmask.synth import splice_video

    clean = tmp_path / "clean.avi"
    splice_video(clean, _fmnist("test", 64).float(), None, frames=10, seed=3)
    src = cv2.VideoCapture(str(clean))
    frames = [f for ok, f in (src.read() for _ in range(10)) if ok]
    src.release()
    rng = np.random.default_rng(0)
    h, w = frames[0].shape[:2]
    card = [cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (w, h)) for _ in range(3)]
    clip = tmp_path / "titled.avi"
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 12, (w, h))
    for f in card + frames:
        out.write(f)
    out.release()
    det = load(trusted)
    runs = {}
    for mode in ("flag", "skip"):
        fo = io.StringIO()
        runs[mode] = (analyze_video(clip, det, VideoConfig(every=1, out_of_domain=mode), frames_out=fo),
                      list(csv.reader(io.StringIO(fo.getvalue()))))
    flag, skip = runs["flag"][0], runs["skip"][0]
    assert flag.n_frames == 13 and skip.n_frames == 10  # the three colour frames left out
    assert "3 of 13 scored frames lie outside" in skip.error and skip.verdict == "real"
    assert skip.in_domain and 0.2 < skip.ood_fraction < 0.3
    labels = [row[6] for row in runs["skip"][1] if row[3] == "frame"]
    assert len(labels) == 13 and labels[:3] == ["out_of_domain"] * 3 and "out_of_domain" not in labels[3:]


def test_sharded_scan_counts_files_it_skips_as_out_of_domain(trusted, tmp_path):
    """--out-of-domain skip writes no row for a file outside the domain; the sharded scan (torchrun's
    path, here one rank) still counts it, as the single-process scan does, and a resumed scan does
    not count an earlier session's skips twice."""
    from detector import load
    from detector.imageio import save_png
    from detector.scan import ScanConfig, read_rows, scan
    from detector.scan.sharded import scan_sharded
    from tests.corpus import save_pngs

    folder = tmp_path / "mixed"
    save_pngs(folder, _fmnist("test", 5, last=True), "grey{i:02d}.png")
    g = torch.Generator().manual_seed(0)
    for i in range(3):  # colour noise: outside a grey detector's domain
        save_png(torch.rand(3, 28, 28, generator=g), folder / f"colour{i}.png")
    det, cfg = load(trusted), ScanConfig(workers=0, progress=False, out_of_domain="skip")
    single = scan([folder], det, tmp_path / "single.csv", cfg)
    sharded = scan_sharded([folder], det, tmp_path / "sharded.csv", cfg, log=lambda m: None)
    for r in (single, sharded):
        assert (r.n_files, r.n_ood, r.n_real + r.n_fake) == (8, 3, 5), r
    assert len(read_rows(tmp_path / "sharded.csv")) == 5 == len(read_rows(tmp_path / "single.csv"))
    again = scan_sharded([folder], det, tmp_path / "sharded.csv", replace(cfg, resume=True), log=lambda m: None)
    assert (again.n_files, again.n_ood, again.n_new) == (8, 3, 3)  # the three skipped files scored again, once
