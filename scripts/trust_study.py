"""Measure the trust guard (issue 15): domain verdicts and aggregate false-positive rates.

Run after a demo (``unmask demo --quick --out /tmp/trust-demo`` or ``make demo``)::

    python scripts/trust_study.py --demo /tmp/trust-demo --out runs/trust_study.json

Numbers reported (docs/trust.md quotes them):

* the demo detector on OpenCV's sample photos and its two real clips (should be out of domain,
  never ``fake``), on held-out Fashion-MNIST test images (in domain), on fresh fakes of the demo's
  own GAN and of the unseen family (in domain, caught);
* per-frame and per-video false-positive rates over ``--clips`` clean clips of held-out reals (16
  tiles per frame, the default ``topk_mean`` verdict), per-frame AUC on a spliced clip, per-image
  rates of tiled mosaics;
* a detector hardened on 32x32 crops of OpenCV's colour photos: held-out crops of other photos
  (in domain) and Fashion-MNIST (out of domain).

CPU only, a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector import load  # noqa: E402
from detector.scoring import Scorer, file_inputs  # noqa: E402

OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")
PHOTO_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def photos() -> list[str]:
    return sorted(p for p in glob.glob(str(OPENCV / "*")) if p.lower().endswith(PHOTO_EXT))


def score_files(det, paths) -> list:
    """ImageScore per readable file (through the one file path and engine)."""
    sc = Scorer(det)
    out = []
    for p in paths:
        try:
            f = file_inputs(p, det.spec)
        except Exception:  # noqa: BLE001 - unreadable sample files are not the point here
            continue
        out.append(sc.score_inputs(f.inputs, [len(f.inputs)], [f.corners], [f.policy], [f.stats])[0])
    return out


def share(rs, what: str) -> float:
    if what == "in_domain":
        return float(np.mean([bool(r.in_domain) for r in rs])) if rs else float("nan")
    return float(np.mean([r.label() == what for r in rs])) if rs else float("nan")


def fmnist_test(n: int) -> torch.Tensor:
    from detector.data import load_fashion_mnist

    d = load_fashion_mnist("test", variant="embedded")
    return torch.from_numpy(d.images[-n:].copy()).unsqueeze(1).float() / 255.0


def gan_fakes(run: Path, n: int, seed: int) -> torch.Tensor:
    from gan.rundir import RunDir
    from gan.zoo import sample

    return sample(RunDir(run).zoo()[-1], n, seed=seed)


def demo_domain(det, demo: Path, n: int) -> dict:
    res: dict = {}
    ph = score_files(det, photos())
    res["opencv_photos"] = {"n": len(ph), "out_of_domain": 1 - share(ph, "in_domain"),
                            "fake": int(sum(r.label() == "fake" for r in ph)),
                            "fake_if_unguarded": int(sum(r.label("score") == "fake" for r in ph))}
    sc = Scorer(det)
    real = list(sc.score_images(fmnist_test(n)))
    res["fmnist_test"] = {"n": len(real), "in_domain": share(real, "in_domain"), "fpr": share(real, "fake")}
    for name in ("gan", "gan_upconv"):
        if (demo / name).is_dir():
            rs = list(sc.score_images(gan_fakes(demo / name, n, seed=777)))
            res[f"fakes_{name}"] = {"n": len(rs), "in_domain": share(rs, "in_domain"),
                                    "caught": float(np.mean([r.label("score") == "fake" for r in rs])),
                                    "caught_in_domain": share(rs, "fake")}
    return res


def real_videos(det) -> dict:
    from detector.video import VideoConfig, analyze_videos

    vids = [OPENCV / v for v in ("vtest.avi", "Megamind.avi") if (OPENCV / v).exists()]
    with tempfile.TemporaryDirectory() as td:
        rs = analyze_videos(vids, det, VideoConfig(progress=False), td)
    return {Path(r.video).name: {"verdict": r.verdict, "ood_fraction": r.ood_fraction, "score": r.score}
            for r in rs}


def clips(det, n_clips: int, frames: int) -> dict:
    """Clean clips of held-out reals (4x4 tiles/frame) through ``unmask video``'s defaults."""
    from detector.train.metrics import auc
    from detector.video import VideoConfig, analyze_videos
    from unmask.synth import splice_video

    real = fmnist_test(2000)
    cfg = VideoConfig(every=1, progress=False)
    with tempfile.TemporaryDirectory() as td:
        paths = [Path(td) / f"clip{i:03d}.avi" for i in range(n_clips)]
        for i, p in enumerate(paths):
            splice_video(p, real, None, frames=frames, seed=10_000 + i)
        rs = analyze_videos(paths, det, cfg, Path(td) / "out")
        import csv

        rows = list(csv.DictReader(open(Path(td) / "out" / "frames.csv")))
    frame_fpr = float(np.mean([r["label"] == "fake" for r in rows]))
    video_fpr = float(np.mean([r.verdict == "fake" for r in rs]))
    target = det.trust.target_fpr
    out = {"clips": n_clips, "frames_per_clip": frames, "tiles_per_frame": 16, "target_fpr": target,
           "frame_fpr": frame_fpr, "video_fpr": video_fpr,
           "frame_fpr_per_tile_threshold": float(np.mean([float(r["score"]) >= det.spec.threshold for r in rows])),
           "in_domain_frames": float(np.mean([r["in_domain"] == "True" for r in rows]))}
    fakes = gan_fakes(Path(os.environ.get("TRUST_GAN", "")), 200, 5) if os.environ.get("TRUST_GAN") else None
    if fakes is not None:
        with tempfile.TemporaryDirectory() as td:
            p = Path(td) / "spliced.avi"
            truth = splice_video(p, real, fakes, frames=60, seed=3)
            (r,) = analyze_videos([p], det, cfg, Path(td) / "out")
            import csv

            fr = list(csv.DictReader(open(Path(td) / "out" / "frames.csv")))
        lo, hi = truth["fake_frames"]
        y = np.array([lo <= int(x["frame"]) < hi for x in fr], dtype=float)
        out["spliced"] = {"frame_auc": auc(y, np.array([float(x["score"]) for x in fr])), "verdict": r.verdict}
    return out


