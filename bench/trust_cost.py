"""What the domain guard (issue 15) costs a folder scan: files/s with it vs without it.

The same detector (default-size ``dcgan_d``, resize policy) with its trust section fitted on
embedded Fashion-MNIST reals, scanning the same 28-px grey PNGs (10,000; 300 with ``tiny``) with
the same loader, once with the domain model and once with it removed. 28-px files are the worst
case: the forward pass is most of a file's cost there, and the guard rides on the forward pass
(pooled features from the same pass, one (D, D) product per input, a strided colour sample at
decode). Headline ``cost`` = 1 - guarded files/s / unguarded files/s. Target: <= 0.25.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import best_of, pin_threads, stand_in
from bench.scan_speed import make_files

# Figures that are differences of two timings: at noise level (a tiny run, a loaded machine) the
# guarded scan can come out faster than the unguarded one, so these may be below zero.
SIGNED = ("cost",)


def _trusted():
    """The stand-in detector with a trust section fitted on 3,000 embedded Fashion-MNIST reals."""
    import torch

    from detector.data import load_fashion_mnist
    from detector.train.splits import Splits
    from detector.train.trust import fit_trust

    det = stand_in("resize", width=64, norm="batch")
    x = torch.from_numpy(load_fashion_mnist("train", variant="embedded").images[:3000].copy()).unsqueeze(1) / 255.0
    det.trust = fit_trust(det.net, det.spec, Splits(x[:2000], x[2000:], x[:0]), 0.01)
    return det


def run(tiny: bool = False, workers: int = 2, batch_size: int = 64) -> dict:
    from detector.scan import ScanConfig, scan

    pin_threads(1)
    n, repeats = (300, 1) if tiny else (10_000, 3)
    det = _trusted()
    trust = det.trust
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "imgs"
        make_files(root, n)

        def do_scan(guard: bool):
            det.trust = trust if guard else None
            r = scan([root], det, Path(tmp) / "out.csv", ScanConfig(workers=workers, batch_size=batch_size,
                                                                   overwrite=True, progress=False), log=lambda m: None)
            assert r.n_files == n and r.n_errors == 0

        t_on = t_off = float("inf")
        for _ in range(repeats):  # alternate, best of each: load bursts from other jobs hit both alike
            t_off = min(t_off, best_of(lambda: do_scan(False), 1))
            t_on = min(t_on, best_of(lambda: do_scan(True), 1))
    det.trust = trust
    return {"cost": 1.0 - t_off / t_on, "files": n, "files_per_s_guarded": n / t_on,
            "files_per_s_unguarded": n / t_off, "workers": workers, "batch_size": batch_size,
            "features": int(trust.domain.mean.numel())}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(tiny="--tiny" in sys.argv), indent=2))
