"""``scripts/gpu_check.py`` (``make gpu-check``): its CPU path runs end to end where there is no GPU.

Marked slow: it runs ``unmask`` itself seven times (tiny sizes, seconds each on an idle machine).
No timing is asserted; the table's rows and the exit code are.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: `make gpu-check` runs the real check")
def test_gpu_check_without_a_gpu_runs_its_cpu_path(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--out", str(tmp_path / "w")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "No CUDA GPU is visible" in out and out.rstrip().endswith("ok")
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    for stage in ("gan train", "harden", "scan", "video"):
        assert stage in rows and rows[stage].rstrip().endswith("ok"), out
    assert "0.00e+00" in rows["scan"] and "0.00e+00" in rows["video"]  # CPU vs CPU: the same scores
    log = (tmp_path / "w" / "gpu_check.log").read_text()
    assert "$ unmask gan train" in log and "$ unmask video" in log and "--device cpu" in log
