"""Which GAN runs a command works on, and how their generator zoo is sampled in balance.

``unmask harden RUN [RUN...]`` and ``unmask eval-lofo RUN...`` take run directories (a folder with
``config.json``, read through :class:`gan.rundir.RunDir`) or a *zoo directory*: a folder whose
sub-folders are runs, e.g. one run per generator family. :func:`resolve_runs` turns the arguments
into run directories; :func:`zoo_members` lists every snapshot of every run with a unique name and
its generator family (the zoo's own ``family``, i.e. :func:`gan.generators.generator_family`).

Balance (issue 14): a detector hardened against several families should not learn mostly the
family that happens to have more snapshots or more runs. :func:`family_plan` gives every family
the same number of fakes and spreads each family's share evenly over its snapshots (early,
middle, late, adversarial rounds); :func:`family_weights` gives each fake set its share of the
training batches' fake half, so each family is drawn ``1 / F`` of the time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from gan.rundir import RunDir
from gan.zoo import Snapshot, ZooError

__all__ = ["RunSelectionError", "ZooMember", "resolve_runs", "zoo_members", "by_family", "spread",
           "family_plan", "family_weights", "image_shape", "start_discriminator"]


class RunSelectionError(ZooError):
    """The RUN arguments do not name usable GAN runs (missing, duplicated, mismatched image shapes)."""


@dataclass(frozen=True)
class ZooMember:
    """One generator snapshot of one run, named uniquely among all the runs given."""

    name: str            # fake set name: the snapshot's name, prefixed with the run's when several runs
    run: Path
    snapshot: Snapshot

    @property
    def family(self) -> str:
        return self.snapshot.family


def resolve_runs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Run directories named by ``paths``: each a run (``config.json``) or a folder of runs (its
    sub-folders that are runs, in name order). Raises :class:`RunSelectionError` on a path that is
    neither, or on a run named twice."""
    if not paths:
        raise RunSelectionError("no GAN run given: name a run directory (or a folder of runs)")
    runs: list[Path] = []
    for p in map(Path, paths):
        if RunDir(p).is_run():
            found = [p]
        else:
            found = sorted(c for c in p.iterdir() if c.is_dir() and RunDir(c).is_run()) if p.is_dir() else []
            if not found:
                raise RunSelectionError(f"{p}: not a GAN run (no config.json) and no sub-folder is one; train "
                                        "one with `unmask gan train --out RUN`")
        for r in found:
            if any(r.resolve() == q.resolve() for q in runs):
                raise RunSelectionError(f"{r}: the same run is named twice")
            runs.append(r)
    return runs


def zoo_members(runs: Sequence[Path]) -> list[ZooMember]:
    """Every snapshot of every run (runs in order, each zoo by step). With one run the names are the
    snapshots' own; with several, ``RUN/SNAPSHOT`` (RUN made unique when two runs share a name)."""
    out: list[ZooMember] = []
    labels: set[str] = set()
    for run in runs:
        label = run.name or str(run)
        while label in labels:
            label += "_"
        labels.add(label)
        for snap in RunDir(run).zoo():
            out.append(ZooMember(snap.name if len(runs) == 1 else f"{label}/{snap.name}", run, snap))
    return out


def by_family(members: Sequence[ZooMember]) -> dict[str, list[ZooMember]]:
    """Family -> its members, families in order of first appearance."""
    fams: dict[str, list[ZooMember]] = {}
    for m in members:
        fams.setdefault(m.family, []).append(m)
    return fams


def spread(n: int, k: int) -> list[int]:
    """``n`` items over ``k`` parts as evenly as possible (the first ``n % k`` parts get one more)."""
    if k < 1:
        raise ValueError(f"cannot spread over {k} parts")
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def family_plan(members: Sequence[ZooMember], n_per_family: int) -> dict[str, int]:
    """Member name -> images to sample: ``n_per_family`` per family, spread evenly over its snapshots."""
    plan: dict[str, int] = {}
    for fam, ms in by_family(members).items():
        if n_per_family < len(ms):
            raise RunSelectionError(f"family {fam!r} has {len(ms)} snapshots: sample at least one image from "
                                    f"each (--n-fakes >= {len(ms)})")
        plan.update({m.name: c for m, c in zip(ms, spread(n_per_family, len(ms)))})
    return plan


def family_weights(family_of: dict[str, str], counts: dict[str, int]) -> dict[str, float]:
    """Fake set name -> its share of training fakes: each family ``1 / F``, shared within the family
    in proportion to its sets' sizes (``family_of``: set name -> family)."""
    fams = sorted(set(family_of.values()))
    totals = {f: sum(counts[n] for n, g in family_of.items() if g == f) for f in fams}
    return {n: counts[n] / totals[f] / len(fams) for n, f in family_of.items()}


def image_shape(runs: Sequence[Path]) -> tuple[int, int]:
    """``(image_size, channels)`` every run shares (raises :class:`RunSelectionError` when they differ)."""
    shapes = {r: (int(c["image_size"]), int(c["channels"])) for r in runs for c in [RunDir(r).config_dict()]}
    if len(set(shapes.values())) > 1:
        raise RunSelectionError("the runs make images of different shapes: " + ", ".join(
            f"{r}: {s}x{s}x{c}" for r, (s, c) in shapes.items()) + "; harden against runs of one size and channels")
    return next(iter(shapes.values()))


def start_discriminator(runs: Sequence[Path], device: str = "cpu", avoid: Sequence[str] = ()):
    """``(run, net, network name, args)``: the first run's final discriminator (logit > 0 = real).

    Runs whose zoo holds an ``avoid`` family are passed over (their D was trained
    against it, so a detector started from it has seen it). Runs without a discriminator (a family
    that is not a GAN) are passed over too.
    """
    for run in runs:
        rd = RunDir(run)
        if not rd.discriminator_path.is_file():
            continue
        if avoid and any(s.family in avoid for s in rd.zoo()):
            continue
        net, name, args = rd.discriminator(device)
        return run, net, name, args
    why = f" that never saw {', '.join(avoid)}" if avoid else ""
    raise RunSelectionError(f"no run{why} has a discriminator to start the detector from "
                            f"({', '.join(str(r) for r in runs)})")
