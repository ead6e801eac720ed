"""`unmask harden RUN` end to end on a tiny real GAN run: zoo sampling, D start, rounds, resume.

Our own modules are imported plainly: a broken import fails here, it never turns into a skip.
"""
from __future__ import annotations

import json

import pytest
import torch

import detector

from gan.config import GanConfig
from gan.rundir import RunDir
from gan.trainer import train


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ganrun")
    cfg = GanConfig(data="fashion-mnist:embedded", steps=30, batch_size=32, g_width=8, d_width=8, progress=False,
                    quality_every=-1, quality_samples=100, health_plot=False, checkpoint_every=1000,
                    zoo_fractions=(0.5, 1.0))
    train(cfg, out)
    return out


def test_cli_harden_from_gan_run_with_rounds_and_resume(gan_run, tmp_path):
    from click.testing import CliRunner

    from unmask.cli import main

    out = tmp_path / "det"
    args = ["harden", str(gan_run), "--out", str(out), "--steps", "20", "--n-fakes", "100", "--rounds", "1",
            "--gan-steps", "3", "--target-fpr", "0.05", "--val-fraction", "0.02"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "AUC on held-out real vs fakes of each round" in res.output
    det = detector.load(out)
    prov = det.spec.provenance
    zoo = RunDir(gan_run).zoo()
    assert sorted(g["name"] for g in prov["generators"]) == sorted(s.name for s in zoo)
    assert any(s.tag == "round1" for s in zoo) and prov["adversarial_round"] == 1
    assert prov["data"]["test"] == "official t10k split" and prov["split_sizes"]["real"]["test"] == 2000
    rounds = json.loads((out / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == [0, 1] and set(rounds[1]["auc_vs_fakes_of_round"]) == {"0", "1"}
    assert rounds[1]["auc_new_fakes_before_rehardening"] is not None
    # round 0 starts from D with its sign flipped: with 0 steps the detector is exactly -D
    d, _, _ = RunDir(gan_run).discriminator()
    from detector.imageio import save_png

    extra = tmp_path / "my_fakes"
    for i in range(30):
        save_png(torch.rand(1, 28, 28), extra / f"{i}.png")
    (extra / "broken.png").write_bytes(b"")
    res0 = CliRunner().invoke(main, ["harden", str(gan_run), "--out", str(tmp_path / "d0"), "--steps", "0",
                                     "--n-fakes", "50", "--val-fraction", "0.02", "--fakes", str(extra), "--json"])
    assert res0.exit_code == 0, res0.output
    summary = json.loads(res0.stdout)  # --json: the summary on stdout, the log lines on stderr
    assert summary["command"] == "harden" and summary["steps"] == 0 and 0 <= summary["test"]["auc"] <= 1
    assert "folder:my_fakes: 30 images (1 unreadable skipped)" in res0.output
    folder_gen = detector.load(tmp_path / "d0").spec.provenance["generators"][-1]
    assert folder_gen["kind"] == "folder" and folder_gen["n_images"] == 30
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(detector.load(tmp_path / "d0").logits(x), -d(x * 2 - 1), atol=1e-5)
    # resume: finished rounds are skipped, the generator is not trained again
    n_zoo = len(zoo)
    again = CliRunner().invoke(main, args + ["--resume"])
    assert again.exit_code == 0, again.output
    assert "already in" in again.output and len(RunDir(gan_run).zoo()) == n_zoo
