"""End-to-end pipelines that join the GAN and the detector (the only module importing both).

* :func:`harden_run` - GAN run directories -> a hardened detector artifact: loads the first run's
  final discriminator, samples every generator snapshot of every run's zoo through the ``gan`` API
  with each generator family in balance (:mod:`unmask.runs`), loads the run's real data
  (``config.json``'s ``data``), and calls :func:`detector.train.harden.harden`.
* :func:`adversarial_rounds` - the contest goes on: after hardening, the generator is trained
  further against the hardened detector (:func:`gan.rounds.continue_training`), its snapshots join
  the zoo, and the detector is hardened again; each round reports the AUC on held-out real images
  versus the fakes of every round so far (the arms race of Goodfellow et al., NeurIPS 2014).

``unmask eval-matrix`` lives in :mod:`unmask.matrix`, ``unmask eval-lofo`` in :mod:`unmask.lofo`.

A GAN run is read through :class:`gan.rundir.RunDir`; ``torch.distributed`` is joined by the command.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence, Union

import torch

from detector.artifact import load as load_detector
from detector.atomic import write_json
from detector.nets import flip_head

if TYPE_CHECKING:  # the training stack is imported when a pipeline runs, not with the CLI
    from detector.train.config import HardenConfig
    from detector.train.harden import HardenResult
    from detector.train.splits import Splits

__all__ = ["HardenInputs", "with_traces", "harden_inputs", "without_families", "harden_run", "RoundReport",
           "adversarial_rounds"]


@dataclass
class HardenInputs:
    net: torch.nn.Module
    architecture: str
    arch_args: dict
    real: Splits
    fakes: dict[str, Splits]
    provenance: dict
    rounds_of: dict[str, int]    # fake set name -> adversarial round that produced it (0 = original zoo)
    weights: dict[str, float]    # fake set name -> share of the training fakes (each family 1 / F)
    family_of: dict[str, str]    # fake set name -> generator family ("folder:NAME" for a --fakes folder)
    runs: list[Path]             # the run directories the fakes come from
    originals: dict | None = None  # what the inputs no longer show of the training reals (domain model)
    flip: bool = True            # ``net`` is a GAN discriminator (logit > 0 = real): harden flips its head


def with_traces(inp: HardenInputs, traces: str, seed: int, width: int | None = None) -> HardenInputs:
    """``inp`` with a detector that sees up-sampling traces (``traces`` in :data:`detector.nets.TRACES`): the run
    discriminator's architecture and arguments (``width`` if given) plus the NPR residue input and/or
    the DCT branch, from a fresh seeded initialisation (D's first layer was trained on pixels, not on
    residues; the leave-one-family-out study trained these variants this way). ``"none"`` returns
    ``inp`` (and takes no ``width``: D's weights fix it)."""
    from dataclasses import replace

    from detector.nets import TRACES, create_network

    if traces not in TRACES:
        raise ValueError(f"unknown traces {traces!r}; choose one of {', '.join(TRACES)}")
    if traces == "none":
        if width is not None:
            raise ValueError("a width needs --traces: without it the detector is the run's D, weights and all")
        return inp
    residual, spectral = TRACES[traces]
    args = {**inp.arch_args, "residual": residual, "spectral": spectral, **({"width": width} if width else {})}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = create_network(inp.architecture, **args)
    prov = dict(inp.provenance, traces={"traces": traces, "residual": residual, "spectral": spectral, "seed": seed,
                                        "width": args.get("width"),
                                        "init": "fresh; the run discriminator's architecture and arguments"})
    return replace(inp, net=net, arch_args=args, provenance=prov, flip=False)


RunArg = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def _as_paths(runs: RunArg) -> list:
    return [runs] if isinstance(runs, (str, os.PathLike)) else list(runs)


def _sample_zoo(members, plan: dict[str, int], seed: int, size: int, channels: int, val_fraction: float,
                test_fraction: float, device: str) -> tuple[dict, list]:
    """Each member's planned fakes, split; and its provenance entry."""
    from detector.train.splits import split_tensor
    from gan.zoo import sample

    fakes, gens = {}, []
    for k, m in enumerate(members):
        snap, n = m.snapshot, plan[m.name]
        x = sample(snap, n, seed=seed + 1000 + k, device=device)
        if tuple(x.shape[1:]) != (channels, size, size):
            raise ValueError(f"snapshot {m.name}: samples are {tuple(x.shape[1:])}, expected "
                             f"{(channels, size, size)}")
        fakes[m.name] = split_tensor(x, seed + 2000 + k, val_fraction, test_fraction)
        gens.append({"name": m.name, "kind": "gan-zoo", "run": str(m.run), "step": snap.step,
                     "generator": snap.generator_name, "family": m.family, "stage": snap.stage,
                     "tag": snap.tag or "", "n_sampled": n, "sample_seed": seed + 1000 + k})
    return fakes, gens


def _round_of(tag: str) -> int:
    return int(tag[5:]) if tag.startswith("round") and tag[5:].isdigit() else 0


def _families_provenance(gens: list, weights: dict[str, float]) -> dict:
    """Family -> its fake sets, images sampled and share of the training fakes (what balance means here)."""
    fams: dict = {}
    for g in gens:
        f = fams.setdefault(g["family"], {"sets": [], "n_images": 0, "share": 0.0})
        f["sets"].append(g["name"])
        f["n_images"] += int(g.get("n_sampled", g.get("n_images", 0)))
        f["share"] += weights[g["name"]]
        g["weight"] = weights[g["name"]]
    return fams


def harden_inputs(runs: RunArg, *, n_fakes: int = 6000, fake_dirs: Sequence[str] = (),
                  val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int | None = None,
                  real_source: str | None = None, real_limit: int | None = None, device: str = "cpu",
                  log: Callable[[str], None] = print) -> HardenInputs:
    """Everything :func:`detector.train.harden.harden` needs, read from GAN run directories (or
    folders of runs, see :mod:`unmask.runs`): ``n_fakes`` per generator family, spread evenly over
    its snapshots; each family (and each ``fake_dirs`` folder) gets the same share of the training
    fakes. The detector starts from the first run's discriminator; real images come from that run's
    data source."""
    from detector.data import load_folder_images
    from detector.train.splits import real_splits, split_tensor
    from gan.rundir import RunDir
    from . import runs as runs_

    run_dirs = runs_.resolve_runs(_as_paths(runs))
    size, channels = runs_.image_shape(run_dirs)
    members = runs_.zoo_members(run_dirs)
    start, net, arch, args = runs_.start_discriminator(run_dirs, device)
    cfg = RunDir(start).config_dict()
    seed = int(cfg.get("seed", 0)) if seed is None else seed
    source = real_source or cfg.get("data", "fashion-mnist:embedded")
    real, real_info = real_splits(source, size, channels, seed, val_fraction, test_fraction, real_limit)
    fakes, gens = _sample_zoo(members, runs_.family_plan(members, n_fakes), seed, size, channels, val_fraction,
                              test_fraction, device)
    for d in fake_dirs:
        x, bad = load_folder_images([d], size, channels)
        name = f"folder:{Path(d).name}"
        while name in fakes:
            name += "_"
        fakes[name] = split_tensor(x, seed + 3000 + len(fakes), val_fraction, test_fraction)
        gens.append({"name": name, "kind": "folder", "family": name, "path": str(d), "n_images": len(x),
                     "unreadable": bad})
        log(f"{name}: {len(x)} images ({bad} unreadable skipped)")
    family_of = {g["name"]: g["family"] for g in gens}
    weights = runs_.family_weights(family_of, {n: len(s.train) for n, s in fakes.items()})
    gan_runs = [{"dir": str(r), "seed": c.get("seed"), "generator": c.get("generator"),
                 "discriminator": c.get("discriminator")} for r in run_dirs for c in [RunDir(r).config_dict()]]
    prov = {"data": real_info, "gan_run": gan_runs[run_dirs.index(start)], "gan_runs": gan_runs,
            "generators": gens, "families": _families_provenance(gens, weights)}
    rounds_of = {g["name"]: _round_of(g.get("tag") or "") for g in gens}
    # Fashion-MNIST is natively 28x28, whatever size the GAN works at (the domain model's size check)
    originals = {"sides": torch.full((len(real.train), 2), 28.0)} if source.startswith("fashion-mnist") else None
    return HardenInputs(net, arch, args, real, fakes, prov, rounds_of, weights, family_of, run_dirs, originals)


def without_families(inp: HardenInputs, families: Sequence[str], device: str = "cpu") -> HardenInputs:
    """``inp`` less the fake sets of ``families`` (a leave-one-family-out fold): the other families
    re-balanced, the detector started from the first run whose D never saw ``families``."""
    from . import runs as runs_

    keep = [n for n in inp.fakes if inp.family_of[n] not in families]
    if not keep:
        raise runs_.RunSelectionError(f"no generator family left to harden against without {', '.join(families)}")
    start, net, arch, args = runs_.start_discriminator(inp.runs, device, tuple(families))
    family_of = {n: inp.family_of[n] for n in keep}
    weights = runs_.family_weights(family_of, {n: len(inp.fakes[n].train) for n in keep})
    gens = [dict(g) for g in inp.provenance["generators"] if g["name"] in family_of]
    gan_run = next(g for g in inp.provenance["gan_runs"] if g["dir"] == str(start))
    prov = dict(inp.provenance, gan_run=gan_run, generators=gens, families=_families_provenance(gens, weights),
                held_out_families=list(families))
    out = HardenInputs(net, arch, args, inp.real, {n: inp.fakes[n] for n in keep}, prov,
                       {n: inp.rounds_of[n] for n in keep}, weights, family_of, inp.runs, inp.originals)
    traces = inp.provenance.get("traces")  # the fold's detector sees what inp's sees
    return with_traces(out, traces["traces"], traces["seed"], traces.get("width")) if traces else out


def harden_run(runs: RunArg, out: str | os.PathLike, config: HardenConfig | None = None, *,
               n_fakes: int = 6000, fake_dirs: Sequence[str] = (), val_fraction: float = 0.15,
               policy: str = "resize", resume: bool = False, real_source: str | None = None,
               traces: str = "none", width: int | None = None, log: Callable[[str], None] = print,
               progress: bool = True) -> HardenResult:
    """``unmask harden RUN [RUN...] --out DET``: see the module docstring (``config`` None: HardenConfig's
    defaults; ``traces``, ``width``: see :func:`with_traces`)."""
    from detector.train.config import HardenConfig
    from detector.train.harden import harden

    config = config or HardenConfig()
    inp = harden_inputs(runs, n_fakes=n_fakes, fake_dirs=fake_dirs, val_fraction=val_fraction,
                        seed=config.seed, real_source=real_source, device=config.device, log=log)
    inp = with_traces(inp, traces, config.seed, width)
    log(f"real: {inp.real.sizes()}  fakes: {len(inp.fakes)} set(s) "
        f"({', '.join(f'{n}={len(s.train)}/{len(s.val)}/{len(s.test)}' for n, s in inp.fakes.items())})")
    log("families (share of training fakes): " + ", ".join(
        f"{f} {100 * v['share']:.0f}% ({v['n_images']} images, {len(v['sets'])} set(s))"
        for f, v in inp.provenance["families"].items()))
    return harden(inp.net, inp.architecture, inp.arch_args, inp.real, inp.fakes, out, config, flip=inp.flip,
                  policy=policy, provenance=inp.provenance, resume=resume, log=log, progress=progress,
                  weights=inp.weights, originals=inp.originals)


@dataclass(frozen=True)
class RoundReport:
    round: int
    detector_dir: Path
    auc_by_round: dict        # round of the fakes -> AUC (held-out real test vs that round's test fakes)
    test_fpr: float
    test_auc: float
    auc_new_before: float | None = None   # previous round's detector on this round's new fakes (did G catch up?)


def _auc_by_round(det_dir: Path, inp: HardenInputs, device: str) -> dict[int, float]:
    from detector.train.calibration import collect_logits, evaluate

    det = load_detector(det_dir, device)
    s = det.spec
    rl = collect_logits(det.net, inp.real.test, s.mean, s.std, 512, device)
    out: dict[int, float] = {}
    for r in sorted(set(inp.rounds_of.values())):
        names = [n for n, rr in inp.rounds_of.items() if rr == r]
        fl = {n: collect_logits(det.net, inp.fakes[n].test, s.mean, s.std, 512, device) for n in names}
        out[r] = evaluate("test", rl, {"all": torch.cat(list(fl.values()))}, s.temperature, s.threshold).auc
    return out


def adversarial_rounds(run_dir: RunArg, out: str | os.PathLike, rounds: int,
                       config: HardenConfig | None = None, *, gan_steps: int = 500, n_fakes: int = 6000,
                       fake_dirs: Sequence[str] = (), val_fraction: float = 0.15, policy: str = "resize",
                       resume: bool = False, real_source: str | None = None,
                       log: Callable[[str], None] = print, progress: bool = True) -> list[RoundReport]:
    """Round 0 hardens the run's discriminator; rounds 1..K train G further against the hardened
    detector, add its snapshots to the zoo and harden again (starting from the previous detector).

    Intermediate detectors live in ``out/rounds/round_<r>``; the last one is written to ``out``.
    ``rounds.json`` and the printed table give, per round, the AUC against every round's fakes.
    With ``resume``, finished rounds (artifact present) and finished GAN continuations (snapshots
    tagged ``round<r>`` in the zoo) are skipped and an interrupted hardening resumes from its checkpoint.
    """
    from detector import distributed
    from detector.train.config import HardenConfig
    from detector.train.harden import harden
    from gan.rounds import continue_training
    from gan.rundir import RunDir
    from .runs import resolve_runs

    config = config or HardenConfig()

    if not distributed.is_main():
        log = lambda *a, **k: None  # noqa: E731

    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    paths = resolve_runs(_as_paths(run_dir))
    if len(paths) != 1:
        raise ValueError(f"adversarial rounds train one run's generator further: give one run, not {len(paths)}")
    run_dir, out = Path(paths[0]), Path(out)
    reports: list[RoundReport] = []
    prev_dir: Path | None = None
    for r in range(rounds + 1):
        det_dir = out if r == rounds else out / "rounds" / f"round_{r}"
        if r > 0:
            tag = f"round{r}"
            if resume and any(s.tag == tag for s in RunDir(run_dir).zoo()):
                log(f"round {r}: generator snapshots tagged {tag} already in the zoo; not training G again")
            else:
                log(f"round {r}: training the generator {gan_steps} steps against the hardened detector")
                if distributed.is_main():  # one process trains G and writes its snapshots; the others wait
                    d_net = load_detector(prev_dir, config.device).net  # a fresh copy, ours to flip
                    flip_head(d_net)  # back to the GAN convention: logit > 0 = real
                    continue_training(run_dir, d_net, gan_steps, tag, device=config.device)
                distributed.barrier()
        inp = harden_inputs(run_dir, n_fakes=n_fakes, fake_dirs=fake_dirs, val_fraction=val_fraction,
                            seed=config.seed, real_source=real_source, device=config.device, log=log)
        done = (det_dir / "detector.json").is_file() and resume
        before = _auc_by_round(prev_dir, inp, config.device).get(r) if prev_dir is not None else None
        if before is not None:
            log(f"round {r}: previous detector's AUC on the new generator's fakes: {before:.5f}")
        if not done:
            net, flip = inp.net, True
            if prev_dir is not None:
                net, flip = load_detector(prev_dir, config.device).net, False
            prov = dict(inp.provenance, adversarial_round=r, rounds_total=rounds)
            harden(net, inp.architecture, inp.arch_args, inp.real, inp.fakes, det_dir, config, flip=flip,
                   policy=policy, provenance=prov, resume=resume, log=log, progress=progress, weights=inp.weights,
                   originals=inp.originals)
        else:
            log(f"round {r}: detector already in {det_dir}; skipping")
        by_round = _auc_by_round(det_dir, inp, config.device)
        m = json.loads((det_dir / "harden_metrics.json").read_text())["test"]
        reports.append(RoundReport(r, det_dir, by_round, m["fpr"], m["auc"], before))
        log(_rounds_table(reports))
        if distributed.is_main():
            write_json(out / "rounds.json", [
                {"round": x.round, "detector": str(x.detector_dir), "test_auc": x.test_auc, "test_fpr": x.test_fpr,
                 "auc_new_fakes_before_rehardening": x.auc_new_before,
                 "auc_vs_fakes_of_round": {str(k): v for k, v in x.auc_by_round.items()}}
                for x in reports])
        prev_dir = det_dir
    return reports


def _rounds_table(reports: Sequence[RoundReport]) -> str:
    k = max(max(r.auc_by_round) for r in reports)
    head = (f"{'detector':<10}" + "".join(f"{'fakes r' + str(i):>11}" for i in range(k + 1)) + f"{'test FPR':>10}"
            + f"{'new fakes, old det':>20}")
    rows = [head]
    for rep in reports:
        rows.append(f"{'round ' + str(rep.round):<10}" + "".join(
            f"{rep.auc_by_round[i]:>11.5f}" if i in rep.auc_by_round else f"{'-':>11}" for i in range(k + 1))
            + f"{rep.test_fpr:>10.4f}" + (f"{rep.auc_new_before:>20.5f}" if rep.auc_new_before is not None
                                          else f"{'-':>20}"))
    return "AUC on held-out real vs fakes of each round:\n" + "\n".join(rows)
