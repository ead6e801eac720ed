"""The GAN clinic at its tiny size: every case runs without and with auto-remedy next to the healthy
run, the verdicts follow from the numbers, and the table and picture are written."""
from __future__ import annotations

import math

from bench.gan_clinic import CASES, HEALTHY, clinic_configs, markdown_table, plot_clinic, run, verdicts


def test_clinic_configs_break_one_thing_each():
    runs = clinic_configs(tiny=True)
    assert len(runs) == 2 * len(CASES) - 1 and len(CASES) - 1 >= 5
    healthy = [kw for n, a, kw in runs if n == HEALTHY][0]
    for name, auto, kw in runs:
        assert kw["auto_remedy"] == auto and kw["steps"] == healthy["steps"]  # the same budget
        if name != HEALTHY:
            assert {k for k in kw if kw[k] != healthy.get(k)} - {"auto_remedy"}, name  # something is broken


def test_tiny_clinic_runs_and_reports(tmp_path):
    res = run(tiny=True, out_dir=tmp_path / "runs", workers=1)
    runs = res["runs"]
    assert {(r["case"], r["auto_remedy"]) for r in runs} == {(n, a) for n, a, _ in clinic_configs(tiny=True)}
    for r in runs:
        assert math.isfinite(r["fd"]) and 0 <= r["coverage"] <= 1 and r["steps"] == 12
        assert any(x["type"] == "train" for x in r["records"])
        if not r["auto_remedy"]:
            assert r["remedies"] == []
    assert any(r["remedies"] for r in runs if r["auto_remedy"])  # the ladder acted somewhere
    v = res["verdicts"]
    assert v == verdicts(runs) and v["broken"] == len(CASES) - 1
    table = markdown_table(runs, v).splitlines()
    assert len(table) == 2 + len(runs) and table[2].startswith(f"| {HEALTHY} |")
    plot_clinic(runs, tmp_path / "clinic.png")
    assert (tmp_path / "clinic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_verdicts_follow_the_numbers():
    def r(case, auto, fd, cov):
        return {"case": case, "auto_remedy": auto, "fd": fd, "coverage": cov}

    runs = [r(HEALTHY, False, 50.0, 1.0)]
    broken = [n for n in CASES if n != HEALTHY]
    for i, n in enumerate(broken):
        runs += [r(n, False, 300.0, 0.5), r(n, True, [70.0, 80.0, 74.0, 60.0, 320.0][i], [1.0, 1.0, 1.0, 0.8, 0.9][i])]
    v = verdicts(runs)
    assert [v["cases"][n]["rescued"] for n in broken] == [True, False, True, False, False]
    assert v["rescued"] == 2 and v["not_worse"] == 4 and not v["cases"][broken[4]]["not_worse"]
