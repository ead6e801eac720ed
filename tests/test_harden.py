"""Hardening: splits without overlap, threshold at target FPR on validation, temperature
calibration, the artifact and its provenance, and SIGKILL-then-resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import detector
from detector.train.augment import AugmentConfig, augment_batch
from detector.train.calibration import collect_logits, evaluate, fit_temperature, threshold_at_fpr
from detector.train.harden import CHECKPOINT_DIR, HardenConfig, harden
from detector.train.replay import REPLAY_FILE, load_replay
from detector.train.splits import real_splits, split_indices, split_tensor
from detector.nets import create_network

ROOT = Path(__file__).resolve().parents[1]
ARGS = dict(in_channels=1, image_size=28, width=16, norm="batch")


def test_split_indices_disjoint_cover_and_seeded():
    a = split_indices(1000, (0.7, 0.15, 0.15), seed=3)
    assert [len(x) for x in a] == [700, 150, 150]
    allidx = np.concatenate(a)
    assert len(np.unique(allidx)) == 1000
    assert all(np.array_equal(x, y) for x, y in zip(a, split_indices(1000, (0.7, 0.15, 0.15), seed=3)))
    assert not np.array_equal(a[1], split_indices(1000, (0.7, 0.15, 0.15), seed=4)[1])


def test_real_splits_keep_t10k_for_test_only():
    sp, info = real_splits("fashion-mnist:embedded", 28, 1, seed=5, val_fraction=0.1)
    test = detector.load_fashion_mnist("test", variant="embedded")
    train = detector.load_fashion_mnist("train", variant="embedded")
    assert torch.equal(sp.test, torch.from_numpy(test.images).unsqueeze(1).float() / 255.0)
    assert len(sp.train) + len(sp.val) == len(train) and len(sp.val) == 1000
    tr = {bytes(x) for x in (sp.train * 255).round().to(torch.uint8).numpy()}
    va = [bytes(x) for x in (sp.val * 255).round().to(torch.uint8).numpy()]
    assert sum(v in tr for v in va) <= 2          # only pixel-identical duplicates inside the dataset itself
    assert info["checksum"] == train.checksum and info["test"] == "official t10k split"
    assert info["sizes"] == {"train": 9000, "val": 1000, "test": 2000}


def test_threshold_at_target_fpr():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(1000, generator=g, dtype=torch.float64)
    for fpr in (0.01, 0.05, 0.2):
        t = threshold_at_fpr(real, fpr)
        assert int((real >= t).sum()) == int(fpr * 1000)        # exactly the allowed number, not fewer
    tied = torch.tensor([0.9] * 30 + [0.1] * 970, dtype=torch.float64)
    assert float((tied >= threshold_at_fpr(tied, 0.01)).double().mean()) <= 0.01


def test_temperature_scaling_improves_nll():
    g = torch.Generator().manual_seed(1)
    y = (torch.rand(2000, generator=g) < 0.5).double()
    z = (y * 2 - 1) + torch.randn(2000, generator=g, dtype=torch.float64)  # N(+-1, 1): true log-odds 2z
    over = z * 6.0                                                          # 3x overconfident: T should be 3
    t = fit_temperature(over, y)
    nll = lambda zz: float(torch.nn.functional.binary_cross_entropy_with_logits(zz, y))  # noqa: E731
    assert 2.7 < t < 3.3
    assert nll(over / t) < nll(over) - 0.15


def test_augmentations_change_images_reproducibly(real_images):
    cfg = AugmentConfig(p_jpeg=1.0, jpeg_quality=(30, 30), p_blur=1.0, blur_sigma=(1.0, 1.0), p_flip=0.0)
    a = augment_batch(real_images[:8], cfg, np.random.default_rng(0))
    b = augment_batch(real_images[:8], cfg, np.random.default_rng(0))
    assert torch.equal(a, b) and a.shape == (8, 1, 28, 28)
    assert 0.01 < float((a - real_images[:8]).abs().mean()) < 0.2
    with pytest.raises(ValueError, match="jpeg_quality"):
        AugmentConfig(jpeg_quality=(0, 100))


def test_harden_end_to_end(real_images, fake_images, tmp_path):
    torch.manual_seed(0)
    net = create_network("dcgan_d", **ARGS)
    d_logits = net.eval()(real_images[:8] * 2 - 1).detach()
    real = split_tensor(real_images, seed=0, val=0.3, test=0.3)
    fakes = {"tconv": split_tensor(fake_images, seed=1, val=0.3, test=0.3)}
    out = tmp_path / "det"
    cfg = HardenConfig(steps=40, target_fpr=0.02, seed=0, checkpoint_every=20)
    r = harden(net, "dcgan_d", ARGS, real, fakes, out, cfg, provenance={"data": {"source": "fixture"}},
               log=lambda m: None, progress=False)
    det = detector.load(out)
    s = det.spec
    assert s.threshold == r.threshold and s.temperature == r.temperature
    assert "on validation" in s.threshold_rule and "0.02" in s.threshold_rule
    assert r.val.fpr <= 0.02 and r.test.auc > 0.99 and r.val.auc > 0.99
    assert set(s.provenance) >= {"data", "seed", "split_sizes", "generators", "metrics", "harden_config"}
    assert s.provenance["split_sizes"]["real"] == {"train": 205, "val": 154, "test": 153}
    assert s.provenance["metrics"]["test"]["auc"] == r.test.auc
    # calibration: the fitted temperature is no worse on validation NLL than T = 1
    rv = collect_logits(det.net, real.val, s.mean, s.std)
    fv = {"tconv": collect_logits(det.net, fakes["tconv"].val, s.mean, s.std)}
    assert evaluate("val", rv, fv, s.temperature, 0.5).nll <= evaluate("val", rv, fv, 1.0, 0.5).nll
    # checkpoints and replay live beside the artifact, not in it
    assert (out / CHECKPOINT_DIR / "harden.pt").is_file() and (out / "scores.png").is_file()
    rr, rf = load_replay(out / REPLAY_FILE)
    assert list(rf) == ["tconv"] and rf["tconv"].test.shape[1:] == (1, 28, 28) and len(rr.val) == len(real.val)
    # harden flips D's sign exactly once (D: logit > 0 = real; detector: logit > 0 = fake)
    net2 = create_network("dcgan_d", **ARGS)
    net2.load_state_dict(create_network("dcgan_d", **ARGS).state_dict())
    torch.manual_seed(0)
    net3 = create_network("dcgan_d", **ARGS).eval()
    before = net3(real_images[:8] * 2 - 1).detach()
    harden(net3, "dcgan_d", ARGS, real, fakes, tmp_path / "zero", HardenConfig(steps=0), log=lambda m: None,
           progress=False)
    assert torch.allclose(detector.load(tmp_path / "zero").logits(real_images[:8]), -before, atol=1e-5)
    assert torch.allclose(before, d_logits)


SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from detector.data import load_fashion_mnist
    from detector.train.harden import HardenConfig, harden
    from detector.train.splits import split_tensor
    from detector.nets import create_network
    d = load_fashion_mnist("test", variant="embedded")
    x = torch.from_numpy(d.images[:600].copy()).unsqueeze(1).float() / 255
    fake = torch.nn.functional.interpolate(x[:, :, ::2, ::2], scale_factor=2.0).clamp(0, 1)
    torch.manual_seed(0)
    args = dict(in_channels=1, image_size=28, width=8)
    net = create_network("dcgan_d", **args)
    cfg = HardenConfig(steps=int(sys.argv[2]), checkpoint_every=5, batch_size=32)
    r = harden(net, "dcgan_d", args, split_tensor(x, 0), {"nn": split_tensor(fake, 1)}, sys.argv[1], cfg,
               resume=sys.argv[3] == "1", progress=False)
    print("RESUMED_FROM", r.resumed_from)
""")


def test_sigkill_during_hardening_then_resume(tmp_path):
    script = tmp_path / "h.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = tmp_path / "det"
    steps = "120"
    proc = subprocess.Popen([sys.executable, str(script), str(out), steps, "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / CHECKPOINT_DIR / "harden.pt"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=True)["step"] >= 10:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "hardening finished before it could be killed"
    with pytest.raises(detector.ArtifactError, match="missing file"):
        detector.load(out)                       # no half-written artifact that loads
    res = subprocess.run([sys.executable, str(script), str(out), steps, "1"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    start = int(res.stdout.split("RESUMED_FROM")[1].split()[0])
    assert 10 <= start < 120 and "resuming hardening from step" in res.stdout
    resumed = detector.load(out).net.state_dict()
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, str(script), str(ref), steps, "0"], env=env, capture_output=True, timeout=120,
                   check=True)
    full = detector.load(ref).net.state_dict()
    for k in full:                              # the resumed run follows the uninterrupted one exactly
        assert torch.allclose(resumed[k].float(), full[k].float(), atol=1e-5), k
