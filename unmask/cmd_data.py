"""``unmask data``: inspect and export the built-in real images."""
from __future__ import annotations

from pathlib import Path

import click


@click.group()
def data() -> None:
    """The real images unmask ships with (Fashion-MNIST subset) and any source you give it.

    \b
    Example:
      unmask data info
      unmask data export --split test --n 200 --out real_pngs/
    """


def _open(source: str, split: str):
    """open_source, with a bad source reported as a usage error (exit code 2) naming the option."""
    from detector.data import open_source
    from detector.decode import UnreadableImage

    try:
        return open_source(source, split=split)
    except (FileNotFoundError, ValueError, UnreadableImage) as e:
        raise click.BadParameter(str(e), param_hint="'--source'") from None


@data.command("info")
@click.option("--source", default="fashion-mnist", show_default=True,
              help="fashion-mnist[:embedded|:full|:PATH], a folder of images, or a video file.")
def info(source: str) -> None:
    """Describe an image source: where it comes from, how many images, their labels.

    \b
    Example:
      unmask data info --source fashion-mnist:embedded
    """
    for split in ("train", "test") if source.startswith("fashion-mnist") else ("train",):
        src = _open(source, split)
        click.echo(f"{split}: {len(src)} images from {src.name}")
        classes = getattr(src, "classes", None)
        if classes is not None:
            import numpy as np

            counts = np.bincount(classes.numpy(), minlength=10)
            click.echo(f"  per class: {counts.tolist()}  checksum: {getattr(src, 'checksum', '')[:16]}")


@data.command("export")
@click.option("--source", default="fashion-mnist:embedded", show_default=True)
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--n", "n", type=click.IntRange(1), default=100, show_default=True, help="How many images.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def export(source: str, split: str, n: int, out: Path) -> None:
    """Write real images of a source as PNG files (e.g. a real-only folder to scan).

    \b
    Example:
      unmask data export --split test --n 200 --out real_pngs/
    """
    from detector.imageio import save_png

    src = _open(source, split)
    out.mkdir(parents=True, exist_ok=True)
    n = min(n, len(src))
    for i in range(n):
        img, _ = src[i]
        save_png(img, out / f"{split}_{i:05d}.png")
    click.echo(f"wrote {n} PNG files to {out}")


@data.command("video")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Video file to write (.avi).")
@click.option("--fakes", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of generated images to splice in (e.g. from `unmask gan sample`); none: a clean video.")
@click.option("--source", default="fashion-mnist:embedded", show_default=True, help="Real images for the mosaic.")
@click.option("--frames", type=click.IntRange(1, 100_000), default=60, show_default=True)
@click.option("--fps", type=click.FloatRange(1, 240), default=12.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def video(out: Path, fakes: Path | None, source: str, frames: int, fps: float, seed: int) -> None:
    """Build a test video with known ground truth: 4x4 mosaics of held-out real images, with the
    images of --fakes spliced into one mosaic cell (row 1, col 1) during the middle third of the
    frames. The truth is written beside it as <out>.truth.json.

    \b
    Example:
      unmask gan sample runs/gan --n 100 --out runs/fakes
      unmask data video --fakes runs/fakes --out runs/clip.avi
      unmask video runs/clip.avi --detector runs/detector --out runs/video --every 1
    """
    import torch

    from detector.data import load_folder_images
    from unmask.synth import splice_video

    real_src = _open(source, "test")
    if len(real_src) == 0:
        raise click.UsageError(f"--source {source}: no images")
    real = torch.stack([real_src[i][0] for i in range(min(len(real_src), 512))])
    fake = None
    if fakes is not None:
        try:
            fake, _ = load_folder_images([fakes], real.shape[-1], real.shape[1])
        except ValueError as e:
            raise click.UsageError(f"--fakes: {e}") from None
    truth = splice_video(out, real, fake, frames=frames, fps=fps, seed=seed)
    lo, hi = truth["fake_frames"]
    what = f"generated content in frames {lo}-{hi - 1}, cell box y,x,h,w={truth['box_yxhw']}" if fake is not None \
        else "no generated content"
    click.echo(f"wrote {out} ({frames} frames at {fps:g} fps; {what}) and {out}.truth.json")
