"""End-to-end pipelines that join the GAN and the detector (the only module importing both).

* :func:`harden_run` - a GAN run directory -> a hardened detector artifact: loads the run's final
  discriminator and samples every generator snapshot of its zoo through the ``gan`` API, loads
  the run's real data (``config.json``'s ``data``), and calls :func:`detector.train.harden.harden`.
* :func:`adversarial_rounds` - the contest goes on: after hardening, the generator is trained
  further against the hardened detector (``gan.trainer.continue_training``), its new snapshots join
  the zoo, and the detector is hardened again; each round reports the AUC on held-out real images
  versus the fakes of every round so far (the arms race of Goodfellow et al., NeurIPS 2014, with
  the detector kept frozen while the generator catches up).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from detector.artifact import load as load_detector
from detector.atomic import write_json
from detector.device import resolve_device
from detector.nets import flip_head
from detector.train.calibration import collect_logits, evaluate
from detector.train.harden import HardenConfig, HardenResult, harden
from detector.train.splits import Splits, real_splits, split_tensor

__all__ = ["HardenInputs", "harden_inputs", "harden_run", "RoundReport", "adversarial_rounds"]


@dataclass
class HardenInputs:
    net: torch.nn.Module
    architecture: str
    arch_args: dict
    real: Splits
    fakes: dict[str, Splits]
    provenance: dict
    rounds_of: dict[str, int]    # fake set name -> adversarial round that produced it (0 = original zoo)


def _run_config(run_dir: Path) -> dict:
    p = run_dir / "config.json"
    if not p.is_file():
        raise FileNotFoundError(f"{run_dir}: not a GAN run directory (no config.json); train one with "
                                "`unmask gan train --out RUN`")
    return json.loads(p.read_text())


def harden_inputs(run_dir: str | os.PathLike, *, n_fakes: int = 6000, fake_dirs: Sequence[str] = (),
                  val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int | None = None,
                  real_source: str | None = None, real_limit: int | None = None, device: str = "cpu",
                  log: Callable[[str], None] = print) -> HardenInputs:
    """Everything :func:`detector.train.harden.harden` needs, read from a GAN run directory."""
    from gan.zoo import load_discriminator, load_zoo, sample

    from detector.data import load_folder_images

    run_dir = Path(run_dir)
    cfg = _run_config(run_dir)
    size, channels = int(cfg["image_size"]), int(cfg["channels"])
    seed = int(cfg.get("seed", 0)) if seed is None else seed
    source = real_source or cfg.get("data", "fashion-mnist:embedded")
    real, real_info = real_splits(source, size, channels, seed, val_fraction, test_fraction, real_limit)
    net, arch, args = load_discriminator(run_dir, device)
    snaps = load_zoo(run_dir)
    fakes: dict[str, Splits] = {}
    gens, rounds_of = [], {}
    for k, snap in enumerate(snaps):
        x = sample(snap, n_fakes, seed=seed + 1000 + k, device=device)
        if tuple(x.shape[1:]) != (channels, size, size):
            raise ValueError(f"snapshot {snap.name}: samples are {tuple(x.shape[1:])}, expected "
                             f"{(channels, size, size)}")
        fakes[snap.name] = split_tensor(x, seed + 2000 + k, val_fraction, test_fraction)
        tag = getattr(snap, "tag", None) or ""
        rounds_of[snap.name] = int(tag[5:]) if tag.startswith("round") and tag[5:].isdigit() else 0
        gens.append({"name": snap.name, "kind": "gan-zoo", "run": str(run_dir), "step": snap.step,
                     "generator": snap.generator_name, "family": snap.family, "tag": tag,
                     "n_sampled": n_fakes, "sample_seed": seed + 1000 + k})
    for d in fake_dirs:
        x, bad = load_folder_images([d], size, channels)
        name = f"folder:{Path(d).name}"
        while name in fakes:
            name += "_"
        fakes[name] = split_tensor(x, seed + 3000 + len(fakes), val_fraction, test_fraction)
        rounds_of[name] = 0
        gens.append({"name": name, "kind": "folder", "path": str(d), "n_images": len(x), "unreadable": bad})
        log(f"{name}: {len(x)} images ({bad} unreadable skipped)")
    prov = {"data": real_info, "gan_run": {"dir": str(run_dir), "seed": cfg.get("seed"),
                                           "generator": cfg.get("generator"), "discriminator": cfg.get("discriminator")},
            "generators": gens}
    return HardenInputs(net, arch, args, real, fakes, prov, rounds_of)


def harden_run(run_dir: str | os.PathLike, out: str | os.PathLike, config: HardenConfig = HardenConfig(), *,
               n_fakes: int = 6000, fake_dirs: Sequence[str] = (), val_fraction: float = 0.15,
               policy: str = "resize", resume: bool = False, real_source: str | None = None,
               log: Callable[[str], None] = print, progress: bool = True) -> HardenResult:
    """``unmask harden RUN --out DET``: see the module docstring."""
    inp = harden_inputs(run_dir, n_fakes=n_fakes, fake_dirs=fake_dirs, val_fraction=val_fraction,
                        seed=config.seed, real_source=real_source, device=config.device, log=log)
    log(f"real: {inp.real.sizes()}  fakes: {len(inp.fakes)} set(s) "
        f"({', '.join(f'{n}={len(s.train)}/{len(s.val)}/{len(s.test)}' for n, s in inp.fakes.items())})")
    return harden(inp.net, inp.architecture, inp.arch_args, inp.real, inp.fakes, out, config, flip=True,
                  policy=policy, provenance=inp.provenance, resume=resume, log=log, progress=progress)


@dataclass(frozen=True)
class RoundReport:
    round: int
    detector_dir: Path
    auc_by_round: dict        # round of the fakes -> AUC (held-out real test vs that round's test fakes)
    test_fpr: float
    test_auc: float
    auc_new_before: float | None = None   # previous round's detector on this round's new fakes (did G catch up?)


def _auc_by_round(det_dir: Path, inp: HardenInputs, device: str) -> dict[int, float]:
    det = load_detector(det_dir, device)
    s = det.spec
    rl = collect_logits(det.net, inp.real.test, s.mean, s.std, 512, device)
    out: dict[int, float] = {}
    for r in sorted(set(inp.rounds_of.values())):
        names = [n for n, rr in inp.rounds_of.items() if rr == r]
        fl = {n: collect_logits(det.net, inp.fakes[n].test, s.mean, s.std, 512, device) for n in names}
        out[r] = evaluate("test", rl, {"all": torch.cat(list(fl.values()))}, s.temperature, s.threshold).auc
    return out


def adversarial_rounds(run_dir: str | os.PathLike, out: str | os.PathLike, rounds: int,
                       config: HardenConfig = HardenConfig(), *, gan_steps: int = 500, n_fakes: int = 6000,
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
    from gan.trainer import continue_training
    from gan.zoo import load_zoo

    distributed.init(resolve_device(config.device))
    if not distributed.is_main():
        log = lambda *a, **k: None  # noqa: E731

    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    run_dir, out = Path(run_dir), Path(out)
    reports: list[RoundReport] = []
    prev_dir: Path | None = None
    for r in range(rounds + 1):
        det_dir = out if r == rounds else out / "rounds" / f"round_{r}"
        if r > 0:
            tag = f"round{r}"
            if resume and any(getattr(s, "tag", None) == tag for s in load_zoo(run_dir)):
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
                   policy=policy, provenance=prov, resume=resume, log=log, progress=progress)
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
