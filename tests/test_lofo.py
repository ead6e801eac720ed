"""Hardening against several runs (every family in balance) and leave-one-family-out, on tiny real runs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import detector
from gan.trainer import train
from unmask.cli import main
from unmask.runs import family_plan, resolve_runs, spread, zoo_members

from gan_helpers import tiny_config


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A folder of two runs: dcgan with three snapshots (early/middle/late), upconv with one."""
    root = tmp_path_factory.mktemp("zoo")
    train(tiny_config(generator="dcgan"), root / "a_dcgan")
    train(tiny_config(generator="upconv", zoo_fractions=(1.0,), seed=1), root / "b_upconv")
    return root


def test_runs_resolve_and_plan_each_family_evenly(zoo):
    runs = resolve_runs([zoo])
    assert [r.name for r in runs] == ["a_dcgan", "b_upconv"]
    assert resolve_runs([zoo / "b_upconv", zoo / "a_dcgan"]) == [zoo / "b_upconv", zoo / "a_dcgan"]
    members = zoo_members(runs)
    assert [m.family for m in members] == ["dcgan"] * 3 + ["upconv"]
    assert members[0].name.startswith("a_dcgan/")
    plan = family_plan(members, 100)
    assert [plan[m.name] for m in members] == [34, 33, 33, 100]
    assert spread(5, 3) == [2, 2, 1] and sum(spread(7, 7)) == 7


def test_harden_samples_each_family_in_the_ratio_it_records(zoo, tmp_path, monkeypatch):
    """Families get equal shares although dcgan has three snapshots to upconv's one; the weights that
    reach the training loop draw each family in the share detector.json records."""
    import detector.train.harden as harden_mod
    from detector.train.config import HardenConfig
    from detector.train.loop import balanced_batches

    seen = {}
    real_train_detector = harden_mod.train_detector

    def spy(net, real_train, fake_train, *a, **kw):
        seen["names"], seen["weights"] = list(fake_train), kw["weights"]
        return real_train_detector(net, real_train, fake_train, *a, **kw)

    monkeypatch.setattr(harden_mod, "train_detector", spy)
    out = tmp_path / "det"
    res = CliRunner().invoke(main, ["harden", str(zoo), "--out", str(out), "--steps", "4", "--n-fakes", "90",
                                    "--val-fraction", "0.1"])
    assert res.exit_code == 0, res.output
    prov = detector.load(out).spec.provenance
    fams = prov["families"]
    assert set(fams) == {"dcgan", "upconv"}
    assert fams["dcgan"]["n_images"] == fams["upconv"]["n_images"] == 90
    assert len(fams["dcgan"]["sets"]) == 3 and [g["n_sampled"] for g in prov["generators"]] == [30, 30, 30, 90]
    assert {g["stage"] for g in prov["generators"] if g["family"] == "dcgan"} == {"early", "middle", "late"}
    assert fams["dcgan"]["share"] == pytest.approx(0.5) and fams["upconv"]["share"] == pytest.approx(0.5)
    assert prov["gan_run"]["dir"] == str(zoo / "a_dcgan") and len(prov["gan_runs"]) == 2
    # the training loop drew each family in the recorded share
    w = np.array([seen["weights"][n] for n in seen["names"]])
    fam_of = [next(g["family"] for g in prov["generators"] if g["name"] == n) for n in seen["names"]]
    sets = [torch.full((5, 1, 28, 28), float(k)) for k in range(len(fam_of))]
    batches = balanced_batches(torch.zeros(5, 1, 28, 28), sets, w / w.sum(), HardenConfig(batch_size=400, augment=
                               HardenConfig().augment.scaled(0)))
    drawn = {f: 0 for f in fams}
    for step in range(5):
        x, y = batches(step)
        ks = x[y == 1].flatten(1)[:, 0].round().long().tolist()
        for k in ks:
            drawn[fam_of[k]] += 1
    total = sum(drawn.values())
    for f in fams:
        assert drawn[f] / total == pytest.approx(fams[f]["share"], abs=0.05)
    assert sum(prov["fake_weights"].values()) == pytest.approx(1.0)


