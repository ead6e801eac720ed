"""detector.train's shared building blocks: the metrics core agrees with scikit-learn, augmentation
and robustness use the same degradations, one split rule, one training loop, typed refusals, and
the training stack stays out of `import detector`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from detector.nets import create_network
from detector.train import degrade
from detector.train.harden import HardenConfig, harden
from detector.train.loop import CheckpointMismatch, ProcessGroupMissing, fit_bce, train_detector
from detector.train.metrics import MetricError, auc, average_precision, roc_curve as core_roc_curve, threshold_at_fpr
from detector.train.splits import split_indices, split_tensor, split_train_test

ROOT = Path(__file__).resolve().parents[1]
ARGS = dict(in_channels=1, image_size=28, width=8, norm="batch")


@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_metrics_core_equals_sklearn(decimals):
    rng = np.random.default_rng(decimals or 0)
    y = rng.integers(0, 2, 400)
    s = rng.random(400) + 0.3 * y
    if decimals is not None:  # ties, within and across classes
        s = np.round(s, decimals)
    fpr, tpr, thr = core_roc_curve(y, s)
    f2, t2, th2 = roc_curve(y, s, drop_intermediate=False)
    assert np.array_equal(fpr, f2) and np.array_equal(tpr, t2) and np.array_equal(thr, th2)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_one_threshold_rule_for_hardening_and_eval():
    from detector.train import calibration

    import eval.metrics as em

    assert calibration.threshold_at_fpr is threshold_at_fpr
    assert em.auc_fast is auc and em.MetricError is MetricError
    real = np.linspace(0.0, 1.0, 200)
    t = threshold_at_fpr(real, 0.05)
    assert int((real >= t).sum()) == 10


def test_augmentation_and_robustness_share_the_degradations():
    import eval.robustness as rb
    from detector.train import augment

    assert rb.jpeg is degrade.jpeg and rb.gaussian_blur is degrade.gaussian_blur and rb.downscale is degrade.rescale
    assert augment.jpeg is degrade.jpeg and augment.gaussian_blur is degrade.gaussian_blur
    img = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    # the registered perturbations are fixed settings of those functions
    assert torch.equal(rb.perturb("jpeg_q75", [img])[0], degrade.jpeg(img, 75))
    assert torch.equal(rb.perturb("blur_s2", [img])[0], degrade.gaussian_blur(img, 2.0))
    noisy = rb.perturb("noise_s0_05", [img, img], seed=3)
    assert torch.equal(noisy[0], rb.perturb("noise_s0_05", [img, img], seed=3)[0])  # seeded
    assert not torch.equal(noisy[0], noisy[1])                                       # a fresh draw per image
    assert 0.03 < float((noisy[0] - img).std()) < 0.06
    with pytest.raises(ValueError, match="quality"):
        degrade.jpeg(img, 0)


def test_one_split_rule():
    a, b, c = split_indices(1000, (0.7, 0.15, 0.15), seed=1)
    assert (len(a), len(b), len(c)) == (700, 150, 150)
    # no part is left empty while there are items for it
    assert [len(p) for p in split_indices(5, (0.7, 0.15, 0.15), seed=0)] == [3, 1, 1]
    x = torch.arange(40.0)[:, None]
    sp = split_tensor(x, seed=2)
    assert sorted(torch.cat([sp.train, sp.val, sp.test]).flatten().tolist()) == x.flatten().tolist()
    tr, te = split_train_test(list(range(10)), 0.3, seed=4)
    assert len(te) == 3 and sorted(tr + te) == list(range(10))
    te_idx, tr_idx = split_indices(10, (0.3, 0.7), seed=4, sort=False)  # the same rule, permutation order
    assert te == te_idx.tolist() and tr == tr_idx.tolist()
    assert split_train_test([0, 1], 0.9, seed=0)[0] != []                  # both sides non-empty


def test_fit_bce_learns_and_leaves_eval_mode(real_images, fake_images):
    torch.manual_seed(0)
    net = create_network("dcgan_d", **ARGS)
    x = torch.cat([real_images[:128], fake_images[:128]])
    y = torch.cat([torch.zeros(128), torch.ones(128)])
    fit_bce(net, x, y, steps=40, batch_size=32, lr=2e-3, mean=[0.5], std=[0.5],
            generator=torch.Generator().manual_seed(0))
    assert not net.training
    with torch.no_grad():
        z = net((x - 0.5) / 0.5)
    assert auc(y.numpy().astype(int), z.numpy()) > 0.9


def test_resume_on_other_data_is_a_typed_refusal(real_images, fake_images, tmp_path):
    cfg = HardenConfig(steps=2, batch_size=8, checkpoint_every=1, replay_per_generator=8, eval_batch=64)
    run = lambda fake, resume: harden(create_network("dcgan_d", **ARGS), "dcgan_d", ARGS,  # noqa: E731
                                      split_tensor(real_images[:60], 0), {"g": split_tensor(fake, 1)}, tmp_path,
                                      cfg, resume=resume, log=lambda m: None, progress=False)
    run(fake_images[:60], False)
    with pytest.raises(CheckpointMismatch, match="different data or settings"):
        run(fake_images[60:120], True)


def test_training_needs_the_process_group_from_the_entry_point(real_images, fake_images, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun, but nobody called detector.distributed.init
    with pytest.raises(ProcessGroupMissing, match="entry point"):
        train_detector(create_network("dcgan_d", **ARGS), real_images[:8], {"g": fake_images[:8]},
                       HardenConfig(steps=1, batch_size=4), [0.5], [0.5], progress=False)


def test_import_detector_leaves_the_training_stack_alone():
    code = ("import sys, detector; "
            "bad = [m for m in sys.modules if m.startswith(('detector.train', 'sklearn'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"
