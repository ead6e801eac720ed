"""``unmask eval-lofo``: leave-one-family-out over the generator families of GAN runs.

The fakes of every family are sampled once (:func:`unmask.pipelines.harden_inputs`: each family
``n_fakes`` images, spread over its snapshots). Then, for each family F, a detector is hardened
with the same settings on all the other families
(:func:`unmask.pipelines.without_families`: re-balanced, started from a discriminator that never
saw F) and measured by :func:`eval.lofo.evaluate_fold` on held-out real images (the real test
split) and on all of F's fakes, none of which any fold's training touched, next to the DCT
baseline fitted on the fold's training data. Fold detectors stay in ``OUT/folds/F/detector``
(``resume`` keeps finished ones); the table, heat map and report pages are :func:`eval.lofo.write_lofo`'s.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from detector.train.config import HardenConfig

if TYPE_CHECKING:
    from eval.lofo import LofoResult

__all__ = ["LofoConfig", "LofoError", "run_lofo", "harden_fold", "fold_dir"]

_H = HardenConfig()


class LofoError(ValueError):
    """Leave-one-family-out cannot run on these inputs (fewer than two families, ...)."""


@dataclass(frozen=True)
class LofoConfig:
    """What ``unmask eval-lofo`` does; hardening settings not named here are HardenConfig's defaults."""

    out: str
    runs: tuple = ()
    steps: int = _H.steps           # hardening steps per fold
    target_fpr: float = _H.target_fpr
    n_fakes: int = 6000             # per family, spread over its snapshots
    n_test: int = 2000              # held-out family fakes tested per fold (at most n_fakes)
    val_fraction: float = 0.15
    baseline: str = "frank_dct"
    baseline_images: int = 4000     # per class, for fitting the baseline on the fold's training data
    bootstrap: int = 1000
    seed: int = 0
    device: str = "cpu"
    real_source: str | None = None
    resume: bool = False
    pages: bool = True              # one evaluation page per fold
    traces: str = "none"            # what every fold's detector sees besides pixels (detector.nets.TRACES)
    width: int | None = None        # with traces: every fold detector's width (None: the run D's)

    def harden_config(self, base: HardenConfig | None = None) -> HardenConfig:
        return replace(base or _H, steps=self.steps, target_fpr=self.target_fpr, seed=self.seed,
                       device=self.device)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "family"


def _baseline_train(inp, n: int, seed: int):
    """The fold's training data for the baseline: up to ``n`` real and ``n`` fake training images,
    the fakes drawn from each set in its hardening weight."""
    from eval.results import BaselineTrainData

    g = torch.Generator().manual_seed(seed)
    real = inp.real.train[torch.randperm(len(inp.real.train), generator=g)[:n]]
    fake = []
    for name, w in inp.weights.items():
        x = inp.fakes[name].train
        fake.append(x[torch.randperm(len(x), generator=g)[:max(1, round(w * n))]])
    fake = torch.cat(fake)
    return BaselineTrainData(list(real), list(fake), f"the fold's hardening training data ({len(real)} real, "
                                                     f"{len(fake)} fake, families in the detector's proportions)")


def _held_out(inp, family: str, n: int, seed: int) -> torch.Tensor:
    """Up to ``n`` of ``family``'s fakes (all its splits: no fold trains on them), spread over its sets."""
    from .runs import spread

    names = [k for k, f in inp.family_of.items() if f == family]
    g = torch.Generator().manual_seed(seed)
    parts = []
    for name, k in zip(names, spread(n, len(names))):
        s = inp.fakes[name]
        x = torch.cat([s.train, s.val, s.test])
        parts.append(x[torch.randperm(len(x), generator=g)[:k]])
    return torch.cat(parts)


def fold_dir(config: LofoConfig, family: str) -> Path:
    """Where the detector of the fold without ``family`` lives."""
    return Path(config.out) / "folds" / _slug(family) / "detector"


def _inputs(config: LofoConfig, log: Callable[[str], None]):
    from .pipelines import harden_inputs, with_traces

    inp = harden_inputs(config.runs, n_fakes=config.n_fakes, val_fraction=config.val_fraction, seed=config.seed,
                        real_source=config.real_source, device=config.device, log=log)
    return with_traces(inp, config.traces, config.seed, config.width)


