"""The end-to-end story on the embedded data: ``unmask demo`` (``make demo``).

1. train a ``dcgan`` GAN (and an ``upconv`` one: a generator family the detector never sees);
2. harden the dcgan run's discriminator into a detector artifact, export it to ONNX;
3. evaluate it on held-out real images, fakes of its own generator and of the unseen family,
   with the spectral baselines, into an HTML report;
4. scan a folder mixing held-out real images and fakes into results.csv;
5. build short videos with fake content spliced into known frames, run the video analysis;
6. retrain the detector against the unseen family and show the before/after table;
7. print where everything is and a three-line summary.

With ``--families`` (``DemoConfig.with_families``) a stage before the summary trains every other
registered generator family, hardens one detector against all of them in balance and runs
leave-one-family-out (:mod:`unmask.demo_families`); the summary adds one line per held-out family.

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


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of every stage. ``quick()`` gives the tiny variant (under 2 minutes)."""

    gan_steps: int = 2000
    unseen_gan_steps: int = 1200
    harden_steps: int = 6000
    harden_fakes: int = 12000         # fakes sampled for hardening (spread over the run's 3 zoo snapshots)
    eval_images: int = 1000           # per set: held-out real, dcgan fakes, upconv fakes
    scan_images: int = 300            # per class in the mixed scan folder
    video_frames: int = 60
    retrain_steps: int = 400
    retrain_fakes: int = 2000
    bootstrap: int = 1000
    threads: int = 1
    seed: int = 0
    # the generator-families stage (off unless `families` is set; see unmask.demo_families)
    families: tuple = ()              # families to harden against together and leave out one at a time
    family_steps: int = 1200          # GAN steps for a family the demo has not trained already
    families_harden_steps: int = 3000  # the detector hardened against every family
    lofo_steps: int = 1500            # hardening steps per leave-one-family-out fold
    lofo_fakes: int = 4000            # fakes per family (spread over its snapshots)

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(gan_steps=150, unseen_gan_steps=100, harden_steps=150, harden_fakes=900, eval_images=150,
                   scan_images=40, video_frames=24, retrain_steps=60, retrain_fakes=300, bootstrap=100,
                   family_steps=100, families_harden_steps=150, lofo_steps=100, lofo_fakes=300)

    def with_families(self) -> "DemoConfig":
        """This config plus the families stage over every registered generator family."""
        from .demo_families import registered_families

        return replace(self, families=registered_families())


@dataclass(frozen=True)
class DemoSummary:
    out: Path
    report: Path
    auc_seen: float
    auc_unseen: float
    fpr_real: float
    auc_unseen_after_retrain: float
    video_verdicts: dict
    scan_accuracy: float
    seconds: float
    lofo: dict | None = None          # --families: held-out family -> AUC, caught, FPR, ... (leave-one-family-out)


def _write_pngs(images: torch.Tensor | list[torch.Tensor], folder: Path, prefix: str) -> list[Path]:
    from detector.imageio import save_png

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        p = folder / f"{prefix}_{i:05d}.png"
        save_png(img, p)
        paths.append(p)
    return paths


def _gan_stage(out: Path, config: DemoConfig, data: str, log: Callable[[str], None]) -> tuple[Path, Path]:
    """1: the dcgan run the detector comes from, and the upconv run it never sees."""
    from gan.config import GanConfig
    from gan.rundir import RunDir
    from gan.trainer import train

    seed = config.seed
    gan_dir, unseen_dir = out / "gan", out / "gan_upconv"
    res = train(GanConfig(data=data, generator="dcgan", steps=config.gan_steps, seed=seed), gan_dir,
                resume=RunDir(gan_dir).is_run())
    fd = f"{res.fd_history[-1][1]:.1f}" if res.fd_history else "n/a"
    health = "healthy: no overpowering, no collapse" if not res.warnings else \
        "warnings: " + "; ".join(getattr(w, "symptom", str(w)) for w in res.warnings)
    log(f"wrote {gan_dir} (zoo: {', '.join(s.name for s in res.snapshots)}; {res.metric} {fd}; {health})")
    res_u = train(GanConfig(data=data, generator="upconv", steps=config.unseen_gan_steps, seed=seed + 1),
                  unseen_dir, resume=RunDir(unseen_dir).is_run())
    log(f"wrote {unseen_dir} (an upconv generator: resize-then-convolve, never shown to the detector; "
        f"{len(res_u.warnings)} health warnings)")
    return gan_dir, unseen_dir


