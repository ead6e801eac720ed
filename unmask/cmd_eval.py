"""``unmask eval`` and ``unmask eval-matrix``: measure a detector, honestly, with pictures."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import AMP_HELP, EXIT_UNREADABLE, cap_threads, fail
from .options import device_option as _device


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
def eval_cmd(folders, detector_dir, real, fake, out, baselines, baseline_train, robustness, bootstrap, seed,
             gallery, batch_size, device, amp) -> None:
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
                     amp=amp)
    try:
        rep = run_eval(cfg)
    except (ArtifactError, MetricError, ValueError, FileNotFoundError) as e:
        fail(str(e))
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


def _zoo_fakes(run_dir: Path, per_family: int, seed: int, size: int, channels: int) -> dict:
    """One fake set per generator family of a GAN run's zoo: ``per_family`` images sampled evenly from
    that family's snapshots (fixed seeds), fitted to ``size`` x ``size``."""
    import math

    import torch

    from detector.preprocess import fit
    from gan.zoo import load_zoo, sample

    families: dict[str, list] = {}
    for snap in load_zoo(run_dir):
        families.setdefault(snap.family, []).append(snap)
    out = {}
    for i, (fam, snaps) in enumerate(families.items()):
        per = math.ceil(per_family / len(snaps))
        x = torch.cat([sample(s, per, seed=seed + 1000 * i + j) for j, s in enumerate(snaps)])[:per_family]
        if tuple(x.shape[1:]) != (channels, size, size):
            x = torch.stack([fit(im, size, channels, "resize") for im in x])
        out[fam] = list(x)
    return out


def _run_real(run_dir: Path, size: int, channels: int, n: int) -> list:
    """Real images of the run's own data source (its config.json ``data``): train then held-out test."""
    import json

    from detector.data import open_source

    data = json.loads((run_dir / "config.json").read_text()).get("data", "fashion-mnist")
    imgs = []
    for split in ("train", "test"):
        src = open_source(data, size, channels, split)
        imgs += [src[i][0] for i in range(min(n, len(src)))]
    return imgs


def _discriminator_detector(run_dir: Path):
    """The run's discriminator as a detector (head flipped once: logit > 0 = fake), threshold 0.5."""
    from detector.artifact import Detector, spec_for_network
    from detector.nets import flip_head
    from gan.zoo import load_discriminator

    net, name, args = load_discriminator(run_dir)
    flip_head(net)
    size, ch = int(args.get("image_size", 28)), int(args.get("in_channels", 1))
    return Detector(net, spec_for_network(name, args, size, ch, provenance={"gan_run": str(run_dir)}))


def _harden_fit(run_dir: Path, names: list, steps: int, seed: int, work: Path, device: str):
    """fit_detector for the matrix: unmask's hardening of the run's discriminator (detector.harden),
    validation split for the threshold carved from the training images; None when unavailable."""
    try:
        from detector.train import harden as hd
        from detector.train.splits import split_tensor
    except ImportError:
        return None
    from detector.artifact import load
    from gan.zoo import load_discriminator

    it = iter(names)

    def fit(xr, xf):
        name = next(it)
        net, arch, args = load_discriminator(run_dir)
        real = split_tensor(xr, seed, 0.2, 0.1)
        fake = split_tensor(xf, seed + 1, 0.2, 0.1)
        cfg = hd.HardenConfig(steps=steps, seed=seed, device=device)
        hd.harden(net, arch, args, real, {name: fake}, work / name, cfg, log=lambda _m: None, progress=False,
                  provenance={"gan_run": str(run_dir), "matrix_family": name})
        return load(work / name)

    return fit


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
@click.option("--steps", type=click.IntRange(1), default=300, show_default=True, help="Training steps per detector.")
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Folder mode: fine-tuning learning rate.")
@click.option("--per-family", type=click.IntRange(8), default=1000, show_default=True,
              help="--run: fakes sampled per generator family (and real images per split).")
