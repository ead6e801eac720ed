"""One evaluation run: load a detector artifact and test folders, score, measure, compare with the
spectral baselines, stress with perturbations, and write ``metrics.json``, plots and the report.

Protocol: the threshold is the artifact's own (chosen on validation data at hardening time, see
``threshold_rule`` in its ``detector.json``); nothing here is tuned on the test images. Every fake
folder is its own generator; ``overall`` pools all fakes against the same real images.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import detector
from detector.atomic import write_json

from .baselines import BASELINES, create_baseline, cross_fit_scores
from .metrics import Metrics, MetricError, calibration, compute_metrics, false_positive_audit, pair
from .results import BaselineResult, BaselineTrainData, EvalReport
from .robustness import DEFAULT_PERTURBATIONS, evaluate_robustness
from .scoring import DomainSummary, LoadedSets, domain_scorer, load_eval_sets, scorer, split_domain

__all__ = ["EvalConfig", "BaselineResult", "BaselineTrainData", "EvalReport", "evaluate", "run_eval",
           "pair", "DETECTOR_ROW", "load_baseline_train", "baseline_train_from_artifact"]

DETECTOR_ROW = "detector"


@dataclass(frozen=True)
class EvalConfig:
    """What ``unmask eval`` does; written into ``metrics.json``."""

    detector: str
    out: str
    real: tuple = ()
    fake: tuple = ()
    labelled: tuple = ()                   # folders with real/ + fake/ (or 0_real/ + 1_fake/)
    baselines: bool = False
    baseline_names: tuple = ("frank_dct", "durall_spectrum")
    baseline_train: str | None = None      # folder with real/ + fake/; None: the artifact's replay sample,
                                           # else 2-fold cross-fitting on the test pool
    robustness: bool = False
    perturbations: tuple = DEFAULT_PERTURBATIONS
    bootstrap: int = 1000
    seed: int = 0
    batch_size: int = 256
    gallery: int = 12
    device: str = "cpu"
    amp: bool = False  # bfloat16 autocast on CUDA when scoring (ignored, with a note, on CPU)
    progress: bool = True
    out_of_domain: str = "flag"            # flag / skip: out-of-domain images left out of the metrics; score: kept

    def validate(self) -> None:
        if not (self.real or self.fake or self.labelled):
            raise ValueError("nothing to evaluate: give --real and/or --fake folders (or a folder with real/ and fake/)")
        if self.bootstrap < 0:
            raise ValueError(f"bootstrap must be >= 0, not {self.bootstrap}")
        for name in self.baseline_names:
            BASELINES.get(name)
        if self.out_of_domain not in ("flag", "score", "skip"):
            raise ValueError(f"out_of_domain must be flag, score or skip, not {self.out_of_domain!r}")


def _metrics_for(real: np.ndarray, fakes: dict[str, np.ndarray], threshold: float, bootstrap: int, seed: int
                 ) -> tuple[Metrics, dict[str, Metrics]]:
    overall = compute_metrics(*pair(real, np.concatenate(list(fakes.values()))), threshold, bootstrap, seed)
    per = {k: compute_metrics(*pair(real, v), threshold, bootstrap, seed + 1 + i) for i, (k, v) in enumerate(fakes.items())}
    return overall, per


def _baselines(config: EvalConfig, size: int, sets: LoadedSets, train: BaselineTrainData | None) -> list[BaselineResult]:
    real, fakes = sets.real, sets.fakes
    out = []
    for name in config.baseline_names:
        if train is not None:
            b = create_baseline(name, size, config.seed).fit(train.real, train.fake)
            r = b.score(real.images)
            f = {s.name: b.score(s.images) for s in fakes}
            training = train.description
            paper = b.paper
        else:
            pool = real.images + [im for s in fakes for im in s.images]
            labels = [0] * len(real) + [1] * (len(pool) - len(real))
            scores = cross_fit_scores(name, pool, labels, size, 2, config.seed)
            r, pos, f = scores[:len(real)], len(real), {}
            for s in fakes:
                f[s.name] = scores[pos:pos + len(s)]
                pos += len(s)
            training = ("2-fold cross-fitting on the test pool (each image scored by a model fitted on the other "
                        "half, all generators seen): an in-distribution upper bound for this baseline")
            paper = BASELINES.get(name).paper
        overall, per = _metrics_for(r, f, 0.5, config.bootstrap, config.seed)
        out.append(BaselineResult(name, paper, training, r, f, overall, per))
    return out


def load_baseline_train(folder: str, channels: int, progress: bool = True) -> BaselineTrainData:
    """Training data for the baselines from a folder holding ``real/`` and ``fake/``."""
    sets = load_eval_sets(labelled=[folder], channels=channels, progress=progress)
    fake = [im for s in sets.fakes for im in s.images]
    if len(sets.real) < 2 or len(fake) < 2:
        raise ValueError(f"{folder}: baseline training needs at least 2 real and 2 fake images "
                         f"(found {len(sets.real)} real, {len(fake)} fake)")
    return BaselineTrainData(sets.real.images, fake,
                             f"fitted on {folder}: {len(sets.real)} real, {len(fake)} fake images")


def baseline_train_from_artifact(detector_dir: str | Path) -> BaselineTrainData | None:
    """The detector's own training sample, when hardening left ``replay.safetensors`` beside the
    artifact (see :mod:`detector.train.harden`); None when there is none."""
    p = Path(detector_dir) / "replay.safetensors"
    if not p.is_file():
        return None
    from detector.train.replay import load_replay

    real, fakes = load_replay(p)
    fake = [im for sp in fakes.values() for im in sp.train]
    if len(real.train) < 2 or len(fake) < 2:
        return None
    return BaselineTrainData(list(real.train), fake,
                             f"the detector's own hardening training sample ({p.name}: {len(real.train)} real, "
                             f"{len(fake)} fake from {', '.join(fakes)})")


def _load(config: EvalConfig, det, keep: bool) -> tuple[LoadedSets, DomainSummary]:
    """Read and score the test folders; under ``flag`` / ``skip`` leave out-of-domain images out of
    the sets the metrics see (counted apart in the summary), under ``score`` keep them all."""
    sets = load_eval_sets(config.real, config.fake, config.labelled, det.spec.channels, config.progress,
                          score=domain_scorer(det, config.batch_size), keep=keep)
    if not len(sets.real) and not any(len(s) for s in sets.fakes):
        raise MetricError("no readable images in the given folders"
                          + (f" ({len(sets.unreadable)} unreadable)" if sets.unreadable else ""))
    empty = [s.name for s in sets.fakes if not len(s)]
    if empty:
        raise MetricError(f"fake set(s) {', '.join(empty)}: no readable images"
                          + (f" ({len(sets.unreadable)} unreadable files in all)" if sets.unreadable else ""))
    had_real = len(sets.real)
    sets, domain = split_domain(sets, config.out_of_domain)
    gone = [s.name for s in ([sets.real] if had_real else []) + sets.fakes if not len(s)]
    if gone:
        raise MetricError(f"set(s) {', '.join(gone)}: every image lies outside the detector's domain (unlike the "
                          "real images it was trained on), so no metric can be measured on them; "
                          "--out-of-domain score measures their raw scores anyway")
    return sets, domain


def evaluate(config: EvalConfig, baseline_train: BaselineTrainData | None = None) -> EvalReport:
    """Run the evaluation described by ``config`` (no files written; see :func:`run_eval`)."""
    config.validate()
    t0 = time.time()
    det = detector.load(config.detector, config.device)
    from detector.device import amp_enabled

    det.amp = amp_enabled(det.device, config.amp)
    ch = det.spec.channels
    # images stay in memory only where baselines or robustness need them; scores are taken while reading
    keep = config.baselines or config.robustness
    score = scorer(det, config.batch_size)
    sets, domain = _load(config, det, keep)
    fakes = sets.fakes
    thr = det.spec.threshold
    overall, per, audit, cal = None, {}, None, None
    baselines: list[BaselineResult] = []
    robust = None
    if len(sets.real) and not fakes:
        audit = false_positive_audit(sets.real.scores, thr)
        if config.baselines or config.robustness:
            raise MetricError("--baselines and --robustness need fake images as well as real ones")
    elif not len(sets.real):
        raise MetricError(f"only fake images ({sum(len(s) for s in fakes)}): AUC, AP and EER need real images "
                          "too; give --real (e.g. `unmask data export --out real/`)")
    else:
        fs = {s.name: s.scores for s in fakes}
        overall, per = _metrics_for(sets.real.scores, fs, thr, config.bootstrap, config.seed)
        audit = false_positive_audit(sets.real.scores, thr)
        cal = calibration(*pair(sets.real.scores, np.concatenate(list(fs.values()))))
        if config.baselines:
            train = baseline_train
            if train is None and config.baseline_train:
                train = load_baseline_train(config.baseline_train, ch, config.progress)
            if train is None:
                train = baseline_train_from_artifact(config.detector)
            baselines = _baselines(config, det.spec.input_size, sets, train)
        if config.robustness:
            robust = evaluate_robustness(
                score, sets.real.images,
                {s.name: s.images for s in fakes}, thr, config.perturbations, config.seed,
                clean_scores=(sets.real.scores, fs), progress=config.progress)
    return EvalReport(config, det.spec.to_json(), sets.real, fakes, overall, per, audit, cal, baselines, robust,
                      list(sets.unreadable), time.time() - t0,
                      time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), domain)


def run_eval(config: EvalConfig, baseline_train: BaselineTrainData | None = None) -> EvalReport:
    """:func:`evaluate`, then write ``metrics.json``, ``plots/*.png``, ``index.html`` and ``summary.md``."""
    from .report import write_report

    rep = evaluate(config, baseline_train)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", rep.to_json())
    write_report(rep, out)
    return rep