def _harden_stage(out: Path, gan_dir: Path, config: DemoConfig, log: Callable[[str], None]):
    """2: harden the dcgan discriminator into a detector artifact and export it to ONNX."""
    from detector.artifact import load as load_detector
    from detector.export import export
    from detector.train.config import HardenConfig
    from unmask.pipelines import harden_run

    det_dir = out / "detector"
    h = harden_run(gan_dir, det_dir, HardenConfig(steps=config.harden_steps, seed=config.seed),
                   n_fakes=config.harden_fakes, resume=(det_dir / "checkpoints").exists(), log=log)
    det = load_detector(det_dir)
    onnx = export(det, out / "detector.onnx", "onnx")
    log(f"wrote {det_dir} (test AUC {h.test.auc:.4f}, FPR {100 * h.test.fpr:.2f}% at threshold "
        f"{h.threshold:.3f}) and {onnx.path} (max |ONNX - native| = {onnx.max_abs_diff:.1e})")
    return det_dir, det


def _eval_stage(out: Path, det_dir: Path, gan_dir: Path, unseen_dir: Path, config: DemoConfig,
                log: Callable[[str], None]):
    """3: held-out real images and fresh fakes of both generators, evaluated with the baselines."""
    from detector.data import load_fashion_mnist
    from eval.evaluate import EvalConfig, run_eval
    from gan.rundir import RunDir
    from gan.zoo import sample

    n, seed = config.eval_images, config.seed
    test = load_fashion_mnist("test", variant="embedded")
    rng = np.random.default_rng(seed + 7)
    real_idx = rng.permutation(len(test))[:n]
    real_imgs = torch.from_numpy(test.images[real_idx].copy()).unsqueeze(1).float() / 255.0
    # fresh noise seeds, different from the ones hardening sampled with
    fake_seen = sample(RunDir(gan_dir).final_generator(), n, seed=seed + 90_001)
    fake_unseen = sample(RunDir(unseen_dir).final_generator(), n, seed=seed + 90_002)
    ev = out / "eval_data"
    _write_pngs(real_imgs, ev / "real", "real")
    _write_pngs(fake_seen, ev / "dcgan", "dcgan")
    _write_pngs(fake_unseen, ev / "upconv_unseen", "upconv")
    report_dir = out / "report"
    rep = run_eval(EvalConfig(detector=str(det_dir), out=str(report_dir), real=(str(ev / "real"),),
                              fake=(str(ev / "dcgan"), str(ev / "upconv_unseen")), baselines=True,
                              bootstrap=config.bootstrap, seed=seed))
    seen, unseen = rep.per_fake_set["dcgan"], rep.per_fake_set["upconv_unseen"]
    log(f"wrote {report_dir / 'index.html'} (AUC seen {seen.auc:.4f}, unseen {unseen.auc:.4f}; "
        f"FPR on real {100 * rep.audit.fpr:.2f}%)")
    return rep, real_imgs, fake_seen, fake_unseen


