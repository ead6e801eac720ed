"""The replay buffer: a uint8 sample of every image set a detector was trained on, kept beside it.

Written by hardening (``replay.safetensors``, ignored by :func:`detector.load`) and read by
retraining, which rehearses it while learning a new generator: experience replay against
catastrophic forgetting (Rolnick et al., "Experience Replay for Continual Learning", NeurIPS 2019;
Robins, "Catastrophic forgetting, rehearsal and pseudorehearsal", 1995).

Format: safetensors with ``real.{train,val,test}`` and ``fake<i>.{train,val,test}`` uint8 tensors
``(N, C, S, S)``; the metadata holds ``format = unmask-replay`` and the generator names in order.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ..atomic import save_safetensors
from .degrade import quantize
from .splits import Splits

__all__ = ["REPLAY_FILE", "ReplayError", "save_replay", "load_replay"]

REPLAY_FILE = "replay.safetensors"


class ReplayError(ValueError):
    """A file that is not an unmask replay buffer."""


def save_replay(path: Path, real: Splits, fakes: Mapping[str, Splits], per_generator: int, seed: int) -> None:
    """Keep a seeded sample of every set (uint8): ``4 * per_generator`` reals and ``per_generator``
    fakes per generator, per split."""
    g = np.random.default_rng(seed + 7919)
    tensors: dict[str, torch.Tensor] = {}

    def take(x: torch.Tensor, n: int) -> torch.Tensor:
        idx = np.sort(g.permutation(len(x))[: min(n, len(x))])
        return quantize(x[torch.from_numpy(idx)])

    names = list(fakes)
    for split in ("train", "val", "test"):
        tensors[f"real.{split}"] = take(getattr(real, split), 4 * per_generator)
        for i, name in enumerate(names):
            tensors[f"fake{i}.{split}"] = take(getattr(fakes[name], split), per_generator)
    save_safetensors(tensors, path, metadata={"format": "unmask-replay", "generators": json.dumps(names)})


def load_replay(path: Path) -> tuple[Splits, dict[str, Splits]]:
    """Inverse of :func:`save_replay`: the real sample and each generator's sample, as float [0, 1]."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no replay buffer (retraining needs the {REPLAY_FILE} written by harden)")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != "unmask-replay":
            raise ReplayError(f"{path}: not an unmask replay buffer")
        names = json.loads(meta["generators"])
        t = {k: f.get_tensor(k).float().div_(255.0) for k in f.keys()}
    real = Splits(t["real.train"], t["real.val"], t["real.test"])
    fakes = {n: Splits(t[f"fake{i}.train"], t[f"fake{i}.val"], t[f"fake{i}.test"]) for i, n in enumerate(names)}
    return real, fakes
