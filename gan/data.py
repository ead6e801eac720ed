"""The images a GAN trains on, and the reference images its FD-FMNIST quality is measured against.

Fashion-MNIST (Xiao et al., 2017) measures against its held-out test split; any other source (a
folder, a video) against a fixed-seed sample of its own training images. Each epoch visits the
training images in a fixed-seed permutation, shared by every rank under torchrun as
DistributedSampler's is.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import GanConfig

__all__ = ["TrainData", "load_data", "epoch_permutation"]


@dataclass(frozen=True)
class TrainData:
    """``train`` (N, C, S, S) and ``reference`` (M, C, S, S) images in [0, 1]; ``labelled``: the source
    has class labels (the diversity probe then also counts classes)."""

    train: torch.Tensor
    reference: torch.Tensor
    labelled: bool


def load_data(config: GanConfig) -> TrainData:
    """The training and reference images of ``config.data`` at the run's size and channels."""
    from detector.data import TensorSource, open_source

    src = open_source(config.data, size=config.image_size, channels=config.channels, split="train")
    labelled = getattr(src, "classes", None) is not None
    if isinstance(src, TensorSource):
        train = src.images
    else:
        from torch.utils.data import DataLoader

        from detector.data import collate_skip_none

        src.skip_errors = True
        batches = [b[0] for b in DataLoader(src, batch_size=256, collate_fn=collate_skip_none) if b is not None]
        if not batches:
            raise ValueError(f"{config.data}: no readable images")
        train = torch.cat(batches)
    if len(train) < config.batch_size:
        raise ValueError(f"{config.data}: only {len(train)} images, fewer than one batch of {config.batch_size}")
    if config.data.startswith("fashion-mnist"):
        ref = open_source(config.data, size=config.image_size, channels=config.channels, split="test").images
    else:
        g = torch.Generator().manual_seed(12345)
        ref = train[torch.randperm(len(train), generator=g)[:config.quality_ref]]
    return TrainData(train.contiguous(), ref[:config.quality_ref].contiguous(), labelled)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the ``n`` training images in ``epoch`` (the same on every rank and on resume)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
