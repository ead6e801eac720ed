"""The demo's generator families: what ``unmask demo`` trains and hardens side by side, as jobs.

The demo hardens one detector against several generator families and measures
leave-one-family-out (the honest generalisation number), so it trains a run per family and
hardens three or more detectors. Each of those keeps one core busy, so they run as
:class:`unmask.jobs.Jobs` in worker processes: the module-level functions here are the jobs
(picklable arguments, a short picklable result).

* :func:`train_job`: one family's run (``unmask gan train --family``), resumed if present;
* :func:`harden_job`: the demo's detector, hardened against the *seen* families in balance;
* :func:`fold_job`: one leave-one-family-out fold (:func:`unmask.lofo.harden_fold`).

The held-out family of the demo's own detector (``upconv``) is also a fold: that fold's detector
*is* the demo's detector (the same recipe, the same settings), copied instead of trained twice.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lofo import LofoConfig

__all__ = ["registered_families", "train_job", "harden_job", "fold_job", "reuse_as_fold", "lofo_lines"]


def registered_families() -> tuple[str, ...]:
    """Every generator family :mod:`gan.families` knows."""
    from gan.families import family_names

    return tuple(family_names())


def train_job(family: str, out: str, steps: int, seed: int, data: str) -> str:
    """Train (or resume) ``family``'s run into ``out``; one line saying what it wrote."""
    from gan.families import FAMILIES, family_config
    from gan.rundir import RunDir
    from gan.trainer import train

    res = train(family_config(family, data=data, steps=steps, seed=seed), out, resume=RunDir(out).is_run())
    fd = f"{res.fd_history[-1][1]:.1f}" if res.fd_history else "n/a"
    health = "healthy" if not res.warnings else \
        "health warnings: " + "; ".join(getattr(w, "symptom", str(w)) for w in res.warnings)
    return (f"wrote {out} ({family}: {FAMILIES[family].about}; {steps} steps; zoo: "
            f"{', '.join(s.name for s in res.snapshots)}; {res.metric} {fd}; {health})")


def harden_job(runs: list[str], out: str, steps: int, n_fakes: int, traces: str, seed: int) -> dict:
    """Harden a detector against every family of ``runs`` in balance (resumed if interrupted)."""
    from detector.train.config import HardenConfig

    from .pipelines import harden_run

    h = harden_run(runs, out, HardenConfig(steps=steps, seed=seed), n_fakes=n_fakes, traces=traces,
                   resume=(Path(out) / "checkpoints").exists())
    return {"auc": h.test.auc, "fpr": h.test.fpr, "threshold": h.threshold}


def fold_job(config: LofoConfig, family: str) -> str:
    """The leave-one-family-out detector without ``family`` (kept if already written)."""
    from .lofo import harden_fold

    return str(harden_fold(config, family))


def reuse_as_fold(det_dir: Path, config: LofoConfig, family: str) -> None:
    """Use the demo's detector (hardened on every family but ``family``, with ``config``'s settings)
    as that leave-one-family-out fold's detector: its files copied atomically, ``detector.json`` last
    (its presence is what marks a fold detector finished)."""
    from detector.atomic import write_bytes

    from .lofo import fold_dir

    dst = fold_dir(config, family)
    if (dst / "detector.json").is_file():
        return
    files = sorted((p for p in Path(det_dir).rglob("*") if p.is_file() and "checkpoints" not in p.parts),
                   key=lambda p: p.name == "detector.json")
    for p in files:
        write_bytes(dst / p.relative_to(det_dir), p.read_bytes())


def lofo_lines(lofo: dict) -> list[str]:
    """The summary's leave-one-family-out lines: one per held-out family."""
    return [f"never trained on {fam}: AUC {v['auc']:.4f}, {100 * v['caught']:.1f}% caught at the shipped "
            f"threshold, FPR on real {100 * v['fpr']:.2f}%, JPEG-75 AUC {v['auc_jpeg75']:.4f} "
            f"(DCT baseline AUC {v['baseline_auc']:.4f})" for fam, v in lofo.items()]
