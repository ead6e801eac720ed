"""The health monitor: mode collapse fires on a (nearly) one-image generator and stays quiet on
real data; D overpowering G fires when D is given a large learning-rate advantage."""
from __future__ import annotations

import json

import pytest
import torch

from gan.health import DiversityProbe, HealthConfig, HealthMonitor, plot_health
from gan.quality import QualityMeter, feature_net
from gan.trainer import train
from tests.gan_helpers import tiny_config


@pytest.fixture(scope="module")
def probe(real_images):
    meter = QualityMeter(feature_net(), real_images[:256])
    return DiversityProbe(meter.features, real_images[:256], classes=meter.classes, labelled=True)


def _feed(monitor, probe, batches, start=0):
    events = []
    for i, b in enumerate(batches):
        events += monitor.update(50 * (start + i + 1), {"d_real": 0.7, "d_fake": 0.3, "grad_g": 1.0, **probe(b)})
    return events


def test_collapse_fires_on_one_image_generator(probe, real_images):
    torch.manual_seed(0)
    one = real_images[400:401]
    batches = [(one + 0.01 * torch.randn(64, 1, 28, 28)).clamp(0, 1) for _ in range(4)]  # nearly one image
    events = _feed(HealthMonitor(HealthConfig(window=3)), probe, batches)
    assert [e.symptom for e in events] == ["collapse"]
    e = events[0]
    assert e.step == 150 and "mode collapse" in e.message and "near-duplicates" in e.message
    assert "of real diversity" in e.message and "cover 10% of classes" in e.message
    assert "--instance-noise" in e.remedy and "--lr-g" in e.remedy


def test_collapse_quiet_on_real_data(probe, real_images):
    batches = [real_images[256 + 64 * i: 256 + 64 * (i + 1)] for i in range(4)]
    mon = HealthMonitor(HealthConfig(window=3))
    assert _feed(mon, probe, batches) == []
    assert mon.state == "ok"
    stats = probe(batches[0])
    assert 0.8 < stats["diversity_ratio"] < 1.25 and stats["dup_rate"] == 0.0 and stats["coverage"] >= 0.9


def test_collapse_needs_a_persistent_symptom_and_respects_warmup(probe, real_images):
    one = real_images[400:401].repeat(64, 1, 1, 1)
    real = real_images[256:320]
    mon = HealthMonitor(HealthConfig(window=3))
    assert _feed(mon, probe, [one, one, real, one, one]) == []  # never 3 in a row
    mon = HealthMonitor(HealthConfig(window=2, warmup_steps=100))
    assert _feed(mon, probe, [one, one]) == []  # steps 50, 100: still warming up
    assert [e.step for e in _feed(mon, probe, [one, one], start=2)] == [200]  # steps 150, 200


def test_overpowering_rule_on_synthetic_statistics():
    mon = HealthMonitor(HealthConfig(window=3, vanish_ratio=0.1))
    stats = [(0.3, 1.0), (0.01, 0.5), (0.004, 0.05), (0.003, 0.04), (0.002, 0.03)]
    fired = [mon.update(10 * i, {"d_fake": f, "grad_g_minimax": g}) for i, (f, g) in enumerate(stats)]
    assert [len(f) for f in fired] == [0, 0, 0, 0, 1]
    assert fired[-1][0].symptom == "overpowering" and "99.8% confidence" in fired[-1][0].message
    mon = HealthMonitor(HealthConfig(window=3))  # confident D but G still learning: no warning
    assert not any(mon.update(i, {"d_fake": 0.001, "grad_g_minimax": 1.0}) for i in range(6))


def test_overpowering_fires_when_d_gets_a_large_lr_advantage(tmp_path):
    cfg = tiny_config(steps=16, batch_size=16, health_every=4, health_window=2, lr_d=1e-2, lr_g=1e-5,
                      checkpoint_every=1000, health_plot=True)
    res = train(cfg, tmp_path / "run")
    over = [w for w in res.warnings if w.symptom == "overpowering"]
    assert over, [w.message for w in res.warnings]
    assert "discriminator overpowering the generator" in over[0].message and "--lr-d" in over[0].remedy
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    at = [r for r in rows if r["type"] == "train" and r["step"] == over[0].step][0]
    assert at["d_fake"] < 0.05 and at["grad_g_minimax"] < 0.1 * at["grad_g"]  # the NS gradient stays large
    assert (tmp_path / "run" / "health.png").stat().st_size > 5000


def test_monitor_state_round_trip():
    mon = HealthMonitor(HealthConfig(window=3))
    mon.update(10, {"d_fake": 0.001, "grad_g_minimax": 2.0, "diversity_ratio": 0.1})
    mon2 = HealthMonitor(HealthConfig(window=3))
    mon2.load_state_dict(json.loads(json.dumps(mon.state_dict())))
    assert mon2.state_dict() == mon.state_dict()


def test_plot_health_writes_png(tmp_path):
    recs = [{"type": "train", "step": s, "loss_d": 1.0, "loss_g": 2.0, "d_real": 0.6, "d_fake": 0.4,
             "acc_real": 0.7, "acc_fake": 0.6, "grad_g": 1.0, "grad_d": 2.0, "diversity_ratio": 0.9,
             "dup_rate": 0.0} for s in (10, 20)]
    recs += [{"type": "quality", "step": 20, "fd": 30.0, "precision": 0.5, "recall": 0.6},
             {"type": "warning", "step": 20, "symptom": "collapse"}]
    plot_health(recs, tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
