"""Generator families (gan/families.py): every family trains a few steps through the one entry point,
samples, checkpoints, resumes exactly, and its snapshots load and sample through gan.zoo alike."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from gan.generators import create_generator
from gan.families import FAMILIES, family, family_config
from gan.rundir import RunDir
from gan.trainer import train
from gan.zoo import ZooError, load_zoo, sample
from unmask.cli import main


def tiny(name: str, **kw):
    """A few-step, few-channel run of family ``name`` on the embedded data (well under a second a step)."""
    base = dict(data="fashion-mnist:embedded", steps=6, batch_size=8, g_width=8, d_width=8, health_every=2,
                health_window=2, checkpoint_every=3, quality_every=-1, quality_samples=32, quality_ref=64,
                progress=False, health_plot=False, generator_args={"sample_steps": 2} if name == "diffusion" else {})
    if name != "diffusion":
        base["z_dim"] = 8
    base.update(kw)
    return family_config(name, **base)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {name: train(tiny(name), root / name) for name in FAMILIES}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_trains_snapshots_and_samples_alike(runs, name):
    res = runs[name]
    assert res.steps == 6
    run = RunDir(res.out_dir)
    assert run.config_dict()["family"] == name and run.generator_path.is_file()
    assert (run.samples / "final.png").is_file() and run.latest_checkpoint() is not None
    zoo = load_zoo(res.out_dir)
    assert [s.stage for s in zoo] == ["early", "middle", "late"] and {s.family for s in zoo} == {name}
    a, b = sample(zoo[-1], 5, seed=3), sample(zoo[-1], 5, seed=3)
    assert a.shape == (5, 1, 28, 28) and a.dtype == torch.float32
    assert torch.equal(a, b) and 0.0 <= float(a.min()) and float(a.max()) <= 1.0  # same noise -> same images
    assert not torch.equal(a, sample(zoo[-1], 5, seed=4))
    assert not torch.equal(sample(zoo[0], 5, seed=3), a)  # early and late snapshots differ
    assert family(name).is_gan == ("discriminator" in run.config_dict())


@pytest.mark.parametrize("name", ["vae", "diffusion"])
def test_non_gan_resume_reproduces_uninterrupted_run(runs, name, tmp_path):
    train(tiny(name), tmp_path / "b", stop_at=4)  # "interrupted" after step 4 (a checkpoint at 4)
    resumed = train(tiny(name), tmp_path / "b", resume=True)
    assert resumed.steps == 6
    from safetensors.torch import load_file

    full = load_file(RunDir(runs[name].out_dir).generator_path)
    part = load_file(RunDir(tmp_path / "b").generator_path)
    assert full.keys() == part.keys() and all(torch.equal(full[k], part[k]) for k in full)


def test_non_gan_run_has_no_discriminator_to_harden(runs):
    with pytest.raises(ZooError, match="not a GAN"):
        RunDir(runs["vae"].out_dir).discriminator()


def test_family_config_rules():
    assert family_config("diffusion", image_size=32, channels=3).z_dim == 3 * 32 * 32
    assert family_config("upconv-bilinear").generator_args == {"mode": "bilinear"}
    assert family_config("vae").z_dim == 16 and family_config("vae", z_dim=4).z_dim == 4
    with pytest.raises(ValueError, match="unknown generator family 'gan2'.*dcgan"):
        family("gan2")
    with pytest.raises(ValueError, match="z_dim is the initial noise image"):
        create_generator("diffusion", z_dim=5)


def test_cli_train_family_and_resume(tmp_path):
    out = tmp_path / "vae"
    base = ["gan", "train", "--family", "vae", "--width", "4", "--z-dim", "4", "--batch-size", "4", "--quiet"]
    r = CliRunner().invoke(main, base + ["--steps", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "trained 2 steps" in r.output and "vae_late_s000002" in r.output and "health" not in r.output
    r = CliRunner().invoke(main, ["gan", "train", "--resume", str(out), "--steps", "3", "--quiet"])
    assert r.exit_code == 0 and RunDir(out).config().steps == 3, r.output
    z = CliRunner().invoke(main, ["gan", "zoo", str(out)])
    assert z.exit_code == 0 and "family vae" in z.output
    bad = CliRunner().invoke(main, ["gan", "train", "--family", "vae", "--generator", "dcgan", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "contradicts" in bad.output
