"""``unmask demo``: the whole story on the embedded data (what ``make demo`` runs)."""
from __future__ import annotations

from pathlib import Path

import click

from .demo import DemoConfig
from .output import Report, jsonable, long_work


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/demo"), show_default=True,
              help="Folder for every stage's outputs (re-running resumes finished GAN and hardening stages).")
@click.option("--quick", is_flag=True, help="Tiny settings: the same stages in under 2 minutes (numbers are rough).")
@click.option("--families", is_flag=True,
              help="Every registered generator family (adds upconv-bilinear and a diffusion model to the seen "
                   "families; several times longer on a CPU).")
@click.option("--workers", type=click.IntRange(0, 64), default=DemoConfig.workers, show_default=True,
              help="Processes for the trainings and hardenings, one thread each (0: all in this process).")
@click.option("--threads", type=click.IntRange(1, 64), default=DemoConfig.threads, show_default=True,
              help="Torch intra-op threads (1 is robust on a busy 2-core machine; 2 helps only when idle).")
@long_work
def demo(out: Path, quick: bool, families: bool, workers: int, threads: int, quiet: bool, report: Report) -> None:
    """Run the end-to-end story on the embedded data: train three generator families (a dcgan GAN,
    a VAE, an upconv GAN), harden a detector against two of them, export it to ONNX, evaluate it
    (HTML report with spectral baselines, seen and unseen families), scan a mixed folder, analyse
    videos with spliced fakes, retrain against the unseen family, measure leave-one-family-out, and
    print a short summary. Under 10 minutes on 2 CPU cores.

    \b
    Example:
      unmask demo --out runs/demo
      unmask demo --quick --out runs/demo-quick
      unmask demo --families --out runs/demo-all   # every registered family
    """
    from dataclasses import replace

    from .demo import run_demo

    cfg = DemoConfig.quick() if quick else DemoConfig()
    if families:
        cfg = cfg.with_families()
    summary = run_demo(out, replace(cfg, threads=threads, workers=workers), log=report.line, quiet=quiet)
    report.done({"command": "demo", **jsonable(summary)})
