"""Peak memory of a folder scan does not grow with the number of files (results are streamed).

Scans 10,000 and 100,000 tiny PNGs (200 / 1,000 with ``tiny``), each in a fresh subprocess, and
compares their peak resident set sizes (the child's own ``VmHWM``). Only the file list and a ``--top`` heap are held; rows go
straight to the CSV. Target ratio (100k / 10k) <= 1.2.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, torch
torch.set_num_threads(1)
from detector.artifact import Detector, spec_for_network
from detector.nets import create_network
from detector.scan import ScanConfig, scan
args = dict(in_channels=1, image_size=28)
det = Detector(create_network("dcgan_d", **args), spec_for_network("dcgan_d", args, 28, 1))
r = scan(sys.argv[1:-1], det, sys.argv[-1], ScanConfig(workers=0, batch_size=128, overwrite=True, progress=False),
         log=lambda m: None)
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec,
# so a child of a big parent would report the parent's peak (1.6 GB after model_cost) instead of its own.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024.0
print(json.dumps({"files": r.n_files, "errors": r.n_errors, "seconds": r.seconds, "peak_rss_mb": hwm,
                  "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
"""


def run(tiny: bool = False) -> dict:
    from bench.scan_speed import make_files

    small, big, per_dir = (200, 1_000, 100) if tiny else (10_000, 100_000, 1_000)
    root = Path(__file__).resolve().parents[1]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_files(tmp / "imgs", big, per_dir=per_dir)
        dirs = [str(d) for d in sorted((tmp / "imgs").iterdir())]   # per_dir files per folder
        for name, paths, n in (("small", dirs[: small // per_dir], small), ("big", dirs, big)):
            res = subprocess.run([sys.executable, "-c", CHILD, *paths, str(tmp / f"{name}.csv")],
                                 capture_output=True, text=True, check=True, cwd=root,
                                 env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
            r = json.loads(res.stdout.strip().splitlines()[-1])
            assert r["files"] == n and r["errors"] == 0, r
            out[name] = r
    return {"files_small": small, "files_big": big, "peak_rss_mb_small": out["small"]["peak_rss_mb"],
            "peak_rss_mb_big": out["big"]["peak_rss_mb"],
            "ratio": out["big"]["peak_rss_mb"] / out["small"]["peak_rss_mb"]}


if __name__ == "__main__":
    print(run())
