"""End-to-end pipelines that join the GAN and the detector (the only module importing both).

* :func:`harden_run` - a GAN run directory -> a hardened detector artifact: loads the run's final
  discriminator and samples every generator snapshot of its zoo through the ``gan`` API, loads
  the run's real data (``config.json``'s ``data``), and calls :func:`detector.train.harden.harden`.
* :func:`adversarial_rounds` - the contest goes on: after hardening, the generator is trained
  further against the hardened detector (:func:`gan.rounds.continue_training`), its snapshots join
  the zoo, and the detector is hardened again; each round reports the AUC on held-out real images
  versus the fakes of every round so far (the arms race of Goodfellow et al., NeurIPS 2014).
* :func:`cross_generator_run` - ``unmask eval-matrix``: one detector per generator, each tested on
  every generator (:mod:`eval.matrix`), from a GAN run's zoo families or from folders.

A GAN run is read through :class:`gan.rundir.RunDir`; ``torch.distributed`` is joined by the command.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from detector.artifact import load as load_detector
from detector.atomic import write_json, write_text
from detector.nets import flip_head

if TYPE_CHECKING:  # the training stack is imported when a pipeline runs, not with the CLI
    from detector.train.config import HardenConfig
    from detector.train.harden import HardenResult
    from detector.train.splits import Splits

__all__ = ["HardenInputs", "harden_inputs", "harden_run", "RoundReport", "adversarial_rounds",
           "MatrixConfig", "MatrixReport", "MatrixError", "cross_generator_run"]


@dataclass
class HardenInputs:
    net: torch.nn.Module
    architecture: str
    arch_args: dict
    real: Splits
    fakes: dict[str, Splits]
    provenance: dict
    rounds_of: dict[str, int]    # fake set name -> adversarial round that produced it (0 = original zoo)
    originals: dict | None = None  # what the inputs no longer show of the training reals (domain model)


def harden_inputs(run_dir: str | os.PathLike, *, n_fakes: int = 6000, fake_dirs: Sequence[str] = (),
                  val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int | None = None,
                  real_source: str | None = None, real_limit: int | None = None, device: str = "cpu",
                  log: Callable[[str], None] = print) -> HardenInputs:
    """Everything :func:`detector.train.harden.harden` needs, read from a GAN run directory."""
    from detector.train.splits import real_splits, split_tensor
    from detector.data import load_folder_images
    from gan.rundir import RunDir
    from gan.zoo import sample

    run = RunDir(run_dir)
    run_dir = run.path
    cfg = run.config_dict()
    size, channels = int(cfg["image_size"]), int(cfg["channels"])
    seed = int(cfg.get("seed", 0)) if seed is None else seed
    source = real_source or cfg.get("data", "fashion-mnist:embedded")
    real, real_info = real_splits(source, size, channels, seed, val_fraction, test_fraction, real_limit)
    net, arch, args = run.discriminator(device)
    snaps = run.zoo()
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
    # Fashion-MNIST is natively 28x28, whatever size the GAN works at (the domain model's size check)
    originals = {"sides": torch.full((len(real.train), 2), 28.0)} if source.startswith("fashion-mnist") else None
    return HardenInputs(net, arch, args, real, fakes, prov, rounds_of, originals)


def harden_run(run_dir: str | os.PathLike, out: str | os.PathLike, config: HardenConfig | None = None, *,
               n_fakes: int = 6000, fake_dirs: Sequence[str] = (), val_fraction: float = 0.15,
               policy: str = "resize", resume: bool = False, real_source: str | None = None,
               log: Callable[[str], None] = print, progress: bool = True) -> HardenResult:
    """``unmask harden RUN --out DET``: see the module docstring (``config`` None: HardenConfig's defaults)."""
    from detector.train.config import HardenConfig
    from detector.train.harden import harden

    config = config or HardenConfig()
    inp = harden_inputs(run_dir, n_fakes=n_fakes, fake_dirs=fake_dirs, val_fraction=val_fraction,
                        seed=config.seed, real_source=real_source, device=config.device, log=log)
    log(f"real: {inp.real.sizes()}  fakes: {len(inp.fakes)} set(s) "
        f"({', '.join(f'{n}={len(s.train)}/{len(s.val)}/{len(s.test)}' for n, s in inp.fakes.items())})")
    return harden(inp.net, inp.architecture, inp.arch_args, inp.real, inp.fakes, out, config, flip=True,
                  policy=policy, provenance=inp.provenance, resume=resume, log=log, progress=progress,
                  originals=inp.originals)


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


def adversarial_rounds(run_dir: str | os.PathLike, out: str | os.PathLike, rounds: int,
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

    config = config or HardenConfig()

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
                   policy=policy, provenance=prov, resume=resume, log=log, progress=progress,
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



class MatrixError(RuntimeError):
    """The matrix cannot be built from these inputs (a run without two families, an unreadable base)."""


@dataclass(frozen=True)
class MatrixConfig:
    """What ``unmask eval-matrix`` does; the command's defaults are these."""

    out: str
    run: str | None = None          # GAN run: one fake set per zoo family, its D hardened per family
    real: tuple = ()                # folders of real images
    fake: tuple = ()                # folders of fakes, one generator each
    detector: str | None = None     # folder mode: start every detector from this artifact (else fresh dcgan_d)
    steps: int = 300                # training steps per detector
    lr: float = 2e-4                # folder mode: fine-tuning learning rate
    per_family: int = 1000          # --run: fakes sampled per family (and real images per split)
    test_fraction: float = 0.5
    size: int = 28                  # fresh detector's input size (folder mode without a detector)
    channels: int = 1
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        if self.run is None and len(self.fake) < 2:
            raise ValueError("eval-matrix needs --run RUN_DIR or at least two --fake folders (one per generator)")
        if self.run is None and not self.real:
            raise ValueError("folder mode needs --real (or use --run RUN_DIR)")


@dataclass(frozen=True)
class MatrixReport:
    result: object          # eval.matrix.MatrixResult
    method: str
    markdown: str
    out: Path
    unreadable: list        # [eval.scoring.Unreadable]


class HardenFit:
    """``fit_detector`` for ``--run``: the run's D hardened (detector.harden) on one fake set, validation
    carved from the training images. Calls are independent (own work folder, same seeds): order is free."""

    def __init__(self, run_dir: Path, steps: int, seed: int, work: Path, device: str) -> None:
        self.run_dir, self.steps, self.seed, self.work, self.device = Path(run_dir), steps, seed, work, device

    def __call__(self, xr: torch.Tensor, xf: torch.Tensor):
        from detector.artifact import load
        from detector.train.config import HardenConfig
        from detector.train.harden import harden
        from detector.train.splits import split_tensor
        from gan.rundir import RunDir

        net, arch, args = RunDir(self.run_dir).discriminator()
        real = split_tensor(xr, self.seed, 0.2, 0.1)
        fake = split_tensor(xf, self.seed + 1, 0.2, 0.1)
        out = Path(tempfile.mkdtemp(prefix="fit-", dir=self.work))
        cfg = HardenConfig(steps=self.steps, seed=self.seed, device=self.device)
        harden(net, arch, args, real, {"fakes": fake}, out, cfg, log=lambda _m: None, progress=False,
               provenance={"gan_run": str(self.run_dir)})
        return load(out)


def _discriminator_detector(run_dir: Path):
    """The run's discriminator as a detector (head flipped once: logit > 0 = fake), threshold 0.5."""
    from detector.artifact import Detector, spec_for_network
    from gan.rundir import RunDir

    net, name, args = RunDir(run_dir).discriminator()
    flip_head(net)
    size, ch = int(args.get("image_size", 28)), int(args.get("in_channels", 1))
    return Detector(net, spec_for_network(name, args, size, ch, provenance={"gan_run": str(run_dir)}))


def _zoo_fakes(run_dir: Path, per_family: int, seed: int, size: int, channels: int) -> dict:
    """One fake set per generator family of a GAN run's zoo: ``per_family`` images sampled evenly from
    that family's snapshots (fixed seeds), fitted to ``size`` x ``size``."""
    from detector.preprocess import fit
    from gan.rundir import RunDir
    from gan.zoo import sample

    families: dict[str, list] = {}
    for snap in RunDir(run_dir).zoo():
        families.setdefault(snap.family, []).append(snap)
    out = {}
    for i, (fam, snaps) in enumerate(families.items()):
        per = math.ceil(per_family / len(snaps))
        x = torch.cat([sample(s, per, seed=seed + 1000 * i + j) for j, s in enumerate(snaps)])[:per_family]
        if tuple(x.shape[1:]) != (channels, size, size):
            x = torch.stack([fit(im, size, channels, "resize") for im in x])
        out[fam] = list(x)
    return out


def _run_real(run_dir: Path, size: int, channels: int, n: int) -> list:
    """Real images of the run's own data source (its config's ``data``): train then held-out test."""
    from detector.data import open_source
    from gan.rundir import RunDir

    data = RunDir(run_dir).config_dict().get("data", "fashion-mnist")
    srcs = [open_source(data, size, channels, split) for split in ("train", "test")]
    return [src[i][0] for src in srcs for i in range(min(n, len(src)))]


def _matrix_images(config: MatrixConfig, sets, size: int, channels: int) -> tuple[list, dict]:
    """(real images, fake set name -> images): the folders' sets, and with ``run`` its zoo families."""
    from gan.zoo import ZooError

    fake_imgs = {s.name: s.images for s in sets.fakes}
    real_imgs = sets.real.images
    if config.run is None:
        return real_imgs, fake_imgs
    run = Path(config.run)
    try:
        zoo = _zoo_fakes(run, config.per_family, config.seed, size, channels)
    except (ZooError, OSError, ValueError) as e:
        raise MatrixError(f"{run}: {e}") from e
    fake_imgs = {**zoo, **{k: v for k, v in fake_imgs.items() if k not in zoo}}
    if not real_imgs:
        real_imgs = _run_real(run, size, channels, config.per_family)
    if len(fake_imgs) < 2:
        raise MatrixError(f"{run}: the zoo holds one generator family ({', '.join(fake_imgs)}); a matrix needs "
                          "two: add --fake folders or train another family")
    return real_imgs, fake_imgs


def cross_generator_run(config: MatrixConfig) -> MatrixReport:
    """``unmask eval-matrix``: fit one detector per generator, test each on every generator, write
    ``matrix.json``, ``matrix.png`` and ``matrix.md`` into ``config.out``."""
    from detector.artifact import ArtifactError, load
    from eval.matrix import FinetuneConfig, cross_generator_matrix, finetune_detector, split_train_test
    from eval.scoring import load_eval_sets
    from gan.zoo import ZooError

    config.validate()
    try:
        base = (_discriminator_detector(Path(config.run)) if config.run is not None
                else load(config.detector) if config.detector else None)
    except (ArtifactError, ZooError, OSError, KeyError, RuntimeError) as e:
        raise MatrixError(str(e)) from e
    size = base.spec.input_size if base else config.size
    ch = base.spec.channels if base else int(config.channels)
    sets = load_eval_sets(real=list(config.real), fake=list(config.fake), channels=ch)
    real_imgs, fake_imgs = _matrix_images(config, sets, size, ch)
    try:
        r_tr, r_te = split_train_test(real_imgs, config.test_fraction, config.seed)
        fakes = {k: split_train_test(v, config.test_fraction, config.seed + 1 + i)
                 for i, (k, v) in enumerate(fake_imgs.items())}
    except ValueError as e:
        raise MatrixError(str(e)) from e
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="matrix-", dir=out))
    method = "detector.harden of the run's discriminator" if config.run is not None else "finetune_detector (BCE)"
    if config.run is not None:
        fit = HardenFit(Path(config.run), config.steps, config.seed, work, config.device)
    else:
        ft = FinetuneConfig(steps=config.steps, lr=config.lr, seed=config.seed, device=config.device)
        fit = lambda xr, xf: finetune_detector(xr, xf, base, ft)  # noqa: E731
    try:
        res = cross_generator_matrix(r_tr, r_te, fakes, fit, size, ch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return MatrixReport(res, method, _write_matrix(config, res, method, out), out, list(sets.unreadable))


def _write_matrix(config: MatrixConfig, res, method: str, out: Path) -> str:
    """``matrix.json``, ``matrix.png`` and ``matrix.md``; returns the markdown."""
    from eval.plots import heatmap_plot

    fitting = {"method": method, "steps": config.steps, "lr": config.lr, "seed": config.seed,
               "base": str(config.run or config.detector or "fresh dcgan_d"), "test_fraction": config.test_fraction}
    write_json(out / "matrix.json", {"format": "unmask-eval-matrix/1", **res.to_json(),
                                     "off_diagonal_mean_auc": res.off_diagonal_mean(), "fitting": fitting})
    heatmap_plot(res.auc, res.names, res.names, out / "matrix.png", title="Cross-generator AUC",
                 xlabel="tested on", ylabel="trained on")
    lines = ["# Cross-generator AUC", "", f"Fitting: {method}, {config.steps} steps, seed {config.seed}.", "",
             "| trained on \\ tested on | " + " | ".join(res.names) + " |", "|---|" + "---|" * len(res.names)]
    lines += [f"| {a} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for a, row in zip(res.names, res.auc)]
    lines += ["", f"Mean off-diagonal AUC: {res.off_diagonal_mean():.3f}", ""]
    write_text(out / "matrix.md", "\n".join(lines))
    return "\n".join(lines)
