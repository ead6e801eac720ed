"""`unmask eval` end to end on PNG folders, metrics.json, the HTML report (rendered in headless
Chromium), the false-positive audit and the labelled-folder layout."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from detector.artifact import load
from tests.corpus import save_pngs
from unmask.cli import main

N = 48



@pytest.fixture(scope="module")
def folders(tmp_path_factory, real_images, fake_images):
    """real/ (held-out reals + one broken file), gen_a/ (fixture fakes), gen_b/ (mirrored, darker fakes)."""
    root = tmp_path_factory.mktemp("evalsets")
    save_pngs(root / "real", real_images[400:400 + N], "r{i:03d}.png")
    save_pngs(root / "gen_a", fake_images[400:400 + N], "a{i:03d}.png")
    save_pngs(root / "gen_b", fake_images[400:400 + N].flip(-1) * 0.8, "b{i:03d}.png")
    (root / "real" / "zz_broken.png").write_bytes(b"this is not an image at all")
    return root


@pytest.fixture(scope="module")
def report(folders, tiny_detector, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    res = CliRunner().invoke(main, ["eval", "--detector", str(tiny_detector), "--real", str(folders / "real"),
                                    "--fake", str(folders / "gen_a"), "--fake", str(folders / "gen_b"),
                                    "--out", str(out), "--bootstrap", "200", "--baselines", "--robustness", "--json"])
    return res, out


def test_eval_cli_writes_metrics_json(report, tiny_detector, folders):
    res, out = report
    assert res.exit_code == 1, res.output  # one unreadable file: done, with exit code 1
    assert "zz_broken.png" in res.stderr and "report:" in res.stderr   # under --json, result lines on stderr
    m = json.loads((out / "metrics.json").read_text())
    summary = json.loads(res.stdout)                                   # and one JSON object on stdout
    assert summary["command"] == "eval" and summary["report"] == str(out / "index.html")
    assert summary["overall"]["auc"] == pytest.approx(m["overall"]["auc"]) and summary["unreadable"]
    keys = {"auc", "ap", "eer", "accuracy", "real_accuracy", "fake_accuracy", "tpr_at_fpr_1pct", "n_real", "n_fake"}
    assert keys <= set(m["overall"])
    assert set(m["per_fake_set"]) == {"gen_a", "gen_b"}
    for k in ("gen_a", "gen_b"):
        assert keys <= set(m["per_fake_set"][k])
        assert (m["per_fake_set"][k]["n_real"], m["per_fake_set"][k]["n_fake"]) == (N, N)
    assert (m["overall"]["n_real"], m["overall"]["n_fake"]) == (N, 2 * N)
    assert m["unreadable"][0]["path"].endswith("zz_broken.png")
    assert "text" in m["unreadable"][0]["reason"]
    lo, hi = m["overall"]["auc_ci"]
    assert lo <= m["overall"]["auc"] <= hi
    # the scores are the artifact's own: recompute gen_a's AUC with detector.score_image on the files
    det = load(tiny_detector)
    from detector.decode import read_image
    from eval.metrics import compute_metrics

    r = [det.score_image(read_image(p, 1)) for p in sorted((folders / "real").glob("r*.png"))]
    f = [det.score_image(read_image(p, 1)) for p in sorted((folders / "gen_a").glob("*.png"))]
    ref = compute_metrics([0] * len(r) + [1] * len(f), r + f, det.spec.threshold, bootstrap=0)
    assert m["per_fake_set"]["gen_a"]["auc"] == pytest.approx(ref.auc)
    assert m["per_fake_set"]["gen_a"]["accuracy"] == pytest.approx(ref.accuracy)
    # baselines and robustness sections
    assert set(m["baselines"]) == {"frank_dct", "durall_spectrum"}
    assert set(m["baselines"]["frank_dct"]["per_fake_set"]) == {"gen_a", "gen_b"}
    rows = {r["perturbation"]: r for r in m["robustness"]["rows"]}
    assert set(rows) == {"clean", "jpeg_q90", "jpeg_q75", "jpeg_q50", "blur_s1", "blur_s2", "downscale_0_5",
                         "noise_s0_05"}
    assert rows["clean"]["flip_rate"] == 0.0
    assert rows["clean"]["auc"] == pytest.approx(m["overall"]["auc"])


def test_report_files_and_summary(report):
    _, out = report
    for name in ("roc", "roc_log", "pr", "det", "histogram", "reliability", "robustness"):
        png = (out / "plots" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    html = (out / "index.html").read_text()
    assert "src='http" not in html and 'src="http' not in html  # self-contained
    assert html.count("data:image/png;base64,") >= 7
    assert "gen_a" in html and "frank_dct" in html and "Unreadable files (1)" in html
    summary = (out / "summary.md").read_text()
    assert "| detector | gen_b |" in summary and "| durall_spectrum | all fakes |" in summary


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


def _chrome_args(tmp_path: Path) -> list[str]:
    return [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'chrome-profile'}"]


@pytest.mark.skipif(_chromium() is None, reason="no Chromium binary on this machine")
def test_report_renders_in_headless_chromium(report, tmp_path):
    _, out = report
    url = (out / "index.html").resolve().as_uri()
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run(_chrome_args(tmp_path) + ["--virtual-time-budget=10000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, env=env).stdout
    import re

    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    n_images = int(attrs["data-images"])
    assert n_images >= 7 + 1  # seven plots and at least one gallery thumbnail
    assert attrs["data-images-loaded"] == attrs["data-images"]  # every image decoded (naturalWidth > 0)
    assert int(attrs["data-tables"]) >= 9 + 8  # per-generator rows (3 models x 3 sets) + robustness rows
    assert 'id="per-generator"' in dom and 'id="robustness"' in dom


def test_real_only_is_a_false_positive_audit(folders, tiny_detector, tmp_path):
    out = tmp_path / "audit"
    res = CliRunner().invoke(main, ["eval", "--detector", str(tiny_detector), "--real", str(folders / "real"),
                                    "--out", str(out), "--bootstrap", "0"])
    assert res.exit_code == 1, res.output  # the broken file
    assert "false-positive audit:" in res.output
    m = json.loads((out / "metrics.json").read_text())
    a = m["false_positive_audit"]
    assert a["n_real"] == N and a["method"] == "wilson"
    assert a["ci_low"] <= a["fpr"] <= a["ci_high"]
    assert m["overall"] is None
    html = (out / "index.html").read_text()
    assert "false-positive audit" in html


def test_labelled_folder_layout(tmp_path, real_images, fake_images, tiny_detector):
    root = tmp_path / "testset"
    save_pngs(root / "0_real", real_images[450:462])
    save_pngs(root / "1_fake", fake_images[450:462])
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["eval", "--detector", str(tiny_detector), str(root), "--out", str(out),
                                    "--bootstrap", "0", "--gallery", "3"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["per_fake_set"]) == ["testset"]
    assert (m["overall"]["n_real"], m["overall"]["n_fake"]) == (12, 12)
    # without --baselines/--robustness images are scored while read and not kept: same numbers
    from detector.decode import read_image
    from eval.metrics import compute_metrics

    det = load(tiny_detector)
    s = [det.score_image(read_image(root / d / f"{i}.png", 1)) for d in ("0_real", "1_fake") for i in range(12)]
    ref = compute_metrics([0] * 12 + [1] * 12, s, det.spec.threshold, bootstrap=0)
    assert m["overall"]["auc"] == pytest.approx(ref.auc) and m["overall"]["accuracy"] == pytest.approx(ref.accuracy)


def test_usage_errors(tmp_path, tiny_detector, folders):
    r = CliRunner().invoke(main, ["eval", "--detector", str(tiny_detector), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "give --real and/or --fake" in r.output
    r = CliRunner().invoke(main, ["eval", "--detector", str(tmp_path), "--real", str(folders / "real"),
                                  "--out", str(tmp_path / "x")])
    assert r.exit_code == 3 and "detector.json" in r.output
    r = CliRunner().invoke(main, ["eval", "--detector", str(tiny_detector), "--fake", str(folders / "gen_a"),
                                  "--out", str(tmp_path / "x"), "--bootstrap", "0"])
    assert r.exit_code == 3 and "need real images" in r.output
    (tmp_path / "empty_gen").mkdir()
    (tmp_path / "empty_gen" / "x.png").write_bytes(b"")
    r = CliRunner().invoke(main, ["eval", "--detector", str(tiny_detector), "--real", str(folders / "real"),
                                  "--fake", str(tmp_path / "empty_gen"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 3 and "empty_gen: no readable images" in r.output


def test_gallery_picks_most_confident_mistakes():
    from eval.report import gallery_items

    class Rep:  # the smallest object gallery_items reads
        threshold = 0.5
        real = type("S", (), {"files": ["a", "b", "c"], "scores": np.array([0.9, 0.2, 0.6]),
                              "images": [torch.zeros(1, 4, 4)] * 3})()
        fakes = [type("S", (), {"name": "g", "files": ["x", "y"], "scores": np.array([0.1, 0.45]),
                                "images": [torch.zeros(1, 4, 4)] * 2})()]

    fps, fns = gallery_items(Rep, 5)
    assert [(f, s) for f, _, s, _ in fps] == [("a", 0.9), ("c", 0.6)]
    assert [(f, s) for f, _, s, _ in fns] == [("x", 0.1), ("y", 0.45)]


def test_baselines_default_to_the_artifacts_replay_sample(tmp_path, tiny_detector, folders, real_images, fake_images):
    """A hardened artifact carries replay.safetensors; the baselines fit on it."""
    from detector.train import replay as hd
    from detector.train.splits import Splits

    det_dir = tmp_path / "det"
    shutil.copytree(tiny_detector, det_dir)
    real = Splits(real_images[:40], real_images[40:50], real_images[50:60])
    fake = Splits(fake_images[:40], fake_images[40:50], fake_images[50:60])
    hd.save_replay(det_dir / hd.REPLAY_FILE, real, {"tconv": fake}, 40, 0)
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["eval", "--detector", str(det_dir), "--real", str(folders / "real"),
                                    "--fake", str(folders / "gen_a"), "--out", str(out), "--bootstrap", "0",
                                    "--baselines"])
    assert res.exit_code == 1, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert "replay.safetensors: 40 real, 40 fake from tconv" in m["baselines"]["frank_dct"]["training"]
