"""The end-to-end story on the embedded data: ``unmask demo`` (``make demo``).

1. train generator families: ``dcgan`` (a GAN: its discriminator's network becomes the detector),
   ``vae`` (not a GAN: smooth images) and ``upconv`` (a resize-then-convolve GAN kept away from the
   detector, for the "new generator" half of the story);
2. harden a detector against the dcgan and vae fakes in balance, looking at up-sampling traces
   (``--traces npr+dct``), and export it to ONNX;
3. evaluate it on held-out real images, fakes of both seen families and of the unseen one, with the
   spectral baselines, into an HTML report;
4. scan a folder mixing held-out real images and fakes into results.csv;
5. build short videos with fake content spliced into known frames, run the video analysis;
6. retrain the detector against the unseen family and show the before/after table;
7. leave one family out: for every family, a detector hardened on the others, tested on it
   (the honest generalisation number; the upconv fold is the demo's own detector);
8. print where everything is and a short summary.

The trainings and hardenings run as jobs in ``workers`` processes (:mod:`unmask.jobs`,
:mod:`unmask.demo_families`), so both cores of a small machine work: the two folds train while the
main process evaluates, scans and retrains. ``--families`` (``DemoConfig.with_families``) adds
every other registered family to the seen ones (longer: a diffusion model trains slowly on a CPU).

Each stage writes into its own folder under ``--out`` and prints one line saying what it wrote.
"""
from __future__ import annotations

import csv
import json
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

__all__ = ["DemoConfig", "DemoSummary", "run_demo"]

