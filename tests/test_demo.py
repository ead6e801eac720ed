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
    for n in range(1, 8):
        assert f"== [{n}/7]" in text
    # one "wrote" line per stage's main output
    for what in ("gan", "gan_upconv", "detector", "detector.onnx", "report/index.html", "results.csv",
                 "video/analysis", "detector_retrained"):
        assert f"{out / what}" in text, what

    # 1: GAN runs with a zoo and health curves
    for run in ("gan", "gan_upconv"):
        assert (out / run / "config.json").is_file() and (out / run / "zoo" / "index.json").is_file()
        assert (out / run / "health.png").is_file()
    # 2: artifact + ONNX
    spec = json.loads((out / "detector" / "detector.json").read_text())
    assert spec["architecture"] == "dcgan_d" and 0 < spec["threshold"] < 1
    assert (out / "detector.onnx").stat().st_size > 10_000
    # 3: report with per-generator metrics and both baselines
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert set(metrics["per_fake_set"]) == {"dcgan", "upconv_unseen"}
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
    # 7: three-line summary
    assert "AUC on its own generator (dcgan)" in text and "false-positive rate on" in text
    # the output is a log (CliRunner's streams are no terminal, like `make demo > log 2>&1`): every
    # progress task is a start line, a line per quarter and an end line; no carriage-return redraws
    lines = text.splitlines()
    assert "\r" not in text and len(lines) < 200, len(lines)
    for task in ("gan: 0/150 step", "gan: 0/100 step", "harden: 0/150 step", "real: 0/150 file", "scan: 0/80 file",
                 "clean.avi: 0/24 frame", "harden: 0/60 step"):
        assert task in lines, task
    ends = [ln for ln in lines if " done in " in ln]
    assert len(ends) >= 10 and ends[0].startswith("gan: 150/150 step done in ")