def _scan_stage(out: Path, det, real_imgs, fake_seen, fake_unseen, config: DemoConfig,
                log: Callable[[str], None]) -> float:
    """4: scan a shuffled folder of held-out real images and fakes; accuracy against the hidden truth."""
    from detector.scan import ScanConfig, scan

    mixed = out / "scan_input"
    k = config.scan_images
    items = [(real_imgs[i], "real") for i in range(k)] + [(fake_seen[i], "fake") for i in range(k // 2)] + \
        [(fake_unseen[i], "fake") for i in range(k - k // 2)]
    random.Random(config.seed).shuffle(items)
    paths = _write_pngs([img for img, _ in items], mixed, "img")
    truth = {p.name: lab for p, (_, lab) in zip(paths, items)}
    results = out / "results.csv"
    sres = scan([mixed], det, results, ScanConfig(overwrite=True, workers=0, top=5), log=log)
    with open(results, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    correct = sum(truth[Path(r["path"]).name] == r["label"] for r in rows)
    acc = correct / max(1, len(rows))
    log(f"wrote {results} ({sres.n_files} files: {sres.n_fake} flagged fake, {sres.n_ood} out of domain, "
        f"{sres.n_errors} errors; "
        f"accuracy against the hidden truth {100 * acc:.1f}%)")
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
    vcfg = VideoConfig(every=1, progress=True)
    vres = analyze_videos([clean, manipulated], det, vcfg, vdir / "analysis")
    verdicts = {Path(v.video).name: v.verdict for v in vres}
    flagged = {Path(v.video).name: v.flagged_fraction for v in vres}
    log(f"wrote {vdir / 'analysis'} (frames.csv, videos.csv, timelines/; fake content in frames {lo}-{hi - 1} "
        f"of {t}; frames flagged: " + ", ".join(f"{k} {100 * f:.0f}%" for k, f in flagged.items())
        + "; verdicts: " + ", ".join(f"{k}={v}" for k, v in verdicts.items()) + ")")
    return verdicts


def _retrain_stage(out: Path, det_dir: Path, unseen_dir: Path, rep, config: DemoConfig,
                   log: Callable[[str], None]) -> float:
    """6: retrain against the unseen family without forgetting dcgan; the upconv AUC after."""
    from detector.artifact import load as load_detector
    from detector.train.config import RetrainConfig
    from detector.train.retrain import retrain
    from eval.evaluate import EvalConfig, run_eval
    from gan.rundir import RunDir
    from gan.zoo import sample

    seed, ev = config.seed, out / "eval_data"
    new = sample(RunDir(unseen_dir).final_generator(), config.retrain_fakes, seed=seed + 50_000)
    rdir = out / "detector_retrained"
    retrain(det_dir, {"upconv": new}, rdir, RetrainConfig(steps=config.retrain_steps, seed=seed),
            sources={"upconv": str(unseen_dir)}, log=log)
    after = load_detector(rdir)
    rep2 = run_eval(EvalConfig(detector=str(rdir), out=str(out / "report_retrained"), real=(str(ev / "real"),),
                               fake=(str(ev / "dcgan"), str(ev / "upconv_unseen")), bootstrap=0, seed=seed,
                               progress=False))
    seen, unseen = rep.per_fake_set["dcgan"], rep.per_fake_set["upconv_unseen"]
    auc_after = rep2.per_fake_set["upconv_unseen"].auc
    log(f"wrote {rdir} and {out / 'report_retrained'} (upconv AUC {unseen.auc:.4f} -> {auc_after:.4f}; "
        f"dcgan AUC {seen.auc:.4f} -> {rep2.per_fake_set['dcgan'].auc:.4f}; threshold {after.spec.threshold:.3f})")
    return auc_after


def run_demo(out: str | os.PathLike, config: DemoConfig = DemoConfig(), log: Callable[[str], None] = print
             ) -> DemoSummary:
    """Run the seven stages (eight with ``config.families``) into ``out`` (each in its own folder) and
    return the summary."""
    from detector.atomic import write_json
    from detector.train.config import HardenConfig

    t0 = time.time()
    torch.set_num_threads(max(1, min(config.threads, os.cpu_count() or 1)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    total = 8 if config.families else 7

    def stage(n: int, text: str) -> None:
        log(f"\n== [{n}/{total}] {text} ({time.time() - t0:.0f}s elapsed)")

    stage(1, "train a dcgan GAN on the embedded Fashion-MNIST")
    gan_dir, unseen_dir = _gan_stage(out, config, "fashion-mnist:embedded", log)
    stage(2, "harden the discriminator into a detector and export it to ONNX")
    det_dir, det = _harden_stage(out, gan_dir, config, log)
    stage(3, "evaluate on held-out real images, seen and unseen generators, with spectral baselines")
    rep, real_imgs, fake_seen, fake_unseen = _eval_stage(out, det_dir, gan_dir, unseen_dir, config, log)
    stage(4, "scan a folder that mixes held-out real images and fakes")
    acc = _scan_stage(out, det, real_imgs, fake_seen, fake_unseen, config, log)
    stage(5, "build videos with fake content spliced into known frames and analyse them")
    verdicts = _video_stage(out, det, real_imgs, fake_seen, config, log)
    stage(6, "retrain the detector against the upconv family without forgetting dcgan")
    auc_after = _retrain_stage(out, det_dir, unseen_dir, rep, config, log)
    fam = None
    if config.families:
        from .demo_families import families_stage, lofo_lines

        stage(7, f"harden against every generator family ({', '.join(config.families)}), leave one out at a time")
        fam = families_stage(out, config, gan_dir, unseen_dir, "fashion-mnist:embedded", log)

    seen, unseen = rep.per_fake_set["dcgan"], rep.per_fake_set["upconv_unseen"]
    summary = DemoSummary(out, out / "report" / "index.html", seen.auc, unseen.auc, rep.audit.fpr, auc_after,
                          verdicts, acc, time.time() - t0, None if fam is None else fam.lofo)
    write_json(out / "summary.json", {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(summary).items()})
    stage(total, "summary")
    log(f"report: {summary.report}")
    log(f"AUC on its own generator (dcgan): {seen.auc:.4f}   on an unseen family (upconv): {unseen.auc:.4f}"
        f" -> {auc_after:.4f} after retraining")
    log(f"false-positive rate on {len(real_imgs)} held-out real images: {100 * rep.audit.fpr:.2f}% "
        f"(threshold chosen for {100 * HardenConfig().target_fpr:.0f}% on validation)")
    if fam is not None:
        log(f"leave-one-family-out ({fam.lofo_dir / 'lofo.md'}):")
        for line in lofo_lines(fam):
            log(f"  {line}")
    log(f"video verdicts: {json.dumps(verdicts)}; done in {summary.seconds:.0f}s")
    return summary
