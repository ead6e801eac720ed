"""``unmask eval`` and ``unmask eval-matrix``: measure a detector, honestly, with pictures."""
from __future__ import annotations

import sys
from pathlib import Path

import click

EXIT_UNREADABLE, EXIT_FAILED = 1, 3


def _fail(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(EXIT_FAILED)


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
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
def eval_cmd(folders, detector_dir, real, fake, out, baselines, baseline_train, robustness, bootstrap, seed,
             gallery, batch_size, device) -> None:
    """Evaluate a detector on real and fake images and write an HTML report.

    Every --fake folder is reported as its own generator. A folder holding real/ and fake/ (or
    0_real/ and 1_fake/) can be given as an argument instead. With only --real it is a
    false-positive audit (how often real images are called fake, with a 95% interval).

    \b
    Example:
      unmask eval --detector runs/det --real real/ --fake fakes/dcgan --fake fakes/upconv \\
          --out runs/report --baselines --robustness
      unmask eval --detector runs/det testset/ --out runs/report     # testset/{real,fake}/
      unmask eval --detector runs/det --real my_photos/ --out runs/audit
    """
    import torch

    from detector.artifact import ArtifactError
    from eval.evaluate import EvalConfig, run_eval
    from eval.metrics import MetricError

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 8)))
    real_s, labelled = _inputs(real, folders)
    if not (real_s or fake or labelled):
        raise click.UsageError("give --real and/or --fake folders, or a folder with real/ and fake/ inside")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = EvalConfig(detector=str(detector_dir), out=str(out), real=real_s, fake=tuple(str(f) for f in fake),
                     labelled=labelled, baselines=baselines, baseline_train=baseline_train, robustness=robustness,
                     bootstrap=bootstrap, seed=seed, batch_size=batch_size, gallery=gallery, device=device)
    try:
        rep = run_eval(cfg)
    except (ArtifactError, MetricError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
        return
    o = rep.overall
    if o is not None:
        click.echo(f"AUC {o.auc:.4f}" + (f" [{o.auc_ci[0]:.4f}, {o.auc_ci[1]:.4f}]" if o.auc_ci else "")
                   + f"  AP {o.ap:.4f}  EER {o.eer:.4f}  accuracy {o.accuracy:.4f}  "
                   f"TPR@1%FPR {o.tpr_at_fpr_1pct:.4f}  ({o.n_real} real, {o.n_fake} fake)")
        for k, m in rep.per_fake_set.items():
            click.echo(f"  {k}: AUC {m.auc:.4f}  accuracy {m.accuracy:.4f}  fake caught {m.fake_accuracy:.4f}")
        for b in rep.baselines:
            click.echo(f"  baseline {b.name}: AUC {b.overall.auc:.4f}  accuracy {b.overall.accuracy:.4f}")
    elif rep.audit is not None:
        a = rep.audit
        click.echo(f"false-positive audit: {a.n_flagged}/{a.n_real} real images called fake "
                   f"(FPR {a.fpr:.4f}, 95% CI [{a.ci_low:.4f}, {a.ci_high:.4f}])")
    for u in rep.unreadable:
        click.echo(f"unreadable: {u.path}: {u.reason}", err=True)
    click.echo(f"report: {Path(out) / 'index.html'}")
    if rep.unreadable:
        sys.exit(EXIT_UNREADABLE)


@click.command("eval-matrix")
@click.option("--real", multiple=True, required=True, type=click.Path(exists=True, path_type=Path),
              help="Folder of real images (split into train and test halves).")
@click.option("--fake", multiple=True, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of fakes from one generator; at least two (each is split into train and test).")
@click.option("--detector", "detector_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Start every per-generator detector from this artifact (default: a fresh dcgan_d).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--steps", type=click.IntRange(1), default=300, show_default=True, help="Training steps per detector.")
@click.option("--lr", type=float, default=2e-4, show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0.05, 0.95), default=0.5, show_default=True)
@click.option("--size", type=click.IntRange(8, 1024), default=28, show_default=True,
              help="Input size of a fresh detector (ignored with --detector).")
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True,
              help="Channels of a fresh detector (ignored with --detector).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def eval_matrix(real, fake, detector_dir, out, steps, lr, test_fraction, size, channels, seed, device) -> None:
    """Cross-generator matrix: fit one detector per fake folder, test each on every folder.

    Row = the generator a detector was fitted on, column = the generator it is tested on; the
    off-diagonal cells answer "does it work on a generator it never saw?". Each folder is split
    (seeded) into training and held-out test images; the real folder likewise.

    \b
    Example:
      unmask eval-matrix --real real/ --fake fakes/dcgan --fake fakes/upconv --out runs/matrix
      unmask eval-matrix --detector runs/det --real real/ --fake a/ --fake b/ --out runs/matrix --steps 100
    """
    import torch

    from detector.artifact import ArtifactError, load
    from detector.atomic import write_json, write_text
    from eval.matrix import FinetuneConfig, cross_generator_matrix, finetune_detector, split_train_test
    from eval.plots import heatmap_plot
    from eval.scoring import load_eval_sets

    if len(fake) < 2:
        raise click.UsageError("eval-matrix needs at least two --fake folders (one per generator)")
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 8)))
    try:
        base = load(detector_dir) if detector_dir else None
    except ArtifactError as e:
        _fail(str(e))
        return
    size = base.spec.input_size if base else size
    ch = base.spec.channels if base else int(channels)
    sets = load_eval_sets(real=[str(r) for r in real], fake=[str(f) for f in fake], channels=ch)
    for u in sets.unreadable:
        click.echo(f"unreadable: {u.path}: {u.reason}", err=True)
    try:
        r_tr, r_te = split_train_test(sets.real.images, test_fraction, seed)
        fakes = {s.name: split_train_test(s.images, test_fraction, seed + 1 + i) for i, s in enumerate(sets.fakes)}
    except ValueError as e:
        _fail(str(e))
        return
    cfg = FinetuneConfig(steps=steps, lr=lr, seed=seed, device=device)
    res = cross_generator_matrix(r_tr, r_te, fakes, lambda xr, xf: finetune_detector(xr, xf, base, cfg), size, ch)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "matrix.json", {"format": "unmask-eval-matrix/1", **res.to_json(),
                                     "off_diagonal_mean_auc": res.off_diagonal_mean(),
                                     "fitting": {"method": "finetune_detector (BCE)", "steps": steps, "lr": lr,
                                                 "seed": seed, "base": detector_dir, "test_fraction": test_fraction}})
    heatmap_plot(res.auc, res.names, res.names, out / "matrix.png", title="Cross-generator AUC",
                 xlabel="tested on", ylabel="trained on")
    lines = ["# Cross-generator AUC", "", "| trained on \\ tested on | " + " | ".join(res.names) + " |",
             "|---|" + "---|" * len(res.names)]
    lines += [f"| {a} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for a, row in zip(res.names, res.auc)]
    lines += ["", f"Mean off-diagonal AUC: {res.off_diagonal_mean():.3f}", ""]
    write_text(out / "matrix.md", "\n".join(lines))
    click.echo("\n".join(lines))
    click.echo(f"matrix: {out / 'matrix.png'}")
    if sets.unreadable:
        sys.exit(EXIT_UNREADABLE)