def mosaics(det, n: int, grid: int = 4) -> dict:
    """Tiled 'large images' of held-out reals: per-image FPR with the aggregate's threshold."""
    real = fmnist_test(2000)
    g = torch.Generator().manual_seed(1)
    s = real.shape[-1]
    imgs = []
    for _ in range(n):
        cells = real[torch.randint(0, len(real), (grid * grid,), generator=g)]
        imgs.append(cells.view(grid, grid, 1, s, s).permute(2, 0, 3, 1, 4).reshape(1, grid * s, grid * s))
    rs = list(Scorer(det, policy="tile").score_images(imgs))
    return {"images": n, "tiles": grid * grid, "image_fpr": float(np.mean([r.score >= r.threshold for r in rs])),
            "image_fpr_per_tile_threshold": float(np.mean([r.score >= det.spec.threshold for r in rs]))}


def rgb_crops(steps: int, out: Path) -> dict:
    """Harden a colour detector on 32x32 crops of half the colourful OpenCV photos; measure the rest."""
    from detector.decode import read_image_reduced
    from detector.nets import create_network
    from detector.train.config import HardenConfig
    from detector.train.harden import harden
    from detector.train.splits import split_tensor
    import torch.nn.functional as F

    imgs = []
    for p in photos():
        try:
            d = read_image_reduced(p, 3)
        except Exception:  # noqa: BLE001
            continue
        if d.colour > 0.02 and min(d.image.shape[1:]) >= 96:
            imgs.append(d.image)
    g = torch.Generator().manual_seed(0)

    def crops(group, k):
        out = []
        for im in group:
            _, h, w = im.shape
            for _ in range(k):
                y, x = int(torch.randint(0, h - 31, (1,), generator=g)), int(torch.randint(0, w - 31, (1,), generator=g))
                out.append(im[:, y:y + 32, x:x + 32])
        return torch.stack(out)

    train_ph, test_ph = imgs[::2] + imgs[3::4], imgs[1::4]
    real = crops(train_ph, 120)
    held = crops(test_ph, 60)
    fake = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest")  # an up-sampling artefact
    args = dict(in_channels=3, image_size=32, width=32, norm="batch")
    torch.manual_seed(0)
    harden(create_network("dcgan_d", **args), "dcgan_d", args, split_tensor(real, 0), {"upsampled": split_tensor(fake, 1)},
           out, HardenConfig(steps=steps), flip=False, log=lambda m: None, progress=False)
    det = load(out)
    sc = Scorer(det)
    rh = list(sc.score_images(held))
    rf = list(sc.score_images(fmnist_test(1000)))
    return {"train_photos": len(train_ph), "heldout_photos": len(test_ph), "train_crops": len(real),
            "heldout_crops_in_domain": share(rh, "in_domain"), "heldout_crops_fpr": share(rh, "fake"),
            "fmnist_out_of_domain": 1 - share(rf, "in_domain")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", type=Path, required=True, help="output folder of `unmask demo`")
    ap.add_argument("--out", type=Path, default=Path("runs/trust_study.json"))
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--rgb-steps", type=int, default=300)
    a = ap.parse_args()
    torch.set_num_threads(1)
    det = load(a.demo / "detector")
    os.environ.setdefault("TRUST_GAN", str(a.demo / "gan"))
    res = {"detector": str(a.demo / "detector")}
    if OPENCV.is_dir():
        res["domain"] = demo_domain(det, a.demo, 1000)
        res["real_videos"] = real_videos(det)
    else:
        print(f"note: {OPENCV} missing (apt install opencv-doc): no photo/video numbers", file=sys.stderr)
    res["mosaics"] = mosaics(det, 2000)
    print(json.dumps(res, indent=1), flush=True)
    res["clips"] = clips(det, a.clips, a.frames)
    if OPENCV.is_dir():
        with tempfile.TemporaryDirectory() as td:
            res["rgb_crops"] = rgb_crops(a.rgb_steps, Path(td) / "det")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
