"""Every benchmark runs once at its tiny size, so bench/ cannot rot (no timing assertions)."""
from __future__ import annotations

import importlib
import math
import types

import pytest

from bench.__main__ import BENCHES, met, run_benchmarks, table


def _present(name: str) -> bool:
    try:
        importlib.import_module(f"bench.{name}")
        return True
    except ModuleNotFoundError as e:
        if e.name != f"bench.{name}":
            raise
        return False


@pytest.mark.parametrize("name,key", [(b[0], b[1]) for b in BENCHES])
def test_benchmark_runs_tiny(name, key):
    if not _present(name):
        pytest.skip(f"bench/{name}.py is not in this checkout yet")
    mod = importlib.import_module(f"bench.{name}")
    res = mod.run(tiny=True)
    assert isinstance(res, dict) and key in res
    signed = set(getattr(mod, "SIGNED", ()))
    for k, v in res.items():  # every reported number is a real measurement
        if isinstance(v, float) or k == key:
            v = float(v)
            assert math.isfinite(v), (name, k, v)
            # a difference of two timings may fall below zero at noise level; a cost share stays < 1
            assert (v < 1) if k in signed else (v > 0), (name, k, v)


def test_runner_skips_a_missing_module_and_builds_the_table(monkeypatch):
    fake = types.ModuleType("bench.fake_ok")
    fake.run = lambda tiny=False: {"ratio": 0.5, "tiny": tiny}
    monkeypatch.setitem(__import__("sys").modules, "bench.fake_ok", fake)
    benches = [("fake_ok", "ratio", ">= 0.7", "a stand-in"), ("not_written_yet", "ratio", "report", "missing")]
    logs: list[str] = []
    res = run_benchmarks(tiny=True, benches=benches, log=logs.append)
    assert res["benchmarks"]["fake_ok"]["headline"] == {"key": "ratio", "value": 0.5, "target": ">= 0.7", "met": "NO"}
    assert res["benchmarks"]["fake_ok"]["tiny"] is True
    assert res["skipped"] == {"not_written_yet": "bench/not_written_yet.py not present"}
    assert any("not_written_yet: SKIPPED" in m for m in logs)
    t = table(res, benches).splitlines()
    assert t[1].split()[:4] == ["fake_ok", "0.5", ">=", "0.7"] and "NO" in t[1]
    assert t[2].split()[:2] == ["not_written_yet", "skipped"]


def test_met_reads_targets():
    assert met(0.7, ">= 0.7") == "yes" and met(0.69, ">= 0.7") == "NO"
    assert met(1.2, "<= 1.2") == "yes" and met(1.3, "<= 1.2") == "NO"
    assert met(50.0, "report (expect > 20x)") == "-"
