"""Cross-generator matrix: one detector per generator, each tested on every generator.

Row ``i`` is the detector fitted on generator ``i``'s training fakes (plus real training images);
column ``j`` is its AUC on generator ``j``'s held-out fakes against the held-out real images. The
diagonal is in-distribution; everything off it answers "does it work on a generator it never saw?"
(the transfer question of Wang et al., CVPR 2020, and of CNNDetection's users).

The fitting is a callable, ``fit_detector(real_train, fake_train) -> Detector``, so this module does
not depend on how detectors are made: the CLI passes unmask's hardening, tests pass a tiny trainer.
:func:`finetune_detector` is a minimal trainer for folder inputs: binary cross-entropy fine-tuning
of a copy of a base detector, or of a fresh ``dcgan_d``, in the one training loop
(:func:`detector.train.loop.fit_bce`). Train/test splits are :func:`detector.train.splits.split_train_test`.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from detector.artifact import Detector, spec_for_network
from detector.nets import create_network
from detector.preprocess import fit
from detector.progress import track
from detector.train.loop import fit_bce
from detector.train.metrics import accuracy, auc, pair
from detector.train.splits import split_train_test

from .scoring import score_images

__all__ = ["FitDetector", "MatrixResult", "split_train_test", "cross_generator_matrix", "finetune_detector",
           "FinetuneConfig"]

FitDetector = Callable[[torch.Tensor, torch.Tensor], Detector]


@dataclass(frozen=True)
class MatrixResult:
    names: list              # generator names: rows (trained on) and columns (tested on)
    auc: list                # auc[i][j]: detector fitted on names[i], tested on names[j]
    accuracy: list           # same layout, at each detector's own threshold
    n_train: dict            # name -> number of training fakes
    n_test: dict             # name -> number of test fakes; "real" -> number of test reals

    def to_json(self) -> dict:
        return asdict(self)

    def off_diagonal_mean(self) -> float:
        a = np.asarray(self.auc, dtype=np.float64)
        n = len(a)
        return float((a.sum() - np.trace(a)) / (n * n - n)) if n > 1 else float("nan")


def _stack(images: Sequence[torch.Tensor], size: int, channels: int) -> torch.Tensor:
    """Fit native-size images to ``(N, C, S, S)`` training inputs (centre crop, no stretching)."""
    return torch.stack([fit(im, size, channels, "crop") for im in images])


def cross_generator_matrix(real_train: Sequence[torch.Tensor], real_test: Sequence[torch.Tensor],
                           fakes: dict[str, tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]],
                           fit_detector: FitDetector, size: int, channels: int, progress: bool = True
                           ) -> MatrixResult:
    """Fit one detector per entry of ``fakes`` (name -> (train, test)) and test it on all of them.

    ``fit_detector`` receives ``(N, C, size, size)`` tensors in [0, 1]; testing scores the native
    test images through each detector's own preprocessing.
    """
    if len(fakes) < 2:
        raise ValueError(f"a cross-generator matrix needs at least 2 generators, got {len(fakes)}")
    if len(real_train) == 0 or len(real_test) == 0:
        raise ValueError("a cross-generator matrix needs real training and real test images")
    names = list(fakes)
    xr = _stack(real_train, size, channels)
    aucs = [[0.0] * len(names) for _ in names]
    accs = [[0.0] * len(names) for _ in names]
    for i, a in enumerate(track(names, desc="matrix", leave=False, enabled=progress)):
        det = fit_detector(xr, _stack(fakes[a][0], size, channels))
        thr = det.spec.threshold
        sr = score_images(det, list(real_test))
        for j, b in enumerate(names):
            sf = score_images(det, list(fakes[b][1]))
            y, s = pair(sr, sf)
            aucs[i][j] = auc(y, s)
            accs[i][j] = accuracy(y, s, thr)
    return MatrixResult(names, aucs, accs, {k: len(v[0]) for k, v in fakes.items()},
                        {"real": len(real_test), **{k: len(v[1]) for k, v in fakes.items()}})


@dataclass(frozen=True)
class FinetuneConfig:
    """Minimal detector fitting for the matrix when no hardening pipeline is used."""

    steps: int = 200
    batch_size: int = 64
    lr: float = 2e-4
    seed: int = 0
    width: int = 32            # for a fresh dcgan_d (no base detector)
    device: str = "cpu"


def finetune_detector(real: torch.Tensor, fake: torch.Tensor, base: Detector | None = None,
                      config: FinetuneConfig = FinetuneConfig()) -> Detector:
    """Binary cross-entropy training (fake = 1) of a copy of ``base`` (or a fresh ``dcgan_d``) on
    ``(N, C, S, S)`` real and fake tensors; the threshold stays 0.5 (not chosen on data)."""
    if len(real) == 0 or len(fake) == 0:
        raise ValueError("fine-tuning needs real and fake images")
    torch.manual_seed(config.seed)  # a fresh network's initial weights
    if base is not None:
        net, spec = copy.deepcopy(base.net), base.spec
    else:
        size, ch = int(real.shape[-1]), int(real.shape[1])
        args = dict(in_channels=ch, image_size=size, width=config.width, norm="batch")
        net = create_network("dcgan_d", **args)
        spec = spec_for_network("dcgan_d", args, size, ch, policy="resize")
    x = torch.cat([real, fake])
    y = torch.cat([torch.zeros(len(real)), torch.ones(len(fake))])
    fit_bce(net, x, y, config.steps, config.batch_size, config.lr, spec.mean, spec.std, betas=(0.5, 0.999),
            generator=torch.Generator().manual_seed(config.seed), device=config.device)
    prov = dict(spec.provenance)
    prov["matrix_finetune"] = {"steps": config.steps, "lr": config.lr, "seed": config.seed,
                               "n_real": len(real), "n_fake": len(fake)}
    return Detector(net.cpu(), replace(spec, provenance=prov, threshold=0.5,
                                       threshold_rule="default 0.5 (matrix fine-tune)"), "cpu")