@click.option("--test-fraction", type=click.FloatRange(0.05, 0.95), default=0.5, show_default=True)
@click.option("--size", type=click.IntRange(8, 1024), default=28, show_default=True,
              help="Input size of a fresh detector (folder mode without --detector).")
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True,
              help="Channels of a fresh detector (folder mode without --detector).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or cuda:N.")
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
    import tempfile

    from detector.artifact import ArtifactError, load
    from detector.atomic import write_json, write_text
    from eval.matrix import FinetuneConfig, cross_generator_matrix, finetune_detector, split_train_test
    from eval.plots import heatmap_plot
    from eval.scoring import load_eval_sets

    if run_dir is None and len(fake) < 2:
        raise click.UsageError("eval-matrix needs --run RUN_DIR or at least two --fake folders (one per generator)")
    if run_dir is None and not real:
        raise click.UsageError("folder mode needs --real (or use --run RUN_DIR)")
    device = _device(device)
    cap_threads(8)
    base = None
    try:
        if run_dir is not None:
            base = _discriminator_detector(run_dir)
        elif detector_dir:
            base = load(detector_dir)
    except (ArtifactError, OSError, KeyError, RuntimeError) as e:
        fail(str(e))
        return
    size = base.spec.input_size if base else size
    ch = base.spec.channels if base else int(channels)
    sets = load_eval_sets(real=[str(r) for r in real], fake=[str(f) for f in fake], channels=ch)
    for u in sets.unreadable:
        click.echo(f"unreadable: {u.path}: {u.reason}", err=True)
    fake_imgs = {s.name: s.images for s in sets.fakes}
    real_imgs = sets.real.images
    if run_dir is not None:
        try:
            zoo = _zoo_fakes(run_dir, per_family, seed, size, ch)
        except Exception as e:  # noqa: BLE001 - ZooError and friends: one sentence, exit 3
            fail(f"{run_dir}: {e}")
            return
        fake_imgs = {**zoo, **{k: v for k, v in fake_imgs.items() if k not in zoo}}
        if not real_imgs:
            real_imgs = _run_real(run_dir, size, ch, per_family)
        if len(fake_imgs) < 2:
            fail(f"{run_dir}: the zoo holds one generator family ({', '.join(fake_imgs)}); a matrix needs two: "
                  "add --fake folders or train another family")
            return
    try:
        r_tr, r_te = split_train_test(real_imgs, test_fraction, seed)
        fakes = {k: split_train_test(v, test_fraction, seed + 1 + i) for i, (k, v) in enumerate(fake_imgs.items())}
    except ValueError as e:
        fail(str(e))
        return
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="matrix-", dir=out))
    fit = _harden_fit(run_dir, list(fakes), steps, seed, work, device) if run_dir is not None else None
    method = "detector.harden of the run's discriminator" if fit is not None else "finetune_detector (BCE)"
    if fit is None:
        cfg = FinetuneConfig(steps=steps, lr=lr, seed=seed, device=device)
        fit = lambda xr, xf: finetune_detector(xr, xf, base, cfg)  # noqa: E731
    try:
        res = cross_generator_matrix(r_tr, r_te, fakes, fit, size, ch)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    write_json(out / "matrix.json", {"format": "unmask-eval-matrix/1", **res.to_json(),
                                     "off_diagonal_mean_auc": res.off_diagonal_mean(),
                                     "fitting": {"method": method, "steps": steps, "lr": lr, "seed": seed,
                                                 "base": str(run_dir or detector_dir or "fresh dcgan_d"),
                                                 "test_fraction": test_fraction}})
    heatmap_plot(res.auc, res.names, res.names, out / "matrix.png", title="Cross-generator AUC",
                 xlabel="tested on", ylabel="trained on")
    lines = ["# Cross-generator AUC", "", f"Fitting: {method}, {steps} steps, seed {seed}.", "",
             "| trained on \\ tested on | " + " | ".join(res.names) + " |", "|---|" + "---|" * len(res.names)]
    lines += [f"| {a} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for a, row in zip(res.names, res.auc)]
    lines += ["", f"Mean off-diagonal AUC: {res.off_diagonal_mean():.3f}", ""]
    write_text(out / "matrix.md", "\n".join(lines))
    click.echo("\n".join(lines))
    click.echo(f"matrix: {out / 'matrix.png'}")
    if sets.unreadable:
        sys.exit(EXIT_UNREADABLE)
