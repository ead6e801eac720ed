"""`unmask demo --quick`: every stage runs and writes what it says, and the story holds."""
from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from unmask.cli import main


@pytest.mark.e2e
def test_quick_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = res.output
    for n in range(1, 9):
        assert f"== [{n}/8]" in text
    # one "wrote" line per stage's main output
    for what in ("gan", "families/vae", "gan_upconv", "detector", "detector.onnx", "report/index.html",
                 "results.csv", "video/analysis", "detector_retrained", "lofo/index.html"):
        assert f"{out / what}" in text, what

    # 1: a run per family with a zoo (and the GANs' health curves)
    for run in ("gan", "families/vae", "gan_upconv"):
        assert (out / run / "config.json").is_file() and (out / run / "zoo" / "index.json").is_file()
    assert (out / "gan" / "health.png").is_file() and (out / "gan_upconv" / "health.png").is_file()
    # 2: artifact hardened on dcgan and vae in balance, with trace inputs, + ONNX
    spec = json.loads((out / "detector" / "detector.json").read_text())
    assert spec["architecture"] == "dcgan_d" and 0 < spec["threshold"] < 1
    assert spec["arch_args"]["residual"] == "npr" and spec["arch_args"]["spectral"] is True
    shares = {f: v["share"] for f, v in spec["provenance"]["families"].items()}
    assert shares == pytest.approx({"dcgan": 0.5, "vae": 0.5})
    assert (out / "detector.onnx").stat().st_size > 10_000
    # 3: report with per-family metrics and both baselines
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert set(metrics["per_fake_set"]) == {"dcgan", "vae", "upconv_unseen"}
    assert set(metrics["baselines"]) == {"frank_dct", "durall_spectrum"}
    assert "<img" in (out / "report" / "index.html").read_text()
    # 4: one row per scanned file, none unreadable
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 80 and {r["label"] for r in rows} <= {"real", "fake", "out_of_domain"}
    assert sum(r["label"] == "out_of_domain" for r in rows) <= 4  # held-out reals and fakes of the same content
    # 5: the manipulated video is caught, the clean one is not
    summary = json.loads((out / "summary.json").read_text())
    assert summary["video_verdicts"] == {"clean.avi": "real", "manipulated.avi": "fake"}
    assert list((out / "video" / "analysis" / "timelines").glob("*.png"))
    # the detector separates its own generator's fakes; retraining helps on the unseen family
    assert summary["auc_seen"] > 0.95
    assert summary["auc_unseen_after_retrain"] > summary["auc_unseen"]
    assert 0 <= summary["fpr_real"] < 0.1
    # 7: leave-one-family-out over the three families; the upconv fold is the demo's detector
    lofo = json.loads((out / "lofo" / "lofo.json").read_text())
    assert [r["family"] for r in lofo["rows"]] == ["dcgan", "vae", "upconv"]
    for r in lofo["rows"]:
        assert r["family"] not in r["trained_on"] and len(r["trained_on"]) == 2
    fold = json.loads((out / "lofo" / "folds" / "upconv" / "detector" / "detector.json").read_text())
    assert fold == spec  # the demo's detector itself, not a second training
    # 8: the summary
    assert "AUC on the families it was hardened on: dcgan" in text and "false-positive rate on" in text
    assert text.count("never trained on ") == 3
    # the output is a log (CliRunner's streams are no terminal, like `make demo > log 2>&1`): every
    # progress task is a start line, a line per quarter and an end line; no carriage-return redraws
    lines = text.splitlines()
    assert "\r" not in text and len(lines) < 200, len(lines)
    # (the trainings run in worker processes: their lines come back prefixed with the job's name)
    for task in ("[train dcgan] gan: 0/150 step", "[train upconv] gan: 0/100 step", "[train vae] vae: 0/60 step",
                 "[harden] harden: 0/150 step", "[fold vae] harden: 0/150 step", "real: 0/150 file",
                 "scan: 0/80 file", "clean.avi: 0/24 frame", "harden: 0/60 step"):
        assert task in lines, task
    ends = [ln for ln in lines if " done in " in ln]
    assert len(ends) >= 10 and any(e.startswith("[train dcgan] gan: 150/150 step done in ") for e in ends)
