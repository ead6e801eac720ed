"""Build a small, honest showcase of ``unmask eval`` without a GAN run (CPU, about a minute).

Two synthetic "generator families" re-synthesise held-out Fashion-MNIST images through the
up-sampling layers the field blames for spectral traces (FIELD.md; Odena et al. 2016, Durall et
al. 2020):

* ``tconv``  - 2x average-pool, then a stride-2 4x4 transposed convolution (bilinear kernel with a
  small fixed random perturbation: the checkerboard family of DCGAN-style generators);
* ``upconv`` - 2x average-pool, then nearest-neighbour up-sampling and a 3x3 convolution (the
  resize-convolution family).

A detector is trained (``eval.matrix.finetune_detector``, fresh ``dcgan_d``) on real vs ``tconv``
only; its threshold is then set on a validation split at 1% FPR. It is evaluated on held-out real
images, held-out ``tconv`` and never-seen ``upconv`` images, with both spectral baselines fitted on
the same training images, the robustness matrix, and a cross-generator matrix.

    PYTHONPATH=. python scripts/eval_showcase.py --out runs/eval_showcase [--screenshot docs/img/report.png]

With ``--runs RUN_A RUN_B`` (two ``unmask gan train`` runs, e.g. ``--generator dcgan`` and
``--generator upconv``) the two families are the runs' final generators instead, and the detector
starts from RUN_A's discriminator (head flipped: logit > 0 = fake) rather than a fresh network.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def tconv_family(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k1 = torch.tensor([0.25, 0.75, 0.75, 0.25])
    k = torch.outer(k1, k1)[None, None] + 0.08 * torch.randn(1, 1, 4, 4, generator=g)
    y = F.conv_transpose2d(F.avg_pool2d(x, 2), k, stride=2, padding=1)
    return y.clamp(0, 1)


def upconv_family(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = torch.full((1, 1, 3, 3), 1 / 9) + 0.03 * torch.randn(1, 1, 3, 3, generator=g)
    y = F.conv2d(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"), k, padding=1)
    return y.clamp(0, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/eval_showcase"))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--screenshot", type=Path, default=None)
    ap.add_argument("--runs", type=Path, nargs=2, default=None, metavar=("RUN_A", "RUN_B"),
                    help="two GAN runs whose final generators are the two families (A: trained on)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from click.testing import CliRunner

    from detector.data import load_fashion_mnist
    from detector.imageio import save_png
    from eval.matrix import FinetuneConfig, finetune_detector
    from eval.scoring import score_images
    from unmask.cli import main as cli

    out = a.out
    if out.exists():
        shutil.rmtree(out)
    tr = torch.from_numpy(load_fashion_mnist("train", variant="embedded").images[:3000].copy()).unsqueeze(1) / 255.0
    te = torch.from_numpy(load_fashion_mnist("test", variant="embedded").images[:1200].copy()).unsqueeze(1) / 255.0
    real_train, real_val, real_test = tr[:1000], tr[2000:3000], te[:1000]
    base = None
    if a.runs:
        from detector.artifact import Detector, spec_for_network
        from detector.nets import flip_head
        from gan.rundir import RunDir
        from gan.zoo import sample

        run_a, run_b = a.runs
        names = [f"{RunDir(r).final_generator().family}" for r in a.runs]
        if names[0] == names[1]:
            names = [f"{n}_{r.name}" for n, r in zip(names, a.runs)]
        ga, gb = RunDir(run_a).final_generator(), RunDir(run_b).final_generator()
        fake_train, fake_test = sample(ga, 1000, seed=11), {names[0]: sample(ga, 500, seed=12),
                                                             names[1]: sample(gb, 500, seed=13)}
        net, arch, args = RunDir(run_a).discriminator()
        flip_head(net)
        base = Detector(net, spec_for_network(arch, args, 28, 1, policy="resize"))
    else:
        fake_train = tconv_family(tr[1000:2000])
        fake_test = {"tconv": tconv_family(te[:500].flip(-1)), "upconv": upconv_family(te[500:1000].flip(-1))}
        # (test fakes re-synthesise mirrored held-out images, so no fake is a copy of a test real)
    det = finetune_detector(real_train, fake_train, base, FinetuneConfig(steps=a.steps, lr=5e-4, width=32))
    val_real = score_images(det, list(real_val))
    thr = float(np.quantile(val_real, 0.99, method="higher")) + 1e-6
    det = det.with_spec(threshold=min(thr, 1.0), threshold_rule=f"FPR <= 0.01 on {len(real_val)} validation reals",
                        provenance={"data": "fashion-mnist:embedded", "trained_on": [next(iter(fake_test))],
                                    "script": "scripts/eval_showcase.py"})
    det.save(out / "detector")
    for i, im in enumerate(real_test):
        save_png(im, out / "test" / "real" / f"{i:04d}.png")
    for name, x in fake_test.items():
        for i, im in enumerate(x):
            save_png(im, out / "test" / name / f"{i:04d}.png")
    for i in range(500):
        save_png(real_train[i], out / "train" / "real" / f"{i:04d}.png")
        save_png(fake_train[i], out / "train" / "fake" / f"{i:04d}.png")
    fake_args = [x for name in fake_test for x in ("--fake", str(out / "test" / name))]
    r = CliRunner().invoke(cli, ["eval", "--detector", str(out / "detector"), "--real", str(out / "test" / "real"),
                                 *fake_args,
                                 "--out", str(out / "report"), "--baselines", "--baseline-train", str(out / "train"),
                                 "--robustness"])
    print(r.output)
    if r.exit_code:
        return r.exit_code
    m = CliRunner().invoke(cli, ["eval-matrix", "--real", str(out / "test" / "real"), *fake_args,
                                 "--out", str(out / "matrix"), "--steps", str(a.steps)])
    print(m.output)
    if a.screenshot:
        chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if chrome is None:
            print("no chromium: no screenshot", file=sys.stderr)
            return 0
        a.screenshot.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as prof:
            subprocess.run([chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={prof}", "--hide-scrollbars", "--window-size=1240,1500",
                            f"--screenshot={a.screenshot.resolve()}", (out / "report" / "index.html").resolve().as_uri()],
                           capture_output=True, timeout=120, check=False)
        print(f"screenshot: {a.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