def test_harden_several_runs_cli_errors(zoo, tmp_path):
    out = tmp_path / "det"
    r = CliRunner().invoke(main, ["harden", str(zoo / "b_upconv"), str(zoo / "a_dcgan"), "--out", str(out),
                                  "--steps", "2", "--n-fakes", "40", "--val-fraction", "0.1"])
    assert r.exit_code == 0, r.output
    prov = detector.load(out).spec.provenance
    assert prov["gan_run"]["dir"] == str(zoo / "b_upconv")  # D from the first run named
    assert "families (share of training fakes): upconv 50%" in r.output
    r = CliRunner().invoke(main, ["harden", str(tmp_path), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "not a GAN run" in r.output
    r = CliRunner().invoke(main, ["harden", str(zoo), str(zoo / "a_dcgan"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "named twice" in r.output
    r = CliRunner().invoke(main, ["harden", str(zoo), "--rounds", "1", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "give one RUN" in r.output
    r = CliRunner().invoke(main, ["harden", str(zoo / "a_dcgan"), "--rounds", "1", "--traces", "npr",
                                  "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "does not take --traces" in r.output


def test_harden_with_trace_inputs(zoo, tmp_path):
    """--traces npr+dct: the run D's architecture and arguments plus the NPR input and the DCT branch,
    fresh weights (seeded), recorded in the artifact; the detector loads and scores like any other."""
    from gan.rundir import RunDir

    outs = []
    for k in range(2):
        outs.append(tmp_path / f"det{k}")
        r = CliRunner().invoke(main, ["harden", str(zoo), "--traces", "npr+dct", "--out", str(outs[-1]),
                                      "--steps", "0", "--n-fakes", "40", "--val-fraction", "0.1"])
        assert r.exit_code == 0, r.output
    det = detector.load(outs[0])
    d_net, _, d_args = RunDir(zoo / "a_dcgan").discriminator()
    assert det.spec.arch_args == {**d_args, "residual": "npr", "spectral": True}
    assert det.spec.provenance["traces"]["traces"] == "npr+dct" and det.net.spectral is not None
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(det.score_batch(x), detector.load(outs[1]).score_batch(x))  # seeded: the same start
    w = det.net.features[0].weight
    assert w.shape == d_net.features[0].weight.shape and not torch.equal(w, d_net.features[0].weight)  # fresh, not D
    r = CliRunner().invoke(main, ["harden", str(zoo), "--traces", "npr", "--width", "12", "--out", str(tmp_path / "w"),
                                  "--steps", "0", "--n-fakes", "40", "--val-fraction", "0.1"])
    assert r.exit_code == 0, r.output
    spec = detector.load(tmp_path / "w").spec
    assert spec.arch_args["width"] == 12 and spec.provenance["traces"]["width"] == 12
    assert detector.load(tmp_path / "w").net.features[0].out_channels == 12
    r = CliRunner().invoke(main, ["harden", str(zoo), "--width", "12", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--width sets the width" in r.output

def test_eval_lofo_end_to_end_tiny(zoo, tmp_path, real_images):
    from detector.imageio import save_png

    for i, im in enumerate(real_images[:300]):  # a small real folder keeps the folds' calibration cheap
        save_png(im, tmp_path / "real" / f"{i:03d}.png")
    out = tmp_path / "lofo"
    args = ["eval-lofo", str(zoo), "--out", str(out), "--steps", "6", "--n-fakes", "60", "--n-test", "40",
            "--bootstrap", "20", "--val-fraction", "0.1", "--real", str(tmp_path / "real"), "--traces", "npr"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    table = json.loads((out / "lofo.json").read_text())
    assert [row["family"] for row in table["rows"]] == ["dcgan", "upconv"]
    for row in table["rows"]:
        other = {"dcgan": "upconv", "upconv": "dcgan"}[row["family"]]
        assert row["trained_on"] == [other]
        d = row["detector"]
        assert d["n_fake"] == 40 and d["n_real"] == 45 and 0 <= d["caught"] <= 1 and len(d["auc_ci"]) == 2
        assert row["detector_jpeg75"]["n_fake"] == 40 and 0.0 <= row["baseline"]["auc"] <= 1.0
        assert set(row["in_domain"]) == {"real", "fake"} and all(0 <= v <= 1 for v in row["in_domain"].values())
        spec = detector.load(out / "folds" / row["family"] / "detector").spec
        assert spec.threshold == pytest.approx(d["threshold"])
        prov = spec.provenance
        assert prov["held_out_families"] == [row["family"]] and set(prov["families"]) == {other}
        assert spec.arch_args["residual"] == "npr" and prov["traces"]["traces"] == "npr"  # every fold sees traces
        assert other in prov["gan_run"]["dir"]  # started from a D that never saw the held-out family
        assert (out / "folds" / row["family"] / "report" / "index.html").is_file()
    md = (out / "lofo.md").read_text()
    assert "| dcgan | upconv |" in md and "| upconv | dcgan |" in md
    assert (out / "lofo.png").stat().st_size > 5000
    assert "folds/dcgan/report/index.html" in (out / "index.html").read_text()
    again = CliRunner().invoke(main, args + ["--resume"])
    assert again.exit_code == 0 and again.output.count("not hardening again") == 2
    assert json.loads((out / "lofo.json").read_text())["rows"] == table["rows"]
    one = CliRunner().invoke(main, ["eval-lofo", str(zoo / "a_dcgan"), "--out", str(tmp_path / "x"),
                                    "--n-fakes", "30", "--n-test", "10"])
    assert one.exit_code == 2 and "at least two generator families" in one.output
