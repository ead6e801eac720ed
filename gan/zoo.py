"""The generator zoo: snapshots of G taken along training (early, middle, late, and any adversarial
rounds), each a ``safetensors`` file described by ``RUN/zoo/index.json``. Hardening samples from
all of them so the detector sees the range of artifacts a generator makes as it learns.

``index.json``::

    {"format_version": 1, "snapshots": [{"name": "dcgan_early_s000500", "file": "dcgan_early_s000500.safetensors",
      "step": 500, "generator": "dcgan", "generator_args": {...}, "family": "dcgan", "stage": "early", "tag": null}]}

Loading rebuilds each generator from its registry name and arguments; nothing is unpickled. The run's
final generator and discriminator, and snapshot look-up by name or stage, are :class:`gan.rundir.RunDir`'s.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from detector.atomic import save_safetensors, write_json

from .generators import create_generator, generator_family

__all__ = ["Snapshot", "load_zoo", "save_snapshot", "sample", "save_sample_grids", "ZooError", "ZOO_FORMAT_VERSION"]

ZOO_FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ZooError(RuntimeError):
    """A run directory's zoo or discriminator is missing or inconsistent."""


@dataclass(frozen=True)
class Snapshot:
    """One generator snapshot in a run's zoo."""

    name: str
    step: int
    generator_name: str
    family: str
    generator_args: dict = field(default_factory=dict, compare=False)
    path: Path = Path()
    stage: str = ""
    tag: str | None = None

    @property
    def z_dim(self) -> int:
        return int(self.generator_args["z_dim"])

    def load(self, device: str | torch.device = "cpu") -> nn.Module:
        """Rebuild the generator and load its weights (strictly); returned in eval mode."""
        from safetensors.torch import load_file

        if not self.path.is_file():
            raise ZooError(f"snapshot {self.name!r}: weights file {self.path} is missing")
        net = create_generator(self.generator_name, **self.generator_args)
        try:
            net.load_state_dict(load_file(self.path))
        except (RuntimeError, OSError) as e:
            raise ZooError(f"snapshot {self.name!r}: cannot load {self.path}: {e}") from e
        return net.to(device).eval()

    def to_json(self) -> dict:
        return {"name": self.name, "file": self.path.name, "step": self.step, "generator": self.generator_name,
                "generator_args": self.generator_args, "family": self.family, "stage": self.stage, "tag": self.tag}


def _index_path(run_dir: Path) -> Path:
    return Path(run_dir) / "zoo" / "index.json"


def _read_index(run_dir: Path) -> list[dict]:
    p = _index_path(run_dir)
    if not p.is_file():
        return []
    try:
        idx = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ZooError(f"{p}: not valid JSON ({e})") from e
    if idx.get("format_version") != ZOO_FORMAT_VERSION:
        raise ZooError(f"{p}: unsupported zoo format_version {idx.get('format_version')!r}")
    return list(idx["snapshots"])


def load_zoo(run_dir: str | os.PathLike) -> list[Snapshot]:
    """All snapshots of a run, ordered by step (raises :class:`ZooError` when the run has none)."""
    run_dir = Path(run_dir)
    entries = _read_index(run_dir)
    if not entries:
        raise ZooError(f"{run_dir}: no generator zoo (expected {_index_path(run_dir)}); train a GAN there first")
    snaps = [Snapshot(e["name"], int(e["step"]), e["generator"],
                      e.get("family") or generator_family(e["generator"], e["generator_args"]),
                      dict(e["generator_args"]), run_dir / "zoo" / e["file"], e.get("stage", ""), e.get("tag"))
             for e in entries]
    return sorted(snaps, key=lambda s: (s.step, s.name))


def save_snapshot(run_dir: str | os.PathLike, generator: nn.Module, name: str, step: int, generator_name: str,
                  generator_args: dict, stage: str = "", tag: str | None = None) -> Snapshot:
    """Write ``generator``'s weights into the zoo and add (or replace) its index entry."""
    if not _NAME.match(name):
        raise ValueError(f"invalid snapshot name {name!r}")
    run_dir = Path(run_dir)
    snap = Snapshot(name, int(step), generator_name, generator_family(generator_name, generator_args),
                    dict(generator_args), run_dir / "zoo" / f"{name}.safetensors", stage, tag)
    save_safetensors(generator.state_dict(), snap.path, metadata={"generator": generator_name, "step": str(step)})
    entries = [e for e in _read_index(run_dir) if e["name"] != name] + [snap.to_json()]
    entries.sort(key=lambda e: (e["step"], e["name"]))
    write_json(_index_path(run_dir), {"format_version": ZOO_FORMAT_VERSION, "snapshots": entries})
    return snap


@torch.no_grad()
def sample(snapshot_or_generator: Snapshot | nn.Module, n: int, seed: int = 0, z_dim: int | None = None,
           batch_size: int = 256, device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` images ``(N, C, H, W)`` float in [0, 1] from fixed-seed noise (same seed -> same images)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    if isinstance(snapshot_or_generator, Snapshot):
        g = snapshot_or_generator.load(device)
    else:
        g = snapshot_or_generator
    z_dim = z_dim or getattr(g, "z_dim", None)
    if z_dim is None:
        raise ValueError("the generator has no z_dim attribute: pass z_dim")
    dev = next(g.parameters()).device
    was_training = g.training
    g.eval()
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, z_dim, generator=gen)
    out = [(g(z[i:i + batch_size].to(dev)).float().cpu() + 1.0) / 2.0 for i in range(0, n, batch_size)]
    g.train(was_training)
    if not out:
        c, s = getattr(g, "channels", 1), getattr(g, "image_size", 28)
        return torch.zeros(0, c, s, s)
    return torch.cat(out).clamp_(0.0, 1.0)


def save_sample_grids(generator: nn.Module, folder: Path, name: str, step: int, seed: int, channels: int) -> None:
    """A training-time picture of ``generator``: an 8x8 grid of fixed-noise samples ``folder/name``, its
    first row as ``folder/fixed/step_<step>.png``, and ``progress.png`` stacking up to 16 such rows
    (evenly spaced, always the last) so one image shows how the samples evolved."""
    from detector.decode import read_image
    from detector.imageio import save_grid, save_png

    imgs = sample(generator, 64, seed=seed, batch_size=500)  # the same (fixed) noise every time
    save_grid(imgs, folder / name, nrow=8)
    save_grid(imgs[:8], folder / "fixed" / f"step_{step:07d}.png", nrow=8, pad=1)
    rows = sorted((folder / "fixed").glob("step_*.png"))
    if len(rows) > 16:
        keep = [rows[round(i * (len(rows) - 1) / 15)] for i in range(16)]
        rows = list(dict.fromkeys(keep))
    strips = [read_image(p, channels=channels) for p in rows]
    w = max(s.shape[-1] for s in strips)
    strips = [torch.nn.functional.pad(s, (0, w - s.shape[-1]), value=1.0) for s in strips]
    save_png(torch.cat(strips, dim=1), folder / "progress.png")
