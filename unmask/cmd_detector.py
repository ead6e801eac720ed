"""``unmask harden | retrain``: make and update a detector artifact (``export`` and ``scan``: :mod:`unmask.cmd_scan`)."""
from __future__ import annotations

import os
from pathlib import Path

import click

from detector.nets import TRACES
from detector.train.config import HardenConfig, RetrainConfig

from .options import AMP_HELP, DEVICE_HELP, cap_threads
from .options import device_option as _device
from .output import Report, long_work


def _load_detector(path: Path, device: str = "cpu"):
    from detector.artifact import ArtifactError, load

    try:
        return load(path, _device(device))
    except ArtifactError as e:
        raise click.BadParameter(str(e), param_hint="DETECTOR") from None


def _amp(device, amp: bool) -> bool:
    from detector import distributed
    from detector.device import amp_enabled

    return amp_enabled(device, amp, warn=distributed.is_main())


def _threads() -> None:
    cap_threads(os.cpu_count() or 1)


_H, _R = HardenConfig(), RetrainConfig()  # the CLI's defaults are the configs' defaults


# ---------------------------------------------------------------------------- harden


@click.command()
@click.argument("runs", metavar="RUN...", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Detector directory to write (model.safetensors + detector.json + metrics).")
@click.option("--fakes", "fake_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Extra folder of fake images to harden against (repeatable).")
@click.option("--steps", type=click.IntRange(0), default=_H.steps, show_default=True, help="Fine-tuning steps.")
@click.option("--batch-size", type=click.IntRange(2), default=_H.batch_size, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=_H.lr, show_default=True,
              help="Peak learning rate (cosine decay to 0).")
@click.option("--target-fpr", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=_H.target_fpr,
              show_default=True, help="False-positive rate on validation real images that sets the threshold.")
@click.option("--n-fakes", type=click.IntRange(20), default=6000, show_default=True,
              help="Images sampled per generator family, spread evenly over its snapshots (split "
                   "train/val/test); every family gets the same share of the training fakes.")
@click.option("--val-fraction", type=click.FloatRange(0.01, 0.5), default=0.15, show_default=True)
@click.option("--aug", "aug_scale", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Multiply the augmentation probabilities (0 = no JPEG/noise; blur and rescale are off by "
                   "default: they teach that smooth images are real, see docs/generalisation.md).")
@click.option("--policy", type=click.Choice(["resize", "crop", "tile"]), default="resize", show_default=True,
              help="How scans fit images of other sizes (tile = native-resolution tiles, max score).")
@click.option("--real", "real_source", default=None, help="Override the run's real data source.")
@click.option("--traces", type=click.Choice(list(TRACES)), default="none", show_default=True,
              help="What the detector sees besides pixels: npr = the neighbouring-pixel residue of up-sampling "
                   "instead of pixels, +dct = a spectral branch. Any but none starts from D's architecture with "
                   "fresh weights; npr+dct generalises best to unseen generator families (docs/generalisation.md).")
@click.option("--width", type=click.IntRange(4), default=None,
              help="With --traces: the detector's width (channels of its first stage; default: D's). "
                   "64 catches more unseen fakes than 32 at about 2.5x the cost per image.")
@click.option("--seed", type=int, default=_H.seed, show_default=True, help="Split, sampling and training seed.")
@click.option("--rounds", type=click.IntRange(0), default=0, show_default=True,
              help="Adversarial rounds: train G against the hardened detector, then harden again.")
@click.option("--gan-steps", type=click.IntRange(1), default=500, show_default=True,
              help="Generator steps per adversarial round.")
@click.option("--resume", is_flag=True, help="Continue an interrupted hardening from its last checkpoint.")
@click.option("--device", default=_H.device, show_default=True, help=DEVICE_HELP)
@click.option("--amp", is_flag=True, help=AMP_HELP)
@long_work
def harden(runs: tuple[Path, ...], out: Path, fake_dirs, steps, batch_size, lr, target_fpr, n_fakes, val_fraction,
           aug_scale, policy, real_source, traces, width, seed, rounds, gan_steps, resume, device, amp, quiet: bool,
           report: Report) -> None:
    """Turn a GAN run's discriminator into a calibrated, hardened detector artifact.

    Starts from D's weights (sign flipped: score = probability of fake; with --traces, from D's
    architecture with fresh weights), fine-tunes on real
    images vs fakes sampled from every generator snapshot in RUN/zoo (plus --fakes folders) with
    JPEG / noise / flip augmentation, picks the threshold on validation at
    --target-fpr, calibrates by temperature scaling, and prints validation and test metrics.
    Real train/val come from the official train split; test is the held-out t10k split.

    Several RUNs (or a folder of runs, e.g. one per generator family) harden against the whole
    zoo: every generator family gets the same share of the fakes, spread evenly over its
    snapshots, recorded in detector.json (provenance "families"). D and the real data come from
    the first RUN.

    \b
    Example:
      unmask harden runs/gan --out runs/det
      unmask harden runs/gan --out runs/det --target-fpr 0.005 --fakes my_fakes/
      unmask harden runs/gan_dcgan runs/gan_upconv --out runs/det   # several families, in balance
      unmask harden runs/zoo/ --traces npr+dct --out runs/det      # looks at up-sampling traces
      unmask harden runs/zoo/ --out runs/det                         # every run under runs/zoo
      unmask harden runs/gan --out runs/det --rounds 2 --gan-steps 300
      unmask harden runs/gan --out runs/det --resume     # after an interruption
      torchrun --nproc_per_node 4 -m unmask harden runs/gan --out runs/det --device auto --amp

    Under torchrun the fine-tuning is data-parallel (DDP; --batch-size is the global batch) and
    rank 0 alone writes the artifact.
    """
    from detector import distributed
    from detector.device import resolve_device
    from detector.train.loop import CheckpointMismatch
    from gan.zoo import ZooError

    from .runs import resolve_runs

    _threads()
    try:
        n_runs = len(resolve_runs(runs))
    except ZooError as e:  # not a run nor a folder of runs, a run named twice
        raise click.UsageError(str(e)) from None
    if rounds and n_runs > 1:
        raise click.UsageError(f"--rounds trains one run's generator further: give one RUN, not {n_runs}")
    if rounds and traces != "none":
        raise click.UsageError("--rounds continues from the run's discriminator; it does not take --traces")
    if width is not None and traces == "none":
        raise click.UsageError("--width sets the width of a --traces detector; without --traces it is D's")
    dev = _device(device)
    cfg = HardenConfig(steps=steps, batch_size=batch_size, lr=lr, target_fpr=target_fpr, seed=seed,
                       augment=_H.augment.scaled(aug_scale), device=dev, amp=amp)
    distributed.init(resolve_device(dev))  # the one place this command joins the process group
    log = report.line if distributed.is_main() else (lambda m: None)  # noqa: E731
    try:
        summary = _harden(runs, out, cfg, rounds, gan_steps, n_fakes, fake_dirs, val_fraction, policy, resume,
                          real_source, target_fpr, traces, width, log)
    except (FileNotFoundError, ZooError) as e:  # not a GAN run, or a run without a zoo / discriminator
        raise click.UsageError(str(e)) from None
    except CheckpointMismatch as e:  # resuming a checkpoint made for other inputs
        raise click.UsageError(str(e)) from None
    if distributed.is_main():
        report.done({"command": "harden", "detector": out, **summary})
    distributed.cleanup()


def _harden(runs, out, cfg, rounds, gan_steps, n_fakes, fake_dirs, val_fraction, policy, resume, real_source,
            target_fpr, traces, width, log) -> dict:
    from . import pipelines

    if rounds:
        reports = pipelines.adversarial_rounds(runs, out, rounds, cfg, gan_steps=gan_steps, n_fakes=n_fakes,
                                               fake_dirs=fake_dirs, val_fraction=val_fraction, policy=policy,
                                               resume=resume, real_source=real_source, log=log)
        return {"rounds": reports}
    r = pipelines.harden_run(runs, out, cfg, n_fakes=n_fakes, fake_dirs=fake_dirs, val_fraction=val_fraction,
                             policy=policy, resume=resume, real_source=real_source, traces=traces, width=width, log=log)
    log(f"test: AUC {r.test.auc:.5f}  FPR {r.test.fpr:.4f} (target {target_fpr})  TPR {r.test.tpr:.4f}"
        f"  [{r.seconds:.0f}s]")
    return {"threshold": r.threshold, "temperature": r.temperature, "val": r.val, "test": r.test, "steps": r.steps,
            "resumed_from": r.resumed_from, "seconds": r.seconds}


# ---------------------------------------------------------------------------- retrain


@click.command()
@click.argument("detector_dir", metavar="DETECTOR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--fakes", "fake_dirs", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of the new generator's images (repeatable: one generator per folder).")
@click.option("--real", "real_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Extra real images (folder) to add to the replayed ones.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New detector directory (the old one is left untouched).")
@click.option("--steps", type=click.IntRange(0), default=_R.steps, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=_R.lr, show_default=True)
@click.option("--replay-weight", type=click.FloatRange(0, 1, max_open=True), default=_R.replay_weight,
              show_default=True, help="Share of fake training images replayed from the generators it already knew.")
@click.option("--target-fpr", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=_R.target_fpr,
              help="Default: the detector's own target.")
@click.option("--seed", type=int, default=_R.seed, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted retraining from its checkpoint.")
@click.option("--device", default=_R.device, show_default=True, help=DEVICE_HELP)
@click.option("--amp", is_flag=True, help=AMP_HELP)
def retrain(detector_dir: Path, fake_dirs, real_dirs, out: Path, steps, lr, replay_weight, target_fpr, seed,
            resume, device, amp) -> None:
    """Fine-tune a detector on a new generator's images without forgetting the old ones.

    Replays a sample of the real and fake images it was trained on (DETECTOR/replay.safetensors),
    re-picks threshold and temperature on validation, and prints a before/after table: AUC and
    TPR on the new generator(s) and each generator it already knew, plus the real FPR.

    \b
    Example:
      unmask retrain runs/det --fakes new_gan_pngs/ --out runs/det2
      unmask retrain runs/det --fakes genA/ --fakes genB/ --real my_real/ --out runs/det2
      torchrun --nproc_per_node 4 -m unmask retrain runs/det --fakes new/ --out runs/det2 --device auto

    Under torchrun the fine-tuning is data-parallel (DDP) and rank 0 alone writes the artifact.
    """
    from detector import distributed
    from detector.data import load_folder_images
    from detector.train.retrain import retrain as do_retrain

    _threads()
    det = _load_detector(detector_dir, device)
    distributed.init(det.device)  # the one place this command joins the process group
    echo = click.echo if distributed.is_main() else (lambda *a, **k: None)
    s = det.spec
    new, sources = {}, {}
    for d in fake_dirs:
        x, bad = load_folder_images([d], s.input_size, s.channels, s.policy)
        name = f"folder:{Path(d).resolve().name}"
        while name in new:
            name += "_"
        new[name], sources[name] = x, str(d)
        echo(f"{name}: {len(x)} images ({bad} unreadable skipped)")
    real = None
    if real_dirs:
        real, _ = load_folder_images(list(real_dirs), s.input_size, s.channels, s.policy)
    cfg = RetrainConfig(steps=steps, lr=lr, replay_weight=replay_weight, target_fpr=target_fpr, seed=seed,
                        device=str(det.device), amp=amp)
    try:
        r = do_retrain(detector_dir, new, out, cfg, extra_real=real, sources=sources, resume=resume,
                       log=lambda m: echo(m), detector=det)
    except (FileNotFoundError, ValueError) as e:  # no or bad replay buffer, bad images, --out clash...
        raise click.UsageError(str(e)) from None
    echo(f"[{r.seconds:.0f}s] before/after table saved to {out / 'retrain_table.txt'}")
    distributed.cleanup()
