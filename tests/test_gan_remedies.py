"""The remedy ladder: each rung changes what it names and stays within its bounds; a rung that does
not help is rolled back and the next one tried; the trainer reads the knobs; partial mode dropping
is warned about on a generator restricted to a few classes and not on real data."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from gan.health import DiversityProbe, HealthConfig, HealthMonitor
from gan.losses import create_loss
from gan.quality import QualityMeter, feature_net
from gan.remedies import (LR_FLOOR, MAX_D_EVERY, MAX_MODE_SEEKING, MAX_NOISE, MAX_R1, MAX_SMOOTHING,
                          RUNGS, Knobs, RemedyLadder, handle_events, mode_seeking_loss)
from tests.gan_helpers import tiny_config

# the Knobs fields each rung may change
CHANGES = {"non_saturating": {"non_saturating"}, "rebalance": {"lr_d", "lr_g"}, "slow_d": {"d_every", "d_steps"},
           "noise": {"instance_noise"}, "smoothing": {"label_smoothing"}, "r1": {"r1"},
           "mode_seeking": {"mode_seeking"}, "lower_lr_g": {"lr_g"}}


@pytest.mark.parametrize("loss,lr_d,lr_g", [("bce", 2e-3, 2e-5), ("minimax", 2e-4, 2e-4), ("bce", 1e-4, 6e-3),
                                           ("hinge", 2e-4, 2e-4)])
@pytest.mark.parametrize("rung", sorted(RUNGS))
def test_each_rung_changes_what_it_names_and_stays_bounded(rung, loss, lr_d, lr_g):
    c = tiny_config(loss=loss, lr_d=lr_d, lr_g=lr_g)
    k = Knobs.from_config(c)
    applied = 0
    for _ in range(20):  # repeated until it stops (it must: every rung is bounded)
        new = RUNGS[rung](k, c, k.instance_noise)
        if new is None:
            break
        changed = set(k.changes(new))
        assert changed and changed <= CHANGES[rung], (rung, changed)
        if rung == "rebalance":  # towards each other: one down, one up, never both down
            assert (new.lr_d - k.lr_d) * (new.lr_g - k.lr_g) < 0
            assert abs(torch.tensor(new.lr_d / new.lr_g).log()) < abs(torch.tensor(k.lr_d / k.lr_g).log())
        k, applied = new, applied + 1
    else:
        pytest.fail(f"{rung} never reached its bound")
    hi = max(c.lr_d, c.lr_g)
    assert LR_FLOOR * c.lr_d <= k.lr_d <= hi and LR_FLOOR * c.lr_g <= k.lr_g <= hi
    assert k.instance_noise <= MAX_NOISE and k.label_smoothing <= MAX_SMOOTHING and k.r1 <= MAX_R1
    assert k.d_every <= MAX_D_EVERY and k.mode_seeking <= MAX_MODE_SEEKING
    expected_applies = {"non_saturating": loss == "minimax", "smoothing": loss in ("bce", "minimax"),
                        "rebalance": lr_d != lr_g, "lower_lr_g": lr_g >= lr_d}
    assert (applied > 0) == expected_applies.get(rung, True), (rung, applied)


def test_rebalance_meets_at_the_geometric_mean_and_noise_rises_from_where_it_is():
    c = tiny_config(lr_d=2e-3, lr_g=2e-5)
    k = RUNGS["rebalance"](Knobs.from_config(c), c, 0.0)
    assert k.lr_d == pytest.approx(2e-4) and k.lr_g == pytest.approx(2e-4)
    assert RUNGS["rebalance"](k, c, 0.0) is None  # balanced now
    k = RUNGS["noise"](k, c, 0.12)  # the configured (annealing) sigma is 0.12 now: double it
    assert k.instance_noise == pytest.approx(0.24)
    assert RUNGS["noise"](k, c, 0.24).instance_noise == MAX_NOISE
    assert RUNGS["noise"](dataclasses.replace(k, instance_noise=MAX_NOISE), c, MAX_NOISE) is None


def _trial(ladder, reliefs, symptom="overpowering"):
    out = []
    for step, v in reliefs:
        out += ladder.observe(step, {"overpowering": float("inf"), "collapse": float("inf"),
                                     "dropping": float("inf"), symptom: v}, 0.0)
    return out


def test_rung_that_does_not_help_is_rolled_back_and_the_next_one_tried():
    c = tiny_config(lr_d=2e-3, lr_g=2e-5)
    ladder = RemedyLadder(c, trial_checks=2)
    _trial(ladder, [(10, 0.1), (20, 0.1)])
    first = ladder.on_warning(20, "overpowering", 0.0)
    assert first["rung"] == "rebalance" and ladder.knobs.lr_d == pytest.approx(2e-4)
    assert ladder.on_warning(25, "overpowering", 0.0)["verdict"] == "on trial"  # no second rung meanwhile
    recs = _trial(ladder, [(30, 0.1), (40, 0.12)])  # no better: rolled back, next rung (slow D)
    assert [r["verdict"] for r in recs] == ["rolled back", "on trial"]
    assert recs[0]["before"] == pytest.approx(0.1) and recs[0]["after"] == pytest.approx(0.11)
    assert "lr_d 0.0002 -> 0.002" in recs[0]["action"] and recs[1]["rung"] == "slow_d"
    assert (ladder.knobs.lr_d, ladder.knobs.lr_g, ladder.knobs.d_every) == (2e-3, 2e-5, 2)
    recs = _trial(ladder, [(50, 0.5), (60, 0.9)])  # relief 0.1 -> 0.7: kept, watched another trial
    assert [r["verdict"] for r in recs] == ["kept"] and "still improving" in recs[0]["action"]
    assert ladder.on_warning(60, "collapse", 0.0)["verdict"] == "on trial"  # one rung at a time, any ladder
    recs = _trial(ladder, [(70, 0.7), (80, 0.72)])  # stalled below 1: stays (it helped), next rung on top
    assert [(r["verdict"], r["rung"]) for r in recs] == [("kept", "slow_d"), ("on trial", "noise")]
    assert ladder.knobs.d_every == 2 and ladder.knobs.instance_noise == pytest.approx(0.1)
    state = ladder.state_dict()
    again = RemedyLadder(c, trial_checks=2)
    again.load_state_dict(state)
    assert again.knobs == ladder.knobs and again.state_dict() == state


def test_exhausted_ladder_says_so_and_ends_where_it_started():
    c = tiny_config(loss="hinge")
    ladder = RemedyLadder(c, trial_checks=1)
    applied, last = [], None
    for i in range(8):  # nothing ever helps: every rung is rolled back in turn
        applied += [r["rung"] for r in _trial(ladder, [(10 * i, 0.1)], symptom="collapse") if r["verdict"] == "on trial"]
        last = ladder.on_warning(10 * i + 5, "collapse", 0.0)
        applied += [last["rung"]] if last["verdict"] == "on trial" and "since" not in last["action"] else []
    assert applied == ["noise", "r1", "mode_seeking", "lower_lr_g"]  # rebalance: nothing to rebalance
    assert last["verdict"] == "exhausted" and "none left" in last["action"]
    assert ladder.knobs == Knobs.from_config(c)


def test_trainer_reads_the_knobs(tmp_path, real_images):
    from gan.data import epoch_permutation
    from gan.health import HealthEvent
    from gan.trainer import Trainer

    t = Trainer(tiny_config(lr_d=2e-3, lr_g=2e-5, auto_remedy=True), tmp_path)
    images = real_images[:64]
    perm = epoch_permutation(64, 0, 0)
    t.ladder.knobs = dataclasses.replace(t.ladder.knobs, d_every=2)
    t.step = 1  # D skips odd steps
    before = [p.detach().clone() for p in t.D.parameters()]
    d = t.d_step(images, perm, 0.0, check=False)
    assert all(torch.equal(a, b) for a, b in zip(before, t.D.parameters())) and d.grad_norm is None
    t.step = 2
    t.d_step(images, perm, 0.0, check=False)
    assert not all(torch.equal(a, b) for a, b in zip(before, t.D.parameters()))
    logs = []
    handle_events(t, {}, [HealthEvent(50, "overpowering", "m", "r")], 0.0, logs.append)
    assert t.opt_d.param_groups[0]["lr"] == pytest.approx(2e-4) and t.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert t.records[-1]["rung"] == "rebalance" and "auto-remedy: rebalance" in logs[0]
    t.ladder.knobs = dataclasses.replace(t.ladder.knobs, instance_noise=0.2)
    assert t.sigma() == pytest.approx(0.2)


def test_minimax_saturates_and_the_non_saturating_switch_does_not():
    loss = create_loss("minimax")
    x = torch.full((8,), -8.0, requires_grad=True)  # D rejects every fake confidently
    (g_sat,) = torch.autograd.grad(loss.g_loss(x), x)
    (g_ns,) = torch.autograd.grad(loss.g_loss(x, non_saturating=True), x)
    assert g_sat.abs().max() < 1e-3 < g_ns.abs().min()
    assert torch.equal(loss.d_loss(x, -x, 0.1), create_loss("bce").d_loss(x, -x, 0.1))


def test_mode_seeking_loss_rewards_distinct_images_for_distinct_codes():
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    same = torch.zeros(8, 1, 4, 4)
    distinct = torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    assert mode_seeking_loss(distinct, z) < mode_seeking_loss(same + 1e-3 * distinct, z)


@pytest.fixture(scope="module")
def labelled(real_images):
    from detector.data import load_fashion_mnist

    data = load_fashion_mnist("test", variant="embedded")
    images = torch.from_numpy(data.images[:2048].copy()).unsqueeze(1).float() / 255.0
    meter = QualityMeter(feature_net(), real_images[:256])
    probe = DiversityProbe(meter.features, real_images[:256], classes=meter.classes, labelled=True)
    return images, torch.from_numpy(data.labels[:2048].copy()), probe


def _watch(probe, batches):
    mon = HealthMonitor(HealthConfig(window=3))
    return [e for i, b in enumerate(batches) for e in mon.update(50 * (i + 1), {"d_fake": 0.4, **probe(b)})]


def test_partial_mode_dropping_warned_for_a_few_class_generator(labelled):
    images, labels, probe = labelled
    few = images[labels < 6][:256]  # 6 of 10 classes, real-looking
    events = _watch(probe, [few[64 * i:64 * (i + 1)] for i in range(4)])
    assert [e.symptom for e in events] == ["dropping"], [e.message for e in events]
    assert "partial mode dropping" in events[0].message and "of classes" in events[0].message
    healthy = images[512:512 + 256]
    assert _watch(probe, [healthy[64 * i:64 * (i + 1)] for i in range(4)]) == []
    # nine classes of ten is exactly the 90% limit, not under it (float32 once made it 0.8999999762)
    nine = images[labels != 9][:64]
    stats = probe(nine)
    assert stats["coverage"] == 0.9 and HealthMonitor(HealthConfig()).relief("dropping", {**stats, "recall": 1.0}) >= 1


def test_resume_with_remedies_reproduces_uninterrupted_run(tmp_path):
    import json

    from gan.trainer import train

    cfg = tiny_config(steps=12, batch_size=16, lr_d=1e-2, lr_g=1e-5, health_every=2, checkpoint_every=100,
                      auto_remedy=True)
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b", stop_at=7)
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["type"] == "remedy" and r.get("rung") for r in rows)  # the ladder acted before the interruption
    train(cfg, tmp_path / "b", resume=True)
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
