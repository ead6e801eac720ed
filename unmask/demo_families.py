"""The demo's generator-families stage (``unmask demo --families``): train every registered generator
family, harden one detector against all of them in balance, and measure leave-one-family-out.

The demo's own stages train ``dcgan`` (``OUT/gan``) and ``upconv`` (``OUT/gan_upconv``); this stage
reuses those two runs and trains any other registered family into ``OUT/families/NAME``. Then:

* ``OUT/detector_families``: a detector hardened against every family at once
  (:func:`unmask.pipelines.harden_run` over all the runs, each family the same share of fakes);
* ``OUT/lofo``: leave-one-family-out (:func:`unmask.lofo.run_lofo`), the generalisation number the
  summary prints: per held-out family, the AUC and the share caught at the shipped threshold.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .demo import DemoConfig

__all__ = ["registered_families", "FamiliesResult", "families_stage", "lofo_lines"]


def registered_families() -> tuple[str, ...]:
    """Every generator family :mod:`gan.families` knows (one run is trained per family)."""
    from gan.families import family_names

    return tuple(family_names())


@dataclass(frozen=True)
class FamiliesResult:
    runs: dict                   # family -> run directory
    detector_dir: Path
    test_auc: float              # the all-families detector on its own test split (every family seen)
    lofo: dict                   # held-out family -> {"auc", "caught", "fpr", "auc_jpeg75", "baseline_auc"}
    lofo_dir: Path


def _family_runs(out: Path, config: DemoConfig, gan_dir: Path, unseen_dir: Path, data: str,
                 log: Callable[[str], None]) -> dict[str, Path]:
    """family -> run: the demo's dcgan and upconv runs, and a new run for every other family."""
    from gan.families import family_config
    from gan.rundir import RunDir
    from gan.trainer import train

    runs = {"dcgan": gan_dir, "upconv": unseen_dir}
    for k, fam in enumerate(config.families):
        if fam in runs:
            continue
        d = out / "families" / fam
        res = train(family_config(fam, data=data, steps=config.family_steps, seed=config.seed + 2 + k), d,
                    resume=RunDir(d).is_run())
        log(f"wrote {d} (a {fam} run; {len(res.warnings)} health warnings)")
        runs[fam] = d
    return {f: runs[f] for f in config.families if f in runs}


def families_stage(out: Path, config: DemoConfig, gan_dir: Path, unseen_dir: Path, data: str,
                   log: Callable[[str], None]) -> FamiliesResult:
    """Train the missing families, harden against all of them, run leave-one-family-out."""
    from detector.train.config import HardenConfig

    from .lofo import LofoConfig, run_lofo
    from .pipelines import harden_run

    runs = _family_runs(out, config, gan_dir, unseen_dir, data, log)
    det_dir = out / "detector_families"
    h = harden_run(list(runs.values()), det_dir, HardenConfig(steps=config.families_harden_steps, seed=config.seed),
                   n_fakes=config.lofo_fakes, resume=(det_dir / "checkpoints").exists(), log=lambda m: None)
    log(f"wrote {det_dir} (hardened against {', '.join(runs)} in equal shares; test AUC {h.test.auc:.4f}, "
        f"FPR {100 * h.test.fpr:.2f}%)")
    lofo_dir = out / "lofo"
    lcfg = LofoConfig(out=str(lofo_dir), runs=tuple(str(r) for r in runs.values()), steps=config.lofo_steps,
                      n_fakes=config.lofo_fakes, n_test=min(config.eval_images, config.lofo_fakes),
                      bootstrap=config.bootstrap, seed=config.seed, resume=True)
    res, _ = run_lofo(lcfg, log=lambda m: None)
    lofo = {r.family: {"auc": r.detector.auc, "caught": r.detector.caught, "fpr": r.detector.fpr,
                       "auc_jpeg75": r.detector_jpeg.auc, "baseline_auc": r.baseline.auc} for r in res.rows}
    log(f"wrote {lofo_dir / 'index.html'} (leave-one-family-out over {len(runs)} families: table lofo.md, "
        f"heat map lofo.png)")
    return FamiliesResult(runs, det_dir, h.test.auc, lofo, lofo_dir)


def lofo_lines(res: FamiliesResult) -> list[str]:
    """The summary's leave-one-family-out lines: one per held-out family."""
    return [f"never trained on {fam}: AUC {v['auc']:.4f}, {100 * v['caught']:.1f}% caught at the shipped "
            f"threshold, FPR on real {100 * v['fpr']:.2f}%, JPEG-75 AUC {v['auc_jpeg75']:.4f} "
            f"(DCT baseline AUC {v['baseline_auc']:.4f})" for fam, v in res.lofo.items()]
