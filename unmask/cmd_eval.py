"""``unmask eval``, ``unmask eval-matrix`` and ``unmask eval-lofo``: measure a detector, honestly, with pictures."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from detector.nets import TRACES

from .options import AMP_HELP, EXIT_UNREADABLE, OOD_SENTENCE, cap_threads, fail, out_of_domain_option
from .options import device_option as _device
from .lofo import LofoConfig
from .matrix import MatrixConfig
from .output import Report, long_work

# `eval-matrix`'s defaults are MatrixConfig's own. `eval`'s repeat EvalConfig's as literals (importing
# eval.evaluate here would load scikit-learn and scipy for every command); tests/test_cli.py pins them equal.
_M = MatrixConfig(out="")


def _inputs(real: tuple[Path, ...], folders: tuple[Path, ...]) -> tuple[tuple, tuple]:
    """(real folders, labelled folders); a labelled folder holds real/ + fake/ (or 0_real/ + 1_fake/)."""
    return tuple(str(r) for r in real), tuple(str(p) for p in folders)


@click.command("eval")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--detector", "detector_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Detector artifact folder (detector.json + model.safetensors).")
@click.option("--real", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Folder (or file) of real images; repeatable.")
@click.option("--fake", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Folder of fake images from one generator (named after the folder); repeatable.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report folder: index.html, summary.md, metrics.json, plots/.")
@click.option("--baselines", is_flag=True, help="Add the Frank et al. (DCT) and Durall et al. (spectrum) baselines.")
@click.option("--baseline-train", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder with real/ and fake/ to fit the baselines on. Default: the detector's own training "
                   "sample (replay.safetensors written by hardening), else 2-fold cross-fitting on the test "
                   "images (an in-distribution upper bound).")
@click.option("--robustness", is_flag=True, help="AUC, accuracy and verdict flips under JPEG, blur, resize, noise.")
@click.option("--bootstrap", type=click.IntRange(0), default=1000, show_default=True,
              help="Bootstrap resamples for the 95% intervals (0: none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--gallery", type=click.IntRange(0, 200), default=12, show_default=True,
              help="Thumbnails per mistake gallery.")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--amp", is_flag=True, help=AMP_HELP)
@out_of_domain_option
@long_work
def eval_cmd(folders, detector_dir, real, fake, out, baselines, baseline_train, robustness, bootstrap, seed,
             gallery, batch_size, device, amp, out_of_domain, quiet: bool, report: Report) -> None:
    """Evaluate a detector on real and fake images and write an HTML report.

    Every --fake folder is reported as its own generator. A folder holding real/ and fake/ (or
    0_real/ and 1_fake/) can be given as an argument instead. With only --real it is a
    false-positive audit (how often real images are called fake, with a 95% interval).

    Images outside the detector's domain (unlike the real images it was trained on) are counted
    apart per set and, with --out-of-domain flag (listed) or skip, left out of the metrics;
    with score they are measured like the others.

    \b
    Example:
      unmask eval --detector runs/det --real real/ --fake fakes/dcgan --fake fakes/upconv \\
          --out runs/report --baselines --robustness
      unmask eval --detector runs/det testset/ --out runs/report     # testset/{real,fake}/
      unmask eval --detector runs/det --real my_photos/ --out runs/audit
    """
    from detector.artifact import ArtifactError
    from eval.evaluate import EvalConfig, run_eval
    from eval.metrics import MetricError

    cap_threads(8)
    real_s, labelled = _inputs(real, folders)
    if not (real_s or fake or labelled):
        raise click.UsageError("give --real and/or --fake folders, or a folder with real/ and fake/ inside")
    device = _device(device)
    cfg = EvalConfig(detector=str(detector_dir), out=str(out), real=real_s, fake=tuple(str(f) for f in fake),
                     labelled=labelled, baselines=baselines, baseline_train=baseline_train, robustness=robustness,
                     bootstrap=bootstrap, seed=seed, batch_size=batch_size, gallery=gallery, device=device,
                     amp=amp, out_of_domain=out_of_domain)
    try:
        rep = run_eval(cfg)
    except (ArtifactError, MetricError, ValueError, FileNotFoundError) as e:
        fail(str(e))
        return
    o = rep.overall
    if o is not None:
        report.line(f"AUC {o.auc:.4f}" + (f" [{o.auc_ci[0]:.4f}, {o.auc_ci[1]:.4f}]" if o.auc_ci else "")
                    + f"  AP {o.ap:.4f}  EER {o.eer:.4f}  accuracy {o.accuracy:.4f}  "
                    f"TPR@1%FPR {o.tpr_at_fpr_1pct:.4f}  ({o.n_real} real, {o.n_fake} fake)")
        for k, m in rep.per_fake_set.items():
            report.line(f"  {k}: AUC {m.auc:.4f}  accuracy {m.accuracy:.4f}  fake caught {m.fake_accuracy:.4f}")
        for b in rep.baselines:
            report.line(f"  baseline {b.name}: AUC {b.overall.auc:.4f}  accuracy {b.overall.accuracy:.4f}")
    elif rep.audit is not None:
        a = rep.audit
        report.line(f"false-positive audit: {a.n_flagged}/{a.n_real} real images called fake "
                    f"(FPR {a.fpr:.4f}, 95% CI [{a.ci_low:.4f}, {a.ci_high:.4f}])")
    for u in rep.unreadable:
        click.echo(f"unreadable: {u.path}: {u.reason}", err=True)
    _domain_lines(rep.domain, report)
    report.line(f"report: {Path(out) / 'index.html'}")
    report.done({"command": "eval", "report": Path(out) / "index.html", **rep.to_json()})
    if rep.unreadable:
        sys.exit(EXIT_UNREADABLE)


def _domain_lines(d, report: Report) -> None:
    """The out-of-domain count per set and one sentence why (as scan says it)."""
    if d is None or not d.total:
        return
    per = ", ".join(f"{k} {n}" for k, n in d.counts.items() if n)
    if d.excluded:
        report.line(OOD_SENTENCE.format(n=d.total) + f"; left out of the metrics ({per})")
    else:
        report.line(f"note: {d.total} image(s) lie outside the detector's domain ({per}); with --out-of-domain "
                    "score they are measured like the others")


@click.command("eval-matrix")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="GAN run directory: one fake set per generator family of its zoo; its discriminator is "
                   "hardened once per family (its data source gives the real images unless --real is given).")
@click.option("--real", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Folder of real images (split into train and test parts).")
@click.option("--fake", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of fakes from one generator (split into train and test parts); repeatable.")
@click.option("--detector", "detector_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder mode: start every per-generator detector from this artifact (default: fresh dcgan_d).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--steps", type=click.IntRange(1), default=_M.steps, show_default=True, help="Training steps per detector.")
@click.option("--lr", type=float, default=_M.lr, show_default=True, help="Folder mode: fine-tuning learning rate.")
@click.option("--per-family", type=click.IntRange(8), default=_M.per_family, show_default=True,
              help="--run: fakes sampled per generator family (and real images per split).")
@click.option("--test-fraction", type=click.FloatRange(0.05, 0.95), default=_M.test_fraction, show_default=True)
@click.option("--size", type=click.IntRange(8, 1024), default=_M.size, show_default=True,
              help="Input size of a fresh detector (folder mode without --detector).")
@click.option("--channels", type=click.Choice(["1", "3"]), default=str(_M.channels), show_default=True,
              help="Channels of a fresh detector (folder mode without --detector).")
@click.option("--seed", type=int, default=_M.seed, show_default=True)
@click.option("--device", default=_M.device, show_default=True, help="auto, cpu, cuda or cuda:N.")
def eval_matrix(run_dir, real, fake, detector_dir, out, steps, lr, per_family, test_fraction, size, channels, seed,
                device) -> None:
    """Cross-generator matrix: one detector per generator, each tested on every generator.

    Row = the generator a detector was fitted on, column = the generator it is tested on; the
    off-diagonal cells answer "does it work on a generator it never saw?". Every set is split
    (seeded) into training and held-out test images, the real images likewise.

    With --run, the generators are the families of the run's zoo (plus any --fake folders) and
    each detector is the run's discriminator hardened on one family (detector.harden). With
    folders only, each detector is fine-tuned by binary cross-entropy from --detector (or a
    fresh dcgan_d) for --steps steps.

    \b
    Example:
      unmask eval-matrix --run runs/gan --out runs/matrix
      unmask eval-matrix --real real/ --fake fakes/dcgan --fake fakes/upconv --out runs/matrix
      unmask eval-matrix --detector runs/det --real real/ --fake a/ --fake b/ --out runs/matrix --steps 100
    """
    from .matrix import MatrixConfig, MatrixError, cross_generator_run

    cfg = MatrixConfig(out=str(out), run=None if run_dir is None else str(run_dir), real=tuple(str(r) for r in real),
                       fake=tuple(str(f) for f in fake), detector=detector_dir, steps=steps, lr=lr,
                       per_family=per_family, test_fraction=test_fraction, size=size, channels=int(channels),
                       seed=seed, device=device)
    try:
        cfg.validate()
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    cfg = replace(cfg, device=_device(device))
    cap_threads(8)
    try:
        rep = cross_generator_run(cfg)
    except MatrixError as e:
        fail(str(e))
        return
    for u in rep.unreadable:
        click.echo(f"unreadable: {u.path}: {u.reason}", err=True)
    click.echo(rep.markdown)
    click.echo(f"matrix: {out / 'matrix.png'}")
    if rep.unreadable:
        sys.exit(EXIT_UNREADABLE)


_L = LofoConfig(out="")


@click.command("eval-lofo")
@click.argument("runs", metavar="RUN...", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for lofo.md/.json, lofo.png, index.html and folds/FAMILY/{detector,report}.")
@click.option("--steps", type=click.IntRange(0), default=_L.steps, show_default=True,
              help="Hardening steps per fold (the same settings for every fold).")
@click.option("--target-fpr", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=_L.target_fpr,
              show_default=True, help="False-positive rate on validation real images that sets each threshold.")
@click.option("--n-fakes", type=click.IntRange(20), default=_L.n_fakes, show_default=True,
              help="Images sampled per generator family, spread evenly over its snapshots.")
@click.option("--n-test", type=click.IntRange(2), default=_L.n_test, show_default=True,
              help="Held-out family fakes tested per fold (at most --n-fakes).")
@click.option("--val-fraction", type=click.FloatRange(0.01, 0.5), default=_L.val_fraction, show_default=True)
@click.option("--aug", "aug_scale", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Multiply the augmentation probabilities (as `unmask harden --aug`).")
@click.option("--bootstrap", type=click.IntRange(0), default=_L.bootstrap, show_default=True,
              help="Bootstrap resamples for the 95% AUC intervals (0: none).")
@click.option("--real", "real_source", default=None, help="Override the runs' real data source.")
@click.option("--traces", type=click.Choice(list(TRACES)), default=_L.traces, show_default=True,
              help="What every fold's detector sees besides pixels (as `unmask harden --traces`).")
@click.option("--width", type=click.IntRange(4), default=None,
              help="With --traces: every fold detector's width (as `unmask harden --width`).")
@click.option("--seed", type=int, default=_L.seed, show_default=True)
@click.option("--resume", is_flag=True, help="Keep fold detectors already written under OUT/folds.")
@click.option("--device", default=_L.device, show_default=True, help="auto, cpu, cuda or cuda:N.")
def eval_lofo(runs, out, steps, target_fpr, n_fakes, n_test, val_fraction, aug_scale, bootstrap, real_source, traces,
              width, seed, resume, device) -> None:
    """Leave-one-family-out: the honest generalisation number.

    For every generator family in the RUNs (run directories, or a folder of runs), harden a
    detector on all the other families with the same settings and test it on the held-out
    family's fakes and held-out real images: AUC with a bootstrap interval, the share caught at
    the threshold the detector ships (chosen on validation for --target-fpr), the false-positive
    rate on real images, the same on JPEG-75 copies, and the DCT + logistic-regression baseline
    fitted on the same training data. Writes a table, a heat map and HTML report pages.

    \b
    Example:
      unmask eval-lofo runs/gan_dcgan runs/gan_upconv runs/vae --out runs/lofo
      unmask eval-lofo runs/zoo/ --out runs/lofo --steps 2000 --resume
      unmask eval-lofo runs/zoo/ --out runs/lofo_traces --traces npr+dct
    """
    from detector.train.config import HardenConfig
    from gan.zoo import ZooError

    from .lofo import LofoError, run_lofo

    if width is not None and traces == "none":
        raise click.UsageError("--width sets the width of --traces detectors; without --traces each fold starts "
                               "from a run's D")
    cfg = LofoConfig(out=str(out), runs=tuple(str(r) for r in runs), steps=steps, target_fpr=target_fpr,
                     n_fakes=n_fakes, n_test=n_test, val_fraction=val_fraction, bootstrap=bootstrap, seed=seed,
                     device=_device(device), real_source=real_source, resume=resume, traces=traces, width=width)
    cap_threads(8)
    base = HardenConfig()
    base = replace(base, augment=base.augment.scaled(aug_scale))
    try:
        _, md = run_lofo(cfg, base, log=click.echo)
    except (LofoError, ZooError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from None
    click.echo(md)
    click.echo(f"report: {out / 'index.html'}")
