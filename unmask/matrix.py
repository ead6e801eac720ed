"""``unmask eval-matrix``: one detector per generator, each tested on every generator (:mod:`eval.matrix`),
from a GAN run's zoo families (its discriminator hardened per family) or from folders.

Split from :mod:`unmask.pipelines` (which keeps hardening and the adversarial rounds); this module
joins ``gan`` and ``eval`` for the cross-generator matrix only.
"""
from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from detector.atomic import write_json, write_text
from detector.nets import flip_head

__all__ = ["MatrixConfig", "MatrixReport", "MatrixError", "cross_generator_run"]


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
