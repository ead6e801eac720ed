"""The run directory: resume is bit-for-bit, `gan sample` writes exactly N images, the zoo API
round-trips, and adversarial rounds add tagged snapshots."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from detector.decode import read_image
from gan.rounds import continue_training
from gan.rundir import NotARunDir, RunDir
from gan.trainer import train
from gan.zoo import ZooError, load_zoo, sample
from tests.gan_helpers import tiny_config
from unmask.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "run"
    train(tiny_config(steps=8, checkpoint_every=4), out)
    return out


def test_resume_reproduces_uninterrupted_run(tmp_path):
    cfg = tiny_config(steps=8, checkpoint_every=3, instance_noise=0.2)
    train(cfg, tmp_path / "a")
    part = train(cfg, tmp_path / "b", stop_at=5)  # "interrupted" after step 5
    assert part.steps == 5 and not (tmp_path / "b" / "generator.safetensors").exists()
    assert RunDir(tmp_path / "b").latest_checkpoint().name == "ckpt_0000005.pt"
    with pytest.raises(FileExistsError, match="use --resume"):
        train(cfg, tmp_path / "b")
    res = train(cfg, tmp_path / "b", resume=True)
    assert res.steps == 8
    for f in ("generator.safetensors", "discriminator.safetensors"):
        a, b = load_file(tmp_path / "a" / f), load_file(tmp_path / "b" / f)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f
    ma = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    mb = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert ma == mb
    sa, sb = load_zoo(tmp_path / "a"), load_zoo(tmp_path / "b")
    assert [s.name for s in sa] == [s.name for s in sb]
    ck = torch.load(RunDir(tmp_path / "b").latest_checkpoint(), weights_only=True)
    assert set(ck) >= {"G", "D", "opt_g", "opt_d", "step", "rng", "torch_rng"} and ck["step"] == 8


def test_run_directory_layout(run_dir):
    names = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}
    for f in ("config.json", "metrics.jsonl", "discriminator.safetensors", "generator.safetensors",
              "zoo/index.json", "samples/final.png", "samples/progress.png"):
        assert f in names, f
    assert any(n.startswith("checkpoints/ckpt_") for n in names)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["generator"] == "dcgan" and cfg["generator_args"]["z_dim"] == 8 and cfg["seed"] == 0
    assert cfg["discriminator"] == {"network": "dcgan_d", "args": {"in_channels": 1, "image_size": 28, "width": 8,
                                                                   "norm": "batch", "spectral_norm": False}}
    assert RunDir(run_dir).config() == tiny_config(steps=8, checkpoint_every=4)


def test_zoo_round_trip(run_dir):
    zoo = load_zoo(run_dir)
    assert [s.stage for s in zoo] == ["early", "middle", "late"] and [s.step for s in zoo] == [2, 4, 8]
    assert {s.family for s in zoo} == {"dcgan"} and all(s.generator_name == "dcgan" for s in zoo)
    g = zoo[-1].load()
    final = RunDir(run_dir).snapshot()  # generator.safetensors
    a, b = sample(zoo[-1], 5, seed=3), sample(final, 5, seed=3)
    assert a.shape == (5, 1, 28, 28) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and torch.equal(a, sample(g, 5, seed=3))  # same weights, same noise
    assert not torch.equal(a, sample(g, 5, seed=4))
    d, name, args = RunDir(run_dir).discriminator()
    assert name == "dcgan_d" and args["width"] == 8 and d(a * 2 - 1).shape == (5,)
    with pytest.raises(ZooError, match="no generator zoo"):
        load_zoo(run_dir / "nowhere")
    with pytest.raises(ZooError, match="out of range"):
        RunDir(run_dir).snapshot(7)


def test_rundir_refuses_a_folder_that_is_not_a_run(tmp_path):
    run = RunDir(tmp_path)
    assert not run.is_run() and run.latest_checkpoint() is None and run.read_metrics() == []
    for read in (run.config, run.final_generator, run.discriminator):
        with pytest.raises(NotARunDir, match="not a GAN run directory"):
            read()
    # one typed error serves both kinds of caller: "no such run" and "no usable zoo"
    assert issubclass(NotARunDir, FileNotFoundError) and issubclass(NotARunDir, ZooError)


def test_rundir_is_the_only_reader_of_config_json():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readers = sorted(str(p.relative_to(root)) for pkg in ("detector", "eval", "gan", "unmask")
                     for p in (root / pkg).rglob("*.py") if '"config.json"' in p.read_text())
    assert readers == ["gan/rundir.py"]


def test_continue_training_adds_tagged_snapshots(run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    d, _, _ = RunDir(run).discriminator()
    before = {k: v.clone() for k, v in d.state_dict().items()}
    new = continue_training(run, d, steps=4, tag="round1")
    assert [s.name for s in new] == ["dcgan_round1_s000010", "dcgan_round1_s000012"]
    assert all(s.tag == "round1" and s.family == "dcgan" for s in new)
    assert [s.name for s in load_zoo(run)][-2:] == [s.name for s in new]
    assert all(torch.equal(before[k], d.state_dict()[k]) for k in before)  # D untouched
    assert all(p.requires_grad for p in d.parameters())
    g_old, g_new = load_zoo(run)[2].load(), new[-1].load()
    assert not torch.equal(sample(g_old, 4, seed=0), sample(g_new, 4, seed=0))
    with pytest.raises(ValueError, match="tag must match"):
        continue_training(run, d, steps=1, tag="Bad Tag")


@pytest.mark.parametrize("snapshot", [None, "early", "0"])
def test_cli_sample_writes_exactly_n_images(run_dir, tmp_path, snapshot):
    out = tmp_path / "fakes"
    args = ["gan", "sample", str(run_dir), "--n", "7", "--out", str(out)] + (["--snapshot", snapshot] if snapshot else [])
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    files = sorted(out.glob("*.png"))
    assert len(files) == 7 and "wrote 7 PNG files (1x28x28)" in r.output
    for f in files:
        assert read_image(f, channels=1).shape == (1, 28, 28)


def test_cli_sample_bad_snapshot_is_usage_error(run_dir, tmp_path):
    r = CliRunner().invoke(main, ["gan", "sample", str(run_dir), "--n", "2", "--out", str(tmp_path / "x"),
                                  "--snapshot", "nope"])
    assert r.exit_code == 2 and "no snapshot 'nope'" in r.output


def test_cli_train_rgb_32_on_a_folder_and_resume(tmp_path):
    from detector.imageio import save_png

    g = torch.Generator().manual_seed(0)
    for i in range(12):  # a folder of 40x40 colour images
        save_png(torch.rand(3, 40, 40, generator=g), tmp_path / "photos" / f"p{i}.png")
    (tmp_path / "photos" / "broken.png").write_bytes(b"not an image")  # skipped, not fatal
    out = tmp_path / "rgb"
    base = ["gan", "train", "--data", str(tmp_path / "photos"), "--image-size", "32", "--channels", "3",
            "--family", "upconv", "--width", "4", "--d-width", "4", "--z-dim", "4", "--batch-size", "4",
            "--health-every", "2", "--quiet"]
    r = CliRunner().invoke(main, base + ["--steps", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "trained 3 steps" in r.output and "FD-FMNIST (not FID)" in r.output
    r = CliRunner().invoke(main, ["gan", "train", "--resume", str(out), "--steps", "5", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "trained 5 steps" in r.output and RunDir(out).config().steps == 5
    s = CliRunner().invoke(main, ["gan", "sample", str(out), "--n", "3", "--out", str(tmp_path / "s")])
    assert s.exit_code == 0 and read_image(tmp_path / "s" / "sample_00002.png", channels=3).shape == (3, 32, 32)
    bad = CliRunner().invoke(main, ["gan", "train", "--out", str(tmp_path / "z"), "--image-size", "27"])
    assert bad.exit_code == 2 and "odd" in bad.output
