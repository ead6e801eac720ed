"""Retraining on a new generator raises its AUC while the old generators' AUC holds (replay)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

import detector
from detector.nets import create_network
from detector.train.harden import HardenConfig, harden
from detector.train.replay import REPLAY_FILE, load_replay
from detector.train.splits import split_tensor
from tests.corpus import save_pngs

ARGS = dict(in_channels=1, image_size=28, width=16, norm="batch")


@pytest.fixture(scope="module")
def hardened(tmp_path_factory, real_images, fake_images):
    """A detector hardened (briefly) against the fixture's transposed-conv generator."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("hardened")
    harden(create_network("dcgan_d", **ARGS), "dcgan_d", ARGS, split_tensor(real_images, 0, 0.25, 0.25),
           {"tconv": split_tensor(fake_images, 1, 0.25, 0.25)}, out, HardenConfig(steps=40, seed=0),
           log=lambda m: None, progress=False)
    return out


def _new_generator_images(real_images: torch.Tensor) -> torch.Tensor:
    """A 'resize-then-convolve' style generator: real images down-sampled 2x and blurred back up."""
    return F.interpolate(F.avg_pool2d(real_images, 2), scale_factor=2, mode="bilinear").clamp(0, 1)


def test_cli_retrain_raises_new_auc_keeps_old(hardened, real_images, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import detector.artifact
    import detector.train.retrain
    from unmask.cli import main

    loads, real_load = [], detector.artifact.load

    def counting_load(path, *a, **k):
        loads.append(str(path))
        return real_load(path, *a, **k)

    monkeypatch.setattr(detector.artifact, "load", counting_load)
    monkeypatch.setattr(detector.train.retrain, "load", counting_load)

    new_dir = tmp_path / "newgen"
    save_pngs(new_dir, _new_generator_images(real_images.flip(0)[:400]), "{i:04d}.png")
    out = tmp_path / "det2"
    before_files = sorted(p.name for p in hardened.iterdir())
    res = CliRunner().invoke(main, ["retrain", str(hardened), "--fakes", str(new_dir), "--out", str(out),
                                    "--steps", "150", "--lr", "2e-4"])
    assert res.exit_code == 0, res.output
    assert loads == [str(hardened)]                                           # the detector is loaded once
    assert "AUC before" in res.output and "folder:newgen" in res.output
    m = json.loads((out / "retrain_metrics.json").read_text())
    b, a = m["before"]["per_generator"], m["after"]["per_generator"]
    assert set(a) == {"tconv", "folder:newgen"}
    assert a["folder:newgen"]["auc"] > b["folder:newgen"]["auc"] + 0.02      # learnt the new generator
    assert a["folder:newgen"]["auc"] > 0.9
    assert abs(a["tconv"]["auc"] - b["tconv"]["auc"]) <= 0.02                 # did not forget the old one
    det = detector.load(out)
    names = [g["name"] for g in det.spec.provenance["generators"]]
    assert names == ["tconv", "folder:newgen"]
    assert det.spec.provenance["history"][0]["new_generators"] == ["folder:newgen"]
    assert "after retraining" in det.spec.threshold_rule
    _, fakes = load_replay(out / REPLAY_FILE)
    assert list(fakes) == ["tconv", "folder:newgen"]
    assert sorted(p.name for p in hardened.iterdir()) == before_files         # the old detector is untouched


def test_retrain_refusals(hardened, real_images, tmp_path):
    from detector.train.retrain import RetrainConfig, retrain

    new = {"up": _new_generator_images(real_images[:50])}
    with pytest.raises(ValueError, match="must differ"):
        retrain(hardened, new, hardened, RetrainConfig(steps=1), log=lambda m: None, progress=False)
    with pytest.raises(ValueError, match="already known"):
        retrain(hardened, {"tconv": new["up"]}, tmp_path / "x", RetrainConfig(steps=1), log=lambda m: None,
                progress=False)
    with pytest.raises(ValueError, match="must be"):
        retrain(hardened, {"up": torch.rand(20, 3, 28, 28)}, tmp_path / "x", RetrainConfig(steps=1),
                log=lambda m: None, progress=False)
    bare = tmp_path / "bare"
    shutil.copytree(hardened, bare)
    (bare / REPLAY_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="no replay buffer"):
        retrain(bare, new, tmp_path / "y", RetrainConfig(steps=1), log=lambda m: None, progress=False)
    detector.load(bare)                                   # the artifact itself does not need the replay file
