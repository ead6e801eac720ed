"""``unmask gan``: train the adversary, sample from it, list its generator zoo."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from gan.config import GanConfig
from gan.families import family_config, family_names
from gan.generators import NON_GAN_GENERATORS
from gan.losses import LOSSES

from .options import AMP_HELP, DEVICE_HELP, fail
from .output import Report, long_work

_D = GanConfig()  # every default below is the config's own


@click.group()
def gan() -> None:
    """Train a GAN whose discriminator becomes the detector, and sample from its generators.

    \b
    Example:
      unmask gan train --steps 2000 --out runs/gan
      unmask gan sample runs/gan --n 64 --out fakes/
      unmask gan zoo runs/gan
    """


@gan.command("train")
@click.option("--data", default=_D.data, show_default=True,
              help="fashion-mnist[:embedded|:full|:PATH], a folder of images, or a video file.")
@click.option("--family", type=click.Choice(family_names()), default=None,
              help="Generator family [default: dcgan]. GANs: dcgan (transposed convolutions), upconv (nearest "
                   "resize-then-convolve), upconv-bilinear. NOT GANs: vae (variational auto-encoder), diffusion "
                   "(UNet denoiser, DDIM sampling).")
@click.option("--generator", type=click.Choice(["dcgan", "upconv"]), default=None, hidden=True,
              help="Old name of --family (dcgan or upconv).")
@click.option("--loss", type=click.Choice(LOSSES.names()), default=_D.loss, show_default=True,
              help="bce (non-saturating), minimax (saturating: stalls, for study), hinge or wgan_gp.")
@click.option("--steps", type=click.IntRange(1), default=None, help=f"Generator updates [default: {_D.steps}].")
@click.option("--batch-size", type=click.IntRange(2), default=_D.batch_size, show_default=True)
@click.option("--image-size", type=click.IntRange(8, 1024), default=_D.image_size, show_default=True)
@click.option("--channels", type=click.Choice(["1", "3"]), default=str(_D.channels), show_default=True)
@click.option("--z-dim", type=click.IntRange(1), default=None,
              help=f"Noise size [default: {_D.z_dim}; vae 16; diffusion: the image, C*S*S].")
@click.option("--width", type=click.IntRange(1), default=_D.g_width, show_default=True, help="Generator width.")
@click.option("--d-width", type=click.IntRange(1), default=_D.d_width, show_default=True, help="Discriminator width.")
@click.option("--lr-g", type=click.FloatRange(0, min_open=True), default=None,
              help=f"Generator learning rate [default: {_D.lr_g}; vae and diffusion 1e-3].")
@click.option("--lr-d", type=click.FloatRange(0, min_open=True), default=_D.lr_d, show_default=True)
@click.option("--spectral-norm", is_flag=True, help="Spectral normalisation in D (Miyato et al. 2018).")
@click.option("--r1", type=click.FloatRange(0), default=_D.r1, show_default=True, help="R1 penalty gamma.")
@click.option("--label-smoothing", type=click.FloatRange(0, 0.5, max_open=True), default=_D.label_smoothing, show_default=True,
              help="One-sided: real target 1-s (bce, minimax).")
@click.option("--instance-noise", type=click.FloatRange(0), default=_D.instance_noise, show_default=True,
              help="Initial instance-noise sigma, annealed to 0.")
@click.option("--spectral-loss", type=click.FloatRange(0), default=_D.spectral_loss, show_default=True,
              help="Weight of the Durall spectral loss on G.")
@click.option("--auto-remedy", is_flag=True,
              help="On a health warning, climb the remedy ladder (docs/gan.md): one bounded change at a time, "
                   "rolled back if it does not help.")
@click.option("--health-every", type=click.IntRange(1), default=_D.health_every, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(1), default=_D.checkpoint_every, show_default=True)
@click.option("--seed", type=int, default=_D.seed, show_default=True)
@click.option("--device", default=_D.device, show_default=True, help=DEVICE_HELP)
@click.option("--amp", is_flag=True, help=AMP_HELP)
@click.option("--threads", type=click.IntRange(0), default=0, help="torch CPU threads (0: torch's default).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="New run directory.")
@click.option("--resume", "resume", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Continue this run from its last checkpoint (its config.json wins; --steps may extend it).")
@long_work
def train_cmd(data, family, generator, loss, steps, batch_size, image_size, channels, z_dim, width, d_width, lr_g, lr_d,
              spectral_norm, r1, label_smoothing, instance_noise, spectral_loss, auto_remedy, health_every,
              checkpoint_every, seed, device, amp, threads, out, resume, quiet, report: Report) -> None:
    """Train a generator family and write a run directory (config, metrics, samples, checkpoints, zoo).

    Every --family writes the same layout and zoo (early/middle/late snapshots) that `unmask harden`
    samples from. vae and diffusion are NOT GANs: they train without a discriminator (one loss,
    no health monitor or health.png, one process), and the GAN options (--loss, --d-width, --lr-d,
    --spectral-norm, --r1, ...) do not apply to them.

    Health warnings (D overpowering G, mode collapse, partial mode dropping) are printed with a
    remedy; --auto-remedy acts on them. Quality is reported as FD-FMNIST (a Fréchet distance in an offline Fashion-MNIST
    classifier's feature space; not Inception FID).

    Under torchrun every process trains a share of each (global) --batch-size batch with
    DistributedDataParallel; rank 0 alone writes the run directory; --resume works with any
    number of processes.

    \b
    Example:
      unmask gan train --steps 2000 --out runs/gan
      unmask gan train --family diffusion --steps 2000 --out runs/diffusion
      unmask gan train --data photos/ --image-size 64 --channels 3 --loss hinge --spectral-norm --out runs/g64
      unmask gan train --resume runs/gan
      torchrun --nproc_per_node 4 -m unmask gan train --device auto --amp --batch-size 256 --out runs/gan4
    """
    import torch

    from detector import distributed
    from detector.device import resolve_device
    from gan.rundir import RunDir
    from gan.trainer import train

    if threads:
        torch.set_num_threads(threads)
    if (out is None) == (resume is None):
        raise click.UsageError("give exactly one of --out RUN (new run) or --resume RUN")
    try:
        if resume is not None:
            saved = RunDir(resume).config()
            config = dataclasses.replace(saved, steps=max(steps or 0, saved.steps), device=device,
                                         progress=not quiet, amp=amp)
            target = resume
        else:
            if family and generator and family != generator:
                raise ValueError(f"--generator {generator} contradicts --family {family} (use --family alone)")
            config = family_config(family or generator or "dcgan", data=data, image_size=image_size,
                                   channels=int(channels), g_width=width, z_dim=z_dim, d_width=d_width, loss=loss,
                               steps=steps or _D.steps, batch_size=batch_size, lr_g=lr_g, lr_d=lr_d,
                               spectral_norm=spectral_norm, r1=r1, label_smoothing=label_smoothing,
                               instance_noise=instance_noise, spectral_loss=spectral_loss,
                               auto_remedy=auto_remedy, seed=seed, device=device, health_every=health_every,
                               checkpoint_every=checkpoint_every, progress=not quiet, amp=amp)
            target = out
        dev = resolve_device(device)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from e
    distributed.init(dev)  # once, here at the command's entry (a no-op outside torchrun)
    try:
        result = train(config, target, resume=resume is not None)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        raise click.UsageError(str(e)) from e
    except (FloatingPointError, RuntimeError) as e:
        fail(str(e))
    finally:
        main_rank = distributed.is_main()
        distributed.cleanup()
    if not main_rank:
        return
    _report(result, config, target, report)


def _report(result, config: GanConfig, target: Path, report: Report) -> None:
    """What `gan train` prints at the end: time, quality, health warnings (GANs), the zoo."""
    q = result.quality
    report.line(f"trained {result.steps} steps in {result.seconds:.0f} s "
                f"({result.images_per_second:.0f} real images/s) -> {target}")
    if q is not None:
        fds = ", ".join(f"{fd:.1f}@{s}" for s, fd in result.fd_history)
        report.line(f"FD-FMNIST (not FID) {q.fd:.1f}  precision {q.precision:.2f}  recall {q.recall:.2f}  "
                    f"class coverage {q.coverage:.0%}\n  FD-FMNIST by step: {fds}")
    summary = {"command": "gan train", "family": config.generator, "run": target, "steps": result.steps,
               "seconds": result.seconds, "images_per_second": result.images_per_second, "metric": result.metric,
               "quality": q, "fd_history": result.fd_history, "zoo": [s.name for s in result.snapshots]}
    if config.generator in NON_GAN_GENERATORS:  # no discriminator, so no health warnings
        report.line(f"generator zoo: {', '.join(s.name for s in result.snapshots)}")
        report.done(summary)
        return
    report.line(f"health warnings: {len(result.warnings)}"
               + (f" ({', '.join(sorted({w.symptom for w in result.warnings}))}); see {target}/health.png"
                  if result.warnings else "") + _remedy_summary(result.remedies))
    report.line(f"generator zoo: {', '.join(s.name for s in result.snapshots)}")
    report.done({**summary, "warnings": [w.to_json() for w in result.warnings], "remedies": result.remedies})


def _remedy_summary(remedies: list[dict]) -> str:
    tried = [r for r in remedies if r.get("verdict") == "on trial" and r.get("rung")]
    if not tried:
        return ""
    undone = sum(r.get("verdict") == "rolled back" for r in remedies)
    return f"; auto-remedies applied: {len(tried)} ({', '.join(r['rung'] for r in tried)}), rolled back: {undone}"


@gan.command("sample")
@click.argument("run", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--n", "n", type=click.IntRange(1), default=64, show_default=True, help="How many images.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--snapshot", default=None,
              help="Zoo snapshot: index (0 = earliest, -1 = latest), name, or stage (early/middle/late/tag). "
                   "Default: the final generator.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--grid", is_flag=True, help="Also write grid.png beside the images (not counted in N).")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or cuda:N.")
def sample_cmd(run: Path, n: int, out: Path, snapshot: str | None, seed: int, grid: bool, device: str) -> None:
    """Write N generated images as PNG files (sample_00000.png ...) of the run's size and channels.

    \b
    Example:
      unmask gan sample runs/gan --n 200 --out fakes/
      unmask gan sample runs/gan --n 64 --snapshot early --out fakes_early/
    """
    from detector.imageio import save_grid, save_png
    from detector.device import resolve_device
    from gan.rundir import RunDir
    from gan.zoo import ZooError, sample

    try:
        snap = RunDir(run).snapshot(snapshot)
        g = snap.load(resolve_device(device))
    except (ZooError, ValueError) as e:
        raise click.UsageError(str(e)) from e
    out.mkdir(parents=True, exist_ok=True)
    imgs = sample(g, n, seed=seed)
    for i, img in enumerate(imgs):
        save_png(img, out / f"sample_{i:05d}.png")
    if grid:
        save_grid(imgs[:64], out / "grid.png", nrow=8, scale=2)
    click.echo(f"wrote {n} PNG files ({imgs.shape[1]}x{imgs.shape[2]}x{imgs.shape[3]}) from {snap.name} to {out}")


@gan.command("zoo")
@click.argument("run", type=click.Path(file_okay=False, exists=True, path_type=Path))
def zoo_cmd(run: Path) -> None:
    """List the generator snapshots of a run (what hardening samples from).

    \b
    Example:
      unmask gan zoo runs/gan
    """
    from gan.rundir import RunDir
    from gan.zoo import ZooError

    try:
        snaps = RunDir(run).zoo()
    except ZooError as e:
        raise click.UsageError(str(e)) from e
    for i, s in enumerate(snaps):
        click.echo(f"{i:3d}  {s.name:32s} step {s.step:7d}  family {s.family:8s} stage {s.stage}")
