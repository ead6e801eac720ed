"""The detector training loop: binary cross-entropy (logit > 0 = fake) on batches in [0, 1].

One loop, :func:`train_steps`, serves every way unmask fits a detector; what differs is where a
step's batch comes from:

* :func:`train_detector` (hardening and retraining): balanced batches, half real and half fake,
  the fake half shared among generator sets by weight, augmented with the CNNDetection recipe
  (:mod:`detector.train.augment`); cosine learning-rate decay (Loshchilov & Hutter, "SGDR",
  ICLR 2017); checkpoints and resume; data-parallel under ``torchrun``.
* :func:`fit_bce` (the cross-generator matrix's minimal fine-tune, test fixtures): uniformly
  drawn batches of a labelled tensor, no augmentation.

Reproducibility: a step's batch and augmentations come from RNGs seeded by ``(seed, step)``, so a
resumed run follows the same path as an uninterrupted one, and the learning rate is a function of
the step alone. Under ``torchrun`` the network is wrapped in DistributedDataParallel (gradients
averaged over ranks): ``batch_size`` is the global batch, drawn from the step's seed and shared
round-robin over the ranks, each augmenting its share with its own RNG; rank 0 alone writes
checkpoints, which hold no per-rank state, so a run resumes under any number of processes. The
process group is set up once by the command's entry point (``detector.distributed.init``); the
loop only uses it.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed as dist_
from ..atomic import torch_save
from ..device import amp_enabled, autocast, resolve_device, to_channels_last
from ..preprocess import normalize
from ..progress import Progress
from .augment import augment_batch
from .config import HardenConfig

__all__ = ["BatchFn", "CheckpointMismatch", "ProcessGroupMissing", "require_process_group", "train_steps",
           "random_batches", "fit_bce", "balanced_batches", "train_detector"]

BatchFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # step -> (x (B, C, S, S) in [0, 1], y (B,) 0/1)


class CheckpointMismatch(ValueError):
    """A checkpoint to resume from that was made on different data or settings."""


class ProcessGroupMissing(RuntimeError):
    """Launched as one of several processes, but no process group was set up at the entry point."""


def require_process_group() -> tuple[int, int, bool]:
    """``(rank, world size, is main)`` of the process group the command's entry point joined."""
    if not dist_.is_distributed() and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise ProcessGroupMissing("WORLD_SIZE > 1 but no process group: call detector.distributed.init() "
                                  "once at the command's entry point before training")
    return dist_.rank(), dist_.world_size(), dist_.is_main()


def train_steps(net: nn.Module, opt: torch.optim.Optimizer, batches: BatchFn, mean: Sequence[float],
                std: Sequence[float], steps: int, *, start: int = 0, device: torch.device = torch.device("cpu"),
                model: nn.Module | None = None, amp: bool = False, lr_at: Callable[[int], float] | None = None,
                extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
                after_step: Callable[[int], None] | None = None, progress: bool = False,
                desc: str = "train") -> float | None:
    """Steps ``start .. steps - 1`` of BCE training of ``net`` (through ``model``, its DDP wrapper
    if any) on ``batches(step)``; returns the running (exponential) mean of the loss."""
    model = net if model is None else model
    net.train()
    bar = Progress(range(start, steps), total=steps, initial=start, desc=desc, unit="step", enabled=progress)
    running = None
    for step in bar:
        x, y = batches(step)
        if lr_at is not None:  # a function of the step alone, so a resumed run gets the same schedule
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
        x = normalize(x.to(device), mean, std)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(x).float()
        loss = F.binary_cross_entropy_with_logits(logits, y.to(device))
        if extra_loss is not None:
            loss = loss + extra_loss(net)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = loss.item()
        running = lv if running is None else 0.95 * running + 0.05 * lv
        if (step + 1) % 20 == 0:
            bar.set_postfix(loss=f"{running:.4f}")
        if after_step is not None:
            after_step(step)
    bar.close()
    return running


def random_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
                   generator: torch.Generator | None = None) -> BatchFn:
    """Batches of ``batch_size`` indices drawn uniformly with replacement (from torch's global RNG
    when ``generator`` is None)."""
    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(x), (batch_size,), generator=generator)
        return x[idx], y[idx]

    return batch