UNSEEN = "upconv"  # the family the demo's detector never sees (then retrains on)
UNSEEN_SET = f"{UNSEEN}_unseen"  # its fake set's name in the evaluation reports


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of every stage. ``quick()`` gives the tiny variant (under 2 minutes)."""

    gan_steps: int = 2000             # the dcgan run
    unseen_gan_steps: int = 1000      # the upconv run
    family_steps: int = 250           # any other family's run (vae; diffusion, ... with --families)
    families: tuple = ("dcgan", "vae", UNSEEN)   # UNSEEN is held out of the detector; the rest harden it
    traces: str = "npr+dct"           # what the detector sees besides pixels (unmask harden --traces)
    harden_steps: int = 3000          # the detector and every leave-one-family-out fold
    harden_fakes: int = 4000          # fakes per family (spread over its 3 zoo snapshots)
    eval_images: int = 1000           # per set: held-out real, each family's fakes
    scan_images: int = 300            # per class in the mixed scan folder
    video_frames: int = 60
    retrain_steps: int = 400
    retrain_fakes: int = 2000
    bootstrap: int = 1000
    workers: int = 2                  # processes for the trainings and hardenings (0: all in this one)
    threads: int = 1
    seed: int = 0

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(gan_steps=150, unseen_gan_steps=100, family_steps=60, harden_steps=150, harden_fakes=300,
                   eval_images=150, scan_images=40, video_frames=24, retrain_steps=60, retrain_fakes=300,
                   bootstrap=100)

    def with_families(self) -> "DemoConfig":
        """This config with every registered generator family (all but UNSEEN harden the detector)."""
        from .demo_families import registered_families

        return replace(self, families=registered_families())

    @property
    def seen(self) -> tuple[str, ...]:
        return tuple(f for f in self.families if f != UNSEEN)

    def steps_of(self, family: str) -> int:
        return {"dcgan": self.gan_steps, UNSEEN: self.unseen_gan_steps}.get(family, self.family_steps)


@dataclass(frozen=True)
class DemoSummary:
    out: Path
    report: Path
    auc_seen: float                   # dcgan fakes (the family the detector's network comes from)
    auc_unseen: float                 # upconv fakes (never seen), before retraining
    fpr_real: float
    auc_unseen_after_retrain: float
    video_verdicts: dict
    scan_accuracy: float
    seconds: float
    auc_by_family: dict | None = None  # every evaluated fake set -> AUC (the seen families and "upconv_unseen")
    lofo: dict | None = None          # held-out family -> AUC, caught, FPR, ... (leave-one-family-out)


def _write_pngs(images: torch.Tensor | list[torch.Tensor], folder: Path, prefix: str) -> list[Path]:
    from detector.imageio import save_png

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        p = folder / f"{prefix}_{i:05d}.png"
        save_png(img, p)
        paths.append(p)
    return paths


def _run_dirs(out: Path, config: DemoConfig) -> dict[str, Path]:
    """family -> its run directory (``gan`` for dcgan, ``gan_upconv``, ``families/NAME`` for the rest)."""
    named = {"dcgan": out / "gan", UNSEEN: out / "gan_upconv"}
    return {f: named.get(f, out / "families" / f) for f in config.families}


def _lofo_config(out: Path, config: DemoConfig, runs: dict[str, Path]):
    from .lofo import LofoConfig

    return LofoConfig(out=str(out / "lofo"), runs=tuple(str(r) for r in runs.values()), steps=config.harden_steps,
                      n_fakes=config.harden_fakes, n_test=min(config.eval_images, config.harden_fakes),
                      bootstrap=config.bootstrap, seed=config.seed, resume=True, traces=config.traces)


def _add_jobs(jobs, out: Path, config: DemoConfig, data: str) -> tuple[dict[str, Path], object]:
    """Every family's run, the demo's detector and the leave-one-family-out folds, as jobs."""
    from .demo_families import fold_job, harden_job, train_job

    runs = _run_dirs(out, config)
    order = sorted(config.families, key=lambda f: f != "dcgan")  # the longest run (the detector's source) first
    for k, fam in enumerate(order):
        jobs.add(f"train {fam}", train_job, fam, str(runs[fam]), config.steps_of(fam), config.seed + k, data)
    jobs.add("harden", harden_job, [str(runs[f]) for f in config.seen], str(out / "detector"), config.harden_steps,
             config.harden_fakes, config.traces, config.seed, after=tuple(f"train {f}" for f in config.seen))
    lcfg = _lofo_config(out, config, runs)
    for fam in config.seen:
        jobs.add(f"fold {fam}", fold_job, lcfg, fam, after=tuple(f"train {f}" for f in config.families))
    return runs, lcfg


def _harden_stage(out: Path, jobs, config: DemoConfig, log: Callable[[str], None]):
    """2: the detector (its job), its ONNX export."""
    from detector.artifact import load as load_detector
    from detector.export import export

    h = jobs.result("harden")
    det_dir = out / "detector"
    det = load_detector(det_dir)
    onnx = export(det, out / "detector.onnx", "onnx")
    log(f"wrote {det_dir} (hardened against {', '.join(config.seen)} in equal shares, traces {config.traces}; "
        f"test AUC {h['auc']:.4f}, FPR {100 * h['fpr']:.2f}% at threshold {h['threshold']:.3f}) and {onnx.path} "
        f"(max |ONNX - native| = {onnx.max_abs_diff:.1e})")
    return det_dir, det


def _eval_stage(out: Path, det_dir: Path, runs: dict[str, Path], config: DemoConfig, log: Callable[[str], None]):
    """3: held-out real images and fresh fakes of every family, evaluated with the baselines."""
    from detector.data import load_fashion_mnist
    from eval.evaluate import EvalConfig, run_eval
    from gan.rundir import RunDir
    from gan.zoo import sample

    n, seed = config.eval_images, config.seed
    test = load_fashion_mnist("test", variant="embedded")
    rng = np.random.default_rng(seed + 7)
    real_imgs = torch.from_numpy(test.images[rng.permutation(len(test))[:n]].copy()).unsqueeze(1).float() / 255.0
    ev = out / "eval_data"
    _write_pngs(real_imgs, ev / "real", "real")
    fakes = {}
    for k, fam in enumerate(config.families):  # fresh noise seeds, not the ones hardening sampled with
        name = UNSEEN_SET if fam == UNSEEN else fam
        fakes[name] = sample(RunDir(runs[fam]).final_generator(), n, seed=seed + 90_001 + k)
        _write_pngs(fakes[name], ev / name, fam)
    report_dir = out / "report"
    rep = run_eval(EvalConfig(detector=str(det_dir), out=str(report_dir), real=(str(ev / "real"),),
                              fake=tuple(str(ev / f) for f in fakes), baselines=True, bootstrap=config.bootstrap,
                              seed=seed))
    aucs = {f: rep.per_fake_set[f].auc for f in fakes}
    log(f"wrote {report_dir / 'index.html'} (AUC " + ", ".join(f"{f} {a:.4f}" for f, a in aucs.items())
        + f"; FPR on real {100 * rep.audit.fpr:.2f}%)")
    return rep, real_imgs, fakes


def _scan_stage(out: Path, det, real_imgs, fakes: dict, config: DemoConfig, log: Callable[[str], None]) -> float:
    """4: scan a shuffled folder of held-out real images and fakes of every family; accuracy."""
    from detector.scan import ScanConfig, scan

    from .runs import spread

    mixed = out / "scan_input"
    k = config.scan_images
    items = [(real_imgs[i], "real") for i in range(k)]
    for sets, share in zip(fakes.values(), spread(k, len(fakes))):
        items += [(sets[i], "fake") for i in range(share)]
    random.Random(config.seed).shuffle(items)
    paths = _write_pngs([img for img, _ in items], mixed, "img")
    truth = {p.name: lab for p, (_, lab) in zip(paths, items)}
    results = out / "results.csv"
    sres = scan([mixed], det, results, ScanConfig(overwrite=True, workers=0, top=5), log=log)
    with open(results, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    acc = sum(truth[Path(r["path"]).name] == r["label"] for r in rows) / max(1, len(rows))
    log(f"wrote {results} ({sres.n_files} files: {sres.n_fake} flagged fake, {sres.n_ood} out of domain, "
        f"{sres.n_errors} errors; accuracy against the hidden truth {100 * acc:.1f}%)")
    return acc


def _video_stage(out: Path, det, real_imgs, fake_seen, config: DemoConfig, log: Callable[[str], None]) -> dict:
    """5: a clean video and one with fakes spliced into known frames, analysed; the verdicts."""
    from detector.video import VideoConfig, analyze_videos
    from unmask.synth import splice_video

    vdir = out / "video"
    vdir.mkdir(parents=True, exist_ok=True)
    t = config.video_frames
    clean = vdir / "clean.avi"
    manipulated = vdir / "manipulated.avi"
    splice_video(clean, real_imgs, None, frames=t, seed=config.seed + 11)
    truth = splice_video(manipulated, real_imgs, fake_seen, frames=t, seed=config.seed + 11)
    lo, hi = truth["fake_frames"]
    # The default verdict: frame and video thresholds are set for their own aggregates at the
    # detector's false-positive rate (detector.tails), so no hand-picked aggregation is needed.
    vres = analyze_videos([clean, manipulated], det, VideoConfig(every=1, progress=True), vdir / "analysis")
    verdicts = {Path(v.video).name: v.verdict for v in vres}
    flagged = {Path(v.video).name: v.flagged_fraction for v in vres}
    log(f"wrote {vdir / 'analysis'} (frames.csv, videos.csv, timelines/; fake content in frames {lo}-{hi - 1} "
        f"of {t}; frames flagged: " + ", ".join(f"{k} {100 * f:.0f}%" for k, f in flagged.items())
        + "; verdicts: " + ", ".join(f"{k}={v}" for k, v in verdicts.items()) + ")")
    return verdicts


def _retrain_stage(out: Path, det_dir: Path, unseen_dir: Path, rep, config: DemoConfig,
                   log: Callable[[str], None]) -> float:
    """6: retrain against the unseen family without forgetting the seen ones; the upconv AUC after."""
    from detector.artifact import load as load_detector
    from detector.train.config import RetrainConfig
    from detector.train.retrain import retrain
    from eval.evaluate import EvalConfig, run_eval
    from gan.rundir import RunDir
    from gan.zoo import sample

    seed, ev = config.seed, out / "eval_data"
    new = sample(RunDir(unseen_dir).final_generator(), config.retrain_fakes, seed=seed + 50_000)
    rdir = out / "detector_retrained"
    retrain(det_dir, {UNSEEN: new}, rdir, RetrainConfig(steps=config.retrain_steps, seed=seed),
            sources={UNSEEN: str(unseen_dir)}, log=log)
    after = load_detector(rdir)
    sets = list(rep.per_fake_set)
    rep2 = run_eval(EvalConfig(detector=str(rdir), out=str(out / "report_retrained"), real=(str(ev / "real"),),
                               fake=tuple(str(ev / f) for f in sets), bootstrap=0, seed=seed, progress=False))
    log(f"wrote {rdir} and {out / 'report_retrained'} (AUC before -> after: " + ", ".join(
        f"{f} {rep.per_fake_set[f].auc:.4f} -> {rep2.per_fake_set[f].auc:.4f}" for f in sets)
        + f"; threshold {after.spec.threshold:.3f})")
    return rep2.per_fake_set[UNSEEN_SET].auc


def _lofo_stage(out: Path, jobs, det_dir: Path, lcfg, log: Callable[[str], None]) -> dict:
    """7: every fold's detector (the upconv fold is the demo's detector), measured on its held-out family."""
    from .demo_families import reuse_as_fold
    from .lofo import run_lofo

    for name in [n for n in jobs.names() if n.startswith("fold ")]:
        jobs.result(name)
    reuse_as_fold(det_dir, lcfg, UNSEEN)
    res, _ = run_lofo(lcfg, log=lambda m: None, progress=False)
    log(f"wrote {Path(lcfg.out) / 'index.html'} (leave-one-family-out over {len(res.rows)} families: table "
        f"lofo.md, heat map lofo.png)")
    return {r.family: {"auc": r.detector.auc, "caught": r.detector.caught, "fpr": r.detector.fpr,
                       "auc_jpeg75": r.detector_jpeg.auc, "baseline_auc": r.baseline.auc} for r in res.rows}


def run_demo(out: str | os.PathLike, config: DemoConfig = DemoConfig(), log: Callable[[str], None] = print,
             quiet: bool = False) -> DemoSummary:
    """Run the eight stages into ``out`` (each in its own folder) and return the summary."""
    from detector.atomic import write_json
    from detector.train.config import HardenConfig

    from .demo_families import lofo_lines
    from .jobs import Jobs

    t0 = time.time()
    torch.set_num_threads(max(1, min(config.threads, os.cpu_count() or 1)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def stage(n: int, text: str) -> None:
        log(f"\n== [{n}/8] {text} ({time.time() - t0:.0f}s elapsed)")

    with Jobs(config.workers, log, quiet) as jobs:
        runs, lcfg = _add_jobs(jobs, out, config, "fashion-mnist:embedded")
        stage(1, f"train generator families on the embedded Fashion-MNIST: {', '.join(config.families)} "
                 f"({config.workers or 1} at a time)")
        for fam in config.seen:
            log(jobs.result(f"train {fam}"))
        stage(2, f"harden a detector against {', '.join(config.seen)} and export it to ONNX ({UNSEEN} stays unseen)")
        det_dir, det = _harden_stage(out, jobs, config, log)
        log(jobs.result(f"train {UNSEEN}"))
        stage(3, "evaluate on held-out real images, seen and unseen families, with spectral baselines")
        rep, real_imgs, fakes = _eval_stage(out, det_dir, runs, config, log)
        stage(4, "scan a folder that mixes held-out real images and fakes")
        acc = _scan_stage(out, det, real_imgs, fakes, config, log)
        stage(5, "build videos with fake content spliced into known frames and analyse them")
        verdicts = _video_stage(out, det, real_imgs, fakes["dcgan"], config, log)
        stage(6, f"retrain the detector against the {UNSEEN} family without forgetting the others")
        auc_after = _retrain_stage(out, det_dir, runs[UNSEEN], rep, config, log)
        stage(7, "leave one family out: harden on the others, test on the family never seen")
        lofo = _lofo_stage(out, jobs, det_dir, lcfg, log)

    aucs = {f: m.auc for f, m in rep.per_fake_set.items()}
    summary = DemoSummary(out, out / "report" / "index.html", aucs["dcgan"], aucs[UNSEEN_SET], rep.audit.fpr,
                          auc_after, verdicts, acc, time.time() - t0, aucs, lofo)
    write_json(out / "summary.json", {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(summary).items()})
    stage(8, "summary")
    log(f"report: {summary.report}")
    log("AUC on the families it was hardened on: " + ", ".join(f"{f} {aucs[f]:.4f}" for f in config.seen)
        + f"   on an unseen family ({UNSEEN}): {summary.auc_unseen:.4f} -> {auc_after:.4f} after retraining")
    log(f"false-positive rate on {len(real_imgs)} held-out real images: {100 * rep.audit.fpr:.2f}% "
        f"(threshold chosen for {100 * HardenConfig().target_fpr:.0f}% on validation)")
    log(f"leave-one-family-out ({Path(lcfg.out) / 'lofo.md'}):")
    for line in lofo_lines(lofo):
        log(f"  {line}")
    log(f"video verdicts: {json.dumps(verdicts)}; done in {summary.seconds:.0f}s")
    return summary