def _harden_fold(inp, family: str, config: LofoConfig, harden_cfg: HardenConfig, log, progress: bool):
    """Harden (or, resuming, keep) the detector of the fold without ``family``; (its directory, the
    fold's inputs)."""
    from detector.train.harden import harden

    from .pipelines import without_families

    fold = without_families(inp, (family,), config.device)
    det_dir = fold_dir(config, family)
    log(f"fold {family}: hardening on {', '.join(sorted(set(fold.family_of.values())))} "
        f"(start: {fold.provenance['gan_run']['dir']})")
    if config.resume and (det_dir / "detector.json").is_file():
        log(f"fold {family}: detector already in {det_dir}; not hardening again")
    else:
        harden(fold.net, fold.architecture, fold.arch_args, fold.real, fold.fakes, det_dir, harden_cfg,
               flip=fold.flip, provenance=fold.provenance, originals=fold.originals, resume=config.resume,
               log=lambda m: None, progress=progress, weights=fold.weights)
    return det_dir, fold


def harden_fold(config: LofoConfig, family: str, harden_base: HardenConfig | None = None,
                log: Callable[[str], None] = print, progress: bool = True) -> Path:
    """One fold's detector on its own (what :func:`run_lofo` does for every family; ``unmask demo``
    runs folds side by side with it): the same inputs, settings and directory."""
    return _harden_fold(_inputs(config, log), family, config, config.harden_config(harden_base), log, progress)[0]


def _fold(inp, family: str, config: LofoConfig, harden_cfg: HardenConfig, log, progress: bool):
    """Harden (or, resuming, reuse) the detector without ``family`` and measure it."""
    from detector.artifact import load
    from eval.lofo import evaluate_fold

    det_dir, fold = _harden_fold(inp, family, config, harden_cfg, log, progress)
    det = load(det_dir, config.device)
    fake = _held_out(inp, family, config.n_test, config.seed + 17)
    row = evaluate_fold(det, family, sorted(set(fold.family_of.values())), inp.real.test, fake,
                        _baseline_train(fold, config.baseline_images, config.seed + 23),
                        baseline=config.baseline, bootstrap=config.bootstrap, seed=config.seed,
                        det_dir=str(det_dir), page=(det_dir.parent / "report") if config.pages else None)
    d, j = row.detector, row.detector_jpeg
    log(f"fold {family}: AUC {d.auc:.4f}, caught {100 * d.caught:.1f}% at threshold {d.threshold:.3f}, "
        f"FPR {100 * d.fpr:.2f}%; JPEG-75 AUC {j.auc:.4f}; {config.baseline} AUC {row.baseline.auc:.4f}")
    return row


def run_lofo(config: LofoConfig, harden_base: HardenConfig | None = None, log: Callable[[str], None] = print,
             progress: bool = True) -> tuple[LofoResult, str]:
    """Every fold, then ``lofo.json``/``lofo.md``/``lofo.png``/``index.html`` in ``config.out``; returns
    the result and its markdown table."""
    from eval.baselines import BASELINES
    from eval.lofo import LofoResult, write_lofo

    from .runs import by_family, resolve_runs, zoo_members

    BASELINES.get(config.baseline)
    if config.n_test < 2 or config.n_test > config.n_fakes:
        raise LofoError(f"n_test must be in [2, n_fakes={config.n_fakes}], not {config.n_test}")
    families = list(by_family(zoo_members(resolve_runs(config.runs))))
    if len(families) < 2:
        raise LofoError(f"leave-one-family-out needs at least two generator families; the runs hold "
                        f"{', '.join(families)}: train another family (`unmask gan train --family ...`)")
    hcfg = config.harden_config(harden_base)
    inp = _inputs(config, log)
    out = Path(config.out)
    log(f"leave-one-family-out over {len(families)} families: {', '.join(families)}")
    rows = [_fold(inp, f, config, hcfg, log, progress) for f in families]
    settings = {**{k: v for k, v in asdict(config).items() if k not in ("out", "resume", "pages")},
                "runs": [str(r) for r in inp.runs], "harden_config": hcfg.to_json(),
                "n_real_test": len(inp.real.test)}
    res = LofoResult(rows, config.baseline, settings)
    return res, write_lofo(res, out)