def fit_bce(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int, lr: float,
            mean: Sequence[float], std: Sequence[float], *, betas: tuple[float, float] = (0.9, 0.999),
            generator: torch.Generator | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Adam on uniformly drawn batches of ``x`` ``(N, C, S, S)`` in [0, 1] with labels ``y`` ``(N,)``
    (1 = fake); ``net`` is trained in place on ``device`` and left in eval mode."""
    dev = resolve_device(device) if isinstance(device, str) else device
    net.to(dev).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=betas)
    train_steps(net, opt, random_batches(x, y, min(batch_size, len(x)), generator), mean, std, steps, device=dev)
    net.eval()
    return net


def _balanced(real: torch.Tensor, fakes: Sequence[torch.Tensor], weights: np.ndarray, half: int,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ri = torch.randint(0, len(real), (half,), generator=gen)
    which = torch.multinomial(torch.as_tensor(weights, dtype=torch.float), half, replacement=True, generator=gen)
    parts = []
    for k, src in enumerate(fakes):
        m = int((which == k).sum())
        if m:
            parts.append(src[torch.randint(0, len(src), (m,), generator=gen)])
    x = torch.cat([real[ri]] + parts)
    y = torch.cat([torch.zeros(half), torch.ones(len(x) - half)])
    return x, y


def balanced_batches(real: torch.Tensor, fakes: Sequence[torch.Tensor], weights: np.ndarray,
                     config: HardenConfig, rank: int = 0, world: int = 1) -> BatchFn:
    """Hardening's batches: half real, half fake (fake sets drawn by ``weights``), seeded by
    ``(config.seed, step)``; under ``world`` processes, this rank's share, augmented with its own RNG."""
    half = config.batch_size // 2

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        rng = np.random.default_rng([config.seed, step])
        x, y = _balanced(real, fakes, weights, half, gen)
        if world > 1:  # this rank's share of the global batch, augmented with its own RNG
            x, y = x[rank::world], y[rank::world]
            rng = np.random.default_rng([config.seed, step, rank])
        return augment_batch(x, config.augment, rng), y

    return batch


def _resume(net: nn.Module, opt: torch.optim.Optimizer, checkpoint: Path, data_id: str,
            log: Callable[[str], None]) -> int:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if state.get("data_id", "") != data_id:
        raise CheckpointMismatch(f"{checkpoint}: checkpoint was made on different data or settings; "
                                 "start afresh without --resume or use another output folder")
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    log(f"resuming hardening from step {int(state['step'])} ({checkpoint})")
    return int(state["step"])


def train_detector(net: nn.Module, real_train: torch.Tensor, fake_train: Mapping[str, torch.Tensor],
                   config: HardenConfig, mean: Sequence[float], std: Sequence[float],
                   checkpoint: Path | None = None, resume: bool = False, weights: Mapping[str, float] | None = None,
                   data_id: str = "", log: Callable[[str], None] = print, progress: bool = True,
                   extra_loss: Callable[[nn.Module], torch.Tensor] | None = None) -> int:
    """Fine-tune ``net`` (logit > 0 = fake) with BCE on augmented balanced batches.

    ``weights`` give each fake set's share of the fake half (default equal). Writes a checkpoint
    every ``config.checkpoint_every`` steps; with ``resume`` continues from it. Returns the step it
    resumed from (0 for a fresh run).
    """
    device = resolve_device(config.device)
    rank, world, main = require_process_group()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be divisible by the "
                         f"{world} processes")
    use_amp = amp_enabled(device, config.amp, warn=main)
    if not main:
        log = lambda *a, **k: None  # noqa: E731
    names = list(fake_train)
    if not names:
        raise ValueError("no fake images to train on")
    if len(real_train) == 0 or any(len(fake_train[n]) == 0 for n in names):
        raise ValueError("every training set needs at least one image")
    w = np.array([float((weights or {}).get(n, 1.0)) for n in names])
    w = w / w.sum()
    to_channels_last(net.to(device), device)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
    start = 0
    if resume and checkpoint is not None and checkpoint.is_file():
        start = _resume(net, opt, checkpoint, data_id, log)

    def save(step: int) -> None:
        if checkpoint is not None and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps):
            dist_.broadcast_buffers(net)  # rank 0's BatchNorm statistics everywhere: what is saved is what all hold
            if main:
                torch_save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step + 1, "data_id": data_id},
                           checkpoint)

    cosine = lambda step: config.lr * 0.5 * (1.0 + math.cos(math.pi * step / max(1, config.steps)))  # noqa: E731
    train_steps(net, opt, balanced_batches(real_train, [fake_train[n] for n in names], w, config, rank, world),
                mean, std, config.steps, start=start, device=device,
                model=dist_.wrap_ddp(net, device),  # gradients averaged over ranks (the plain net when not distributed)
                amp=use_amp, lr_at=cosine if config.cosine else None, extra_loss=extra_loss, after_step=save,
                progress=progress and main, desc="harden")
    dist_.broadcast_buffers(net)
    net.eval()
    return start
