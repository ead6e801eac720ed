"""A GAN run directory, read in ONE place.

Every stage after ``unmask gan train`` (hardening, adversarial rounds, ``eval-matrix --run``, the
demo, ``gan sample``/``gan zoo``) reads a run through :class:`RunDir`; nothing else opens its
``config.json`` or weights files. The trainer writes it through the same class, so the layout is
written down once::

    config.json                resolved GanConfig + generator_args + discriminator {network, args}
    metrics.jsonl              one JSON record per line: type train | quality | warning | remedy
    health.png                 the curves of metrics.jsonl
    checkpoints/ckpt_NNNNNNN.pt  G, D, both optimizers, step, RNG and monitor state (torch.load weights_only)
    discriminator.safetensors  final D (logit > 0 = real)
    generator.safetensors      final G
    samples/                   sample grids (fixed noise) and progress.png
    zoo/index.json, zoo/*.safetensors   generator snapshots (see :mod:`gan.zoo`)
    quality/                   cached FD-FMNIST feature network

Training checkpoints (optimizer, step, RNG) are separate files from the final weights that later
stages read (STYLE.md habit 6). Loading rebuilds every network from its registry name and the
arguments in ``config.json``; nothing is unpickled except the checkpoint's plain tensors
(``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from torch import nn

from detector.atomic import write_json, write_text

from .config import GanConfig
from .generators import generator_family
from .zoo import Snapshot, ZooError, load_zoo

__all__ = ["RunDir", "NotARunDir", "CheckpointError"]

KEEP_CHECKPOINTS = 2


class NotARunDir(ZooError, FileNotFoundError):
    """The folder holds no ``config.json``: it is not a GAN run directory."""


class CheckpointError(RuntimeError):
    """A training checkpoint exists but cannot be read."""


class RunDir:
    """One GAN run directory: its config, metrics, checkpoints, zoo and final networks."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def quality_cache(self) -> Path:
        return self.path / "quality"

    @property
    def discriminator_path(self) -> Path:
        return self.path / "discriminator.safetensors"

    @property
    def generator_path(self) -> Path:
        return self.path / "generator.safetensors"

    def is_run(self) -> bool:
        """True when the folder holds a ``config.json`` (a started run)."""
        return self.config_path.is_file()

    # ------------------------------------------------------------------ config
    def config_dict(self) -> dict:
        """``config.json`` as written (resolved generator args, the discriminator's network and args)."""
        if not self.config_path.is_file():
            raise NotARunDir(f"{self.path}: not a GAN run directory (no config.json); train one with "
                             "`unmask gan train --out RUN`")
        return json.loads(self.config_path.read_text())

    def config(self) -> GanConfig:
        return GanConfig.from_json(self.config_dict())

    def training_config(self, requested: GanConfig, resume: bool) -> GanConfig:
        """The config ``gan train`` trains with: the saved one when resuming (see
        :meth:`GanConfig.for_resume`); refuses to start a new run over a started one."""
        if resume:
            if not self.is_run():
                raise FileNotFoundError(f"--resume {self.path}: no config.json there (nothing to resume)")
            return requested.for_resume(self.config())
        if self.is_run() and self.latest_checkpoint() is not None:
            raise FileExistsError(f"{self.path} already holds a GAN run; use --resume to continue it or choose "
                                  "a new --out")
        return requested

    def write_config(self, config: GanConfig) -> None:
        write_json(self.config_path, config.to_json())

    # ------------------------------------------------------------------ metrics
    def read_metrics(self, up_to_step: int | None = None) -> list[dict]:
        """The records of ``metrics.jsonl`` (those at or before ``up_to_step`` when given)."""
        if not self.metrics_path.is_file():
            return []
        recs = [json.loads(line) for line in self.metrics_path.read_text().splitlines()]
        return recs if up_to_step is None else [r for r in recs if r.get("step", 0) <= up_to_step]

    def write_metrics(self, records: list[dict]) -> None:
        write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"ckpt_{step:07d}.pt"

    def latest_checkpoint(self) -> Path | None:
        cks = sorted(self.checkpoints.glob("ckpt_*.pt")) if self.checkpoints.is_dir() else []
        return cks[-1] if cks else None

    def prune_checkpoints(self, keep: int = KEEP_CHECKPOINTS) -> None:
        for old in sorted(self.checkpoints.glob("ckpt_*.pt"))[:-keep]:
            old.unlink()

    def read_checkpoint(self, path: Path) -> dict:
        """A checkpoint's state (plain tensors and numbers; ``weights_only``)."""
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same refusal
            raise CheckpointError(f"{path}: cannot read checkpoint ({e})") from e

    # ------------------------------------------------------------------ generators
    def zoo(self) -> list[Snapshot]:
        """Every zoo snapshot, ordered by step (:class:`ZooError` when there are none)."""
        return load_zoo(self.path)

    def final_generator(self) -> Snapshot:
        """The run's final generator (``generator.safetensors``) described as a :class:`Snapshot`."""
        cfg = self._finished("generator.safetensors", "training has not finished; use a zoo snapshot")
        fam = generator_family(cfg["generator"], cfg["generator_args"])
        return Snapshot("final", int(cfg["steps"]), cfg["generator"], fam,
                        dict(cfg["generator_args"]), self.generator_path, "final", None)

    def snapshot(self, key: str | int | None = None) -> Snapshot:
        """``None`` -> the final generator; an int (or digits) -> zoo index (negative counts from the end);
        otherwise a snapshot name or stage (``early``/``middle``/``late``/a round tag: the latest of it)."""
        if key is None:
            return self.final_generator()
        zoo = self.zoo()
        if isinstance(key, int) or re.fullmatch(r"-?\d+", str(key)):
            i = int(key)
            if not -len(zoo) <= i < len(zoo):
                raise ZooError(f"snapshot index {i} out of range: the zoo has {len(zoo)} snapshots "
                               f"({', '.join(s.name for s in zoo)})")
            return zoo[i]
        hits = [s for s in zoo if key in (s.name, s.stage, s.tag)]
        if not hits:
            raise ZooError(f"no snapshot {key!r} in {self.path}; known: {', '.join(s.name for s in zoo)}")
        return hits[-1]

    # ------------------------------------------------------------------ discriminator
    def discriminator(self, device: str | torch.device = "cpu") -> tuple[nn.Module, str, dict]:
        """The final discriminator (logit > 0 = real) as ``(net in eval mode, network name, args)``."""
        from safetensors.torch import load_file

        from detector.nets import create_network

        cfg = self.config_dict()
        if "discriminator" not in cfg:
            raise ZooError(f"{self.path} is a {cfg.get('family', cfg.get('generator'))} run, not a GAN: it has no "
                           "discriminator to harden (harden from a GAN run and add this one's zoo as fakes)")
        d = self._finished("discriminator.safetensors", "training has not finished")["discriminator"]
        net = create_network(d["network"], **d["args"])
        try:
            net.load_state_dict(load_file(self.discriminator_path))
        except RuntimeError as e:
            raise ZooError(f"{self.discriminator_path}: does not match {d['network']}({d['args']}): {e}") from e
        return net.to(device).eval(), d["network"], dict(d["args"])

    def _finished(self, weights: str, missing: str) -> dict:
        """``config.json`` of a run whose final ``weights`` file exists; ZooError when either is absent."""
        cfg = self.config_dict()
        if not (self.path / weights).is_file():
            raise ZooError(f"{self.path}: no {weights} ({missing})")
        return cfg
