"""Generators and losses: every registered generator builds at the supported sizes, survives a
safetensors round trip bit-for-bit, and trains a few steps with every loss without NaN."""
from __future__ import annotations

import json
import math

import pytest
import torch

from gan.generators import GENERATORS, NON_GAN_GENERATORS, create_generator, plan_sizes
from gan.losses import LOSSES, create_loss, gradient_penalty, r1_penalty
from gan.trainer import GanConfig, train
from tests.gan_helpers import tiny_config

GAN_GENERATORS = [g for g in GENERATORS.names() if g not in NON_GAN_GENERATORS]


def _tiny_generator(name: str, size: int = 28, channels: int = 1):
    """``(generator, z_dim)``: width 4; a diffusion model's noise is its image, sampled in 2 DDIM steps."""
    if name == "diffusion":
        z = channels * size * size
        return create_generator(name, z_dim=z, image_size=size, channels=channels, width=4, sample_steps=2), z
    return create_generator(name, z_dim=8, image_size=size, channels=channels, width=4), 8


@pytest.mark.parametrize("name", GENERATORS.names())
@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 1), (48, 3)])
def test_generator_shapes_and_range(name, size, channels):
    torch.manual_seed(0)
    g, z_dim = _tiny_generator(name, size, channels)
    x = g(torch.randn(3, z_dim))
    assert x.shape == (3, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_safetensors_round_trip_bit_for_bit(name, tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    g, z_dim = _tiny_generator(name)
    save_file(g.eval().state_dict(), tmp_path / "g.safetensors")
    g2 = _tiny_generator(name)[0].eval()
    g2.load_state_dict(load_file(tmp_path / "g.safetensors"))
    z = torch.randn(4, z_dim)
    assert torch.equal(g(z), g2(z))


def test_families_differ_in_upsampling():
    dc = create_generator("dcgan", z_dim=8, width=4)
    up = create_generator("upconv", z_dim=8, width=4)
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in dc.modules())
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in up.modules())
    assert any(isinstance(m, torch.nn.Upsample) for m in up.modules())


def test_plan_sizes_and_bad_sizes():
    assert plan_sizes(28) == (7, 2) and plan_sizes(32) == (4, 3) and plan_sizes(64) == (4, 4)
    with pytest.raises(ValueError, match="odd"):
        plan_sizes(27)
    with pytest.raises(ValueError, match="base map"):
        plan_sizes(34)
    with pytest.raises(KeyError, match="unknown generator 'nope'"):
        create_generator("nope")


def test_loss_values_match_definitions():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 0.3])
    bce = create_loss("bce")
    expect = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    assert torch.allclose(bce.d_loss(real, fake), expect, atol=1e-6)
    assert torch.allclose(bce.g_loss(fake), -torch.log(torch.sigmoid(fake)).mean(), atol=1e-6)
    smooth = bce.d_loss(real, fake, label_smoothing=0.1)
    assert smooth > bce.d_loss(real, fake)  # confident real logits are penalised with target 0.9
    hinge = create_loss("hinge")
    assert math.isclose(hinge.d_loss(real, fake).item(), (0 + 0.5) / 2 + (0 + 1.3) / 2, rel_tol=1e-6)
    w = create_loss("wgan_gp")
    assert w.gp_weight == 10.0 and math.isclose(w.d_loss(real, fake).item(), -0.35 - 1.25, rel_tol=1e-6)


def test_penalties_are_differentiable_and_zero_for_linear_unit_critic():
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        lin[1].weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))  # ||grad|| = 1 everywhere
    d = lambda x: lin(x).squeeze(1)  # noqa: E731
    x, y = torch.rand(5, 1, 2, 2), torch.rand(5, 1, 2, 2)
    assert gradient_penalty(d, x, y).item() == pytest.approx(0.0, abs=1e-10)
    assert r1_penalty(d, x).item() == pytest.approx(1.0)


@pytest.mark.parametrize("generator", GAN_GENERATORS)
@pytest.mark.parametrize("loss", LOSSES.names())
def test_each_generator_and_loss_trains_without_nan(generator, loss, tmp_path):
    extra = {"label_smoothing": 0.1} if loss == "bce" else {}
    cfg = tiny_config(generator=generator, loss=loss, steps=4, r1=1.0 if loss == "hinge" else 0.0,
                      spectral_norm=loss == "hinge", instance_noise=0.1, d_steps=2 if loss == "wgan_gp" else 1,
                      spectral_loss=0.5 if generator == "upconv" else 0.0, **extra)
    res = train(cfg, tmp_path / "run")
    assert res.steps == 4
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["type"] == "train"]
    assert [r["step"] for r in train_rows] == [2, 4]
    for r in train_rows:
        for k in ("loss_d", "loss_g", "d_real", "d_fake", "grad_g", "grad_d", "diversity_ratio"):
            assert math.isfinite(r[k]), (k, r)
    q = res.quality
    assert q is not None and math.isfinite(q.fd) and q.metric == "FD-FMNIST"
    cfg_json = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg_json["discriminator"]["network"] == "dcgan_d"
    assert cfg_json["discriminator"]["args"]["norm"] == ("layer" if loss == "wgan_gp" else "batch")


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        GanConfig(loss="l2")
    with pytest.raises(ValueError, match="label_smoothing applies to the bce and minimax losses only"):
        GanConfig(loss="hinge", label_smoothing=0.1)
    with pytest.raises(ValueError, match="lr_d must be > 0"):
        GanConfig(lr_d=0)
    with pytest.raises(ValueError, match="wgan_gp with batch norm"):
        GanConfig(loss="wgan_gp", d_norm="batch")


def test_cli_help_has_examples():
    from click.testing import CliRunner

    from unmask.cli import main

    for args in (["gan"], ["gan", "train"], ["gan", "sample"], ["gan", "zoo"]):
        r = CliRunner().invoke(main, args + ["--help"])
        assert r.exit_code == 0 and "Example:" in r.output, args
