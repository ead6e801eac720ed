"""Adversarial rounds, the generator's side: train a run's latest generator further against a
*fixed* detector, so that hardening can meet the fakes of a generator that has adapted to it (the
arms race of Goodfellow et al., NeurIPS 2014, with the detector frozen while the generator catches
up). The new snapshots join the run's zoo, tagged with the round.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import torch
from torch import nn

from detector.device import resolve_device
from detector.progress import track

from .data import load_data
from .losses import create_loss
from .rundir import RunDir
from .spectral import spectral_loss as _spectral_loss
from .zoo import Snapshot, save_snapshot

__all__ = ["continue_training"]

_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def continue_training(run_dir: str | os.PathLike, discriminator: nn.Module, steps: int, tag: str, *,
                      device: str = "cpu", lr: float | None = None, seed: int | None = None,
                      snapshots: int = 2, progress: bool = False) -> list[Snapshot]:
    """Train the run's latest generator further against a *fixed* ``discriminator`` (logit > 0 = real).

    Used by adversarial hardening rounds: G learns to fool the given D; ``snapshots`` new
    snapshots (evenly spaced, the last at the end) join the zoo named ``<generator>_<tag>_sNNNNNN``.
    The caller's discriminator is not modified (its parameters are frozen during the call, then
    restored; it runs in eval mode).
    """
    if not _TAG.match(tag):
        raise ValueError(f"tag must match [a-z0-9][a-z0-9_-]*, not {tag!r}")
    if steps < 1 or snapshots < 1:
        raise ValueError("steps and snapshots must be >= 1")
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    c, zoo = run.config(), run.zoo()
    base = max(zoo, key=lambda s: (s.step, s.name))
    dev = resolve_device(device)
    G = base.load(dev).train()
    seed = c.seed + base.step + 7 if seed is None else seed
    rng = torch.Generator().manual_seed(seed)
    loss = create_loss(c.loss)
    opt = torch.optim.Adam(G.parameters(), lr=lr or c.lr_g, betas=(c.beta1, c.beta2))
    real_x = load_data(c).train if c.spectral_loss > 0 else None
    flags = [p.requires_grad for p in discriminator.parameters()]
    was_training = discriminator.training
    d_dev = next(discriminator.parameters()).device
    discriminator.eval().requires_grad_(False)
    marks = {round(steps * (i + 1) / snapshots) for i in range(snapshots)}
    out: list[Snapshot] = []
    try:
        for k in track(range(1, steps + 1), desc=f"gan {tag}", unit="step", enabled=progress):
            z = torch.randn(c.batch_size, c.z_dim, generator=rng).to(dev)
            fake = G(z)
            loss_g = loss.g_loss(discriminator(fake.to(d_dev)))
            if real_x is not None:
                idx = torch.randint(0, len(real_x), (c.batch_size,), generator=rng)
                loss_g = loss_g + c.spectral_loss * _spectral_loss(fake, real_x[idx].to(dev) * 2 - 1)
            opt.zero_grad(set_to_none=True)
            loss_g.backward()
            opt.step()
            if not math.isfinite(loss_g.item()):
                raise FloatingPointError(f"continue_training {tag}: loss not finite at step {k}")
            if k in marks:
                step = base.step + k
                out.append(save_snapshot(run_dir, G, f"{c.generator}_{tag}_s{step:06d}", step, c.generator,
                                         c.resolved_generator_args(), stage=tag, tag=tag))
    finally:
        for p, f in zip(discriminator.parameters(), flags):
            p.requires_grad_(f)
        discriminator.train(was_training)
    return out
