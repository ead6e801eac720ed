"""The GAN trainer: DCGAN-style alternating updates (Radford et al., ICLR 2016; Goodfellow et al.,
NeurIPS 2014) with named losses and stabilisers, live health diagnosis, checkpoints that resume
bit-for-bit, sample grids, the FD-FMNIST quality measure and the generator zoo.

Stabilisers: spectral normalisation in D (Miyato et al., ICLR 2018), R1 penalty (Mescheder et
al., ICML 2018), one-sided label smoothing (Salimans et al., NeurIPS 2016), annealed instance
noise (Sønderby et al., ICLR 2017), two time-scale learning rates (Heusel et al., NeurIPS 2017),
and the spectral loss of Durall et al. (CVPR 2020) on G.

Run directory (``out_dir``)::

    config.json                resolved GanConfig + generator_args + discriminator {network, args}
    metrics.jsonl              one JSON record per line: type train | quality | warning | remedy
    health.png                 the curves of metrics.jsonl
    checkpoints/ckpt_NNNNNNN.pt  G, D, both optimizers, step, RNG and monitor state (torch.load weights_only)
    discriminator.safetensors  final D (logit > 0 = real)
    generator.safetensors      final G
    samples/epoch_NNN.png      sample grid at the end of each epoch (fixed noise)
    samples/fixed/step_NNNNNNN.png, samples/progress.png   fixed-noise progression
    zoo/index.json, zoo/*.safetensors   generator snapshots (early, middle, late, rounds)
    quality/                   cached FD-FMNIST feature network

Distributed (``torchrun --nproc_per_node N -m unmask gan train ...``): G and D are wrapped in
DistributedDataParallel; ``batch_size`` is the global batch, each rank takes every N-th image of
it (the epoch permutation is shared, as DistributedSampler's is), and every random draw (noise,
instance noise) is drawn for the global batch and sharded the same way, so the run matches a
single-process run of the same global batch up to batch-norm statistics and float summation
order. Checkpoints hold no per-rank state, so a run resumes under any number of processes.
Only rank 0 writes files. Batch norm: SyncBatchNorm on CUDA; per-rank statistics on CPU (see
:func:`detector.distributed.wrap_ddp`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from detector import distributed as dist_
from detector.atomic import save_safetensors, torch_save, write_json, write_text
from detector.device import amp_enabled, autocast, resolve_device, to_channels_last
from detector.imageio import save_grid
from detector.nets import create_network

from .generators import GENERATORS, create_generator, generator_family
from .health import DiversityProbe, HealthConfig, HealthEvent, HealthMonitor, plot_health
from .losses import LOSSES, create_loss, gradient_penalty, r1_penalty
from .quality import METRIC_NAME, Quality, QualityMeter, feature_net
from .spectral import spectral_loss as _spectral_loss
from .zoo import Snapshot, load_zoo, sample, save_snapshot

__all__ = ["GanConfig", "RunResult", "train", "continue_training", "load_config",
           "latest_checkpoint", "CONFIG_FORMAT_VERSION"]

CONFIG_FORMAT_VERSION = 1
STAGES = ("early", "middle", "late")


@dataclass(frozen=True)
class GanConfig:
    """Everything that defines a GAN run; written resolved to ``RUN/config.json``."""

    data: str = "fashion-mnist"
    image_size: int = 28
    channels: int = 1
    generator: str = "dcgan"
    generator_args: dict = field(default_factory=dict)  # extra generator arguments, e.g. {"mode": "bilinear"}
    z_dim: int = 64
    g_width: int = 32  # generator width (channels of the last hidden stage); generator_args may override
    d_width: int = 32
    d_norm: str = "auto"  # auto: 'layer' for wgan_gp (no batch norm under a gradient penalty), else 'batch'
    loss: str = "bce"
    steps: int = 2000
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    spectral_norm: bool = False
    r1: float = 0.0  # gamma; adds gamma/2 * E||grad D(real)||^2
    label_smoothing: float = 0.0  # one-sided: real target 1 - s (bce only)
    instance_noise: float = 0.0  # initial sigma (images in [-1, 1]), annealed linearly to 0
    noise_anneal_steps: int = 0  # 0: anneal over the whole run
    spectral_loss: float = 0.0  # weight of the Durall spectral loss on G
    gp_weight: float = 10.0  # WGAN-GP penalty weight
    d_steps: int = 1  # D updates per G update
    auto_remedy: bool = False
    seed: int = 0
    device: str = "cpu"
    health_every: int = 50
    health_window: int = 4
    checkpoint_every: int = 500
    sample_every: int = 0  # 0: once per epoch
    quality_every: int = 0  # 0: once per epoch; < 0: never (except at the end)
    quality_samples: int = 1000
    quality_ref: int = 2000  # real reference images for FD-FMNIST (held-out test split for fashion-mnist)
    zoo_fractions: tuple = (0.25, 0.5, 1.0)  # early, middle, late
    progress: bool = True
    health_plot: bool = True  # write health.png at the end
    amp: bool = False  # bfloat16 autocast on CUDA (ignored, with a note, on CPU)

    def __post_init__(self) -> None:
        errs = []
        if self.generator not in GENERATORS:
            errs.append(f"unknown generator {self.generator!r}; known: {', '.join(GENERATORS.names())}")
        if self.loss not in LOSSES:
            errs.append(f"unknown loss {self.loss!r}; known: {', '.join(LOSSES.names())}")
        if self.channels not in (1, 3):
            errs.append(f"channels must be 1 or 3, not {self.channels}")
        for name in ("steps", "batch_size", "z_dim", "g_width", "d_width", "d_steps", "health_every", "health_window",
                     "checkpoint_every", "quality_samples", "quality_ref"):
            if int(getattr(self, name)) < 1:
                errs.append(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.batch_size < 2:
            errs.append("batch_size must be >= 2 (batch norm and diversity need pairs)")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                errs.append(f"{name} must be > 0, not {getattr(self, name)}")
        for name in ("r1", "instance_noise", "spectral_loss", "gp_weight", "noise_anneal_steps"):
            if getattr(self, name) < 0:
                errs.append(f"{name} must be >= 0, not {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 0.5:
            errs.append(f"label_smoothing must be in [0, 0.5), not {self.label_smoothing}")
        if self.label_smoothing > 0 and self.loss != "bce":
            errs.append(f"label_smoothing applies to the bce loss only (loss is {self.loss!r})")
        if self.d_norm not in ("auto", "none", "batch", "instance", "layer"):
            errs.append(f"d_norm must be auto, none, batch, instance or layer, not {self.d_norm!r}")
        if self.d_norm == "batch" and self.loss == "wgan_gp":
            errs.append("wgan_gp with batch norm in D is invalid (the penalty is per-sample): use d_norm layer")
        fr = tuple(self.zoo_fractions)
        if not fr or any(not 0 < f <= 1 for f in fr) or list(fr) != sorted(set(fr)):
            errs.append(f"zoo_fractions must be increasing values in (0, 1], not {fr}")
        if errs:
            raise ValueError("invalid GAN config: " + "; ".join(errs))
        object.__setattr__(self, "zoo_fractions", tuple(float(f) for f in fr))
        object.__setattr__(self, "generator_args", dict(self.generator_args))

    # ------------------------------------------------------------------ resolved views
    def resolved_generator_args(self) -> dict:
        extra = {k: v for k, v in self.generator_args.items() if k not in ("z_dim", "image_size", "channels")}
        for k in ("z_dim", "image_size", "channels"):
            if k in self.generator_args and self.generator_args[k] != getattr(self, k):
                raise ValueError(f"generator_args[{k!r}]={self.generator_args[k]} contradicts {k}={getattr(self, k)}")
        return {"z_dim": self.z_dim, "image_size": self.image_size, "channels": self.channels, "width": self.g_width,
                **extra}

    def discriminator_args(self) -> dict:
        norm = self.d_norm if self.d_norm != "auto" else ("layer" if self.loss == "wgan_gp" else "batch")
        return {"in_channels": self.channels, "image_size": self.image_size, "width": self.d_width,
                "norm": norm, "spectral_norm": self.spectral_norm}

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["zoo_fractions"] = list(self.zoo_fractions)
        d["generator_args"] = self.resolved_generator_args()
        d["family"] = generator_family(self.generator)
        d["discriminator"] = {"network": "dcgan_d", "args": self.discriminator_args()}
        d["format_version"] = CONFIG_FORMAT_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict) -> "GanConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "zoo_fractions" in kw:
            kw["zoo_fractions"] = tuple(kw["zoo_fractions"])
        ga = dict(kw.get("generator_args", {}))  # resolved form -> the extras only
        for k in ("z_dim", "image_size", "channels"):
            ga.pop(k, None)
        if "width" in ga and ga["width"] == kw.get("g_width", cls.g_width):
            ga.pop("width")
        kw["generator_args"] = ga
        return cls(**kw)


def load_config(run_dir: str | os.PathLike) -> GanConfig:
    p = Path(run_dir) / "config.json"
    if not p.is_file():
        raise FileNotFoundError(f"{run_dir}: no config.json (not a GAN run directory)")
    return GanConfig.from_json(json.loads(p.read_text()))


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    steps: int
    seconds: float
    images_per_second: float  # real images through D per second of training (this session)
    quality: Quality | None  # at the end
    fd_history: list  # [(step, FD-FMNIST)]
    warnings: list  # [HealthEvent]
    remedies: list  # [dict]
    snapshots: list  # [Snapshot]
    metric: str = METRIC_NAME


# ---------------------------------------------------------------------------- data


def _load_data(config: GanConfig) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(train images (N, C, S, S) in [0, 1], reference real images for quality, labelled)``."""
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
    return train.contiguous(), ref[:config.quality_ref].contiguous(), labelled


def _epoch_perm(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    d = Path(run_dir) / "checkpoints"
    cks = sorted(d.glob("ckpt_*.pt")) if d.is_dir() else []
    return cks[-1] if cks else None


def _grad_norm(params) -> float:
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def _write_metrics(path: Path, records: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in records))


# ---------------------------------------------------------------------------- training


class _Run:
    """State of one training session (plain object; the loop lives in :func:`train`)."""

    def __init__(self, config: GanConfig, out_dir: Path) -> None:
        self.config, self.out = config, out_dir
        self.device = resolve_device(config.device)
        self.rank, self.world = dist_.rank(), dist_.world_size()
        torch.manual_seed(config.seed)
        G = create_generator(config.generator, **config.resolved_generator_args())
        self.G = to_channels_last(G.to(self.device), self.device)
        self.D = to_channels_last(create_network("dcgan_d", **config.discriminator_args()).to(self.device), self.device)
        betas = (config.beta1, config.beta2)
        fused = {"foreach": True}  # one multi-tensor kernel per step instead of one per parameter
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=betas, **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas, **fused)
        self.loss = create_loss(config.loss, **({"gp_weight": config.gp_weight} if config.loss == "wgan_gp" else {}))
        self.rng = torch.Generator().manual_seed(config.seed)  # all training noise comes from here
        self.step = 0
        self.extra_noise = 0.0  # instance noise added by auto-remedy
        self.monitor = HealthMonitor(HealthConfig(window=config.health_window, warmup_steps=min(500, config.steps // 5)))
        self.records: list[dict] = []

    # -- checkpoints
    def save_checkpoint(self) -> Path:
        path = self.out / "checkpoints" / f"ckpt_{self.step:07d}.pt"
        state = {"step": self.step, "G": self.G.state_dict(), "D": self.D.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "rng": self.rng.get_state(), "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                 "extra_noise": self.extra_noise, "monitor": self.monitor.state_dict()}
        torch_save(state, path)
        for old in sorted(path.parent.glob("ckpt_*.pt"))[:-2]:  # keep the last two
            old.unlink()
        return path

    def load_checkpoint(self, path: Path) -> None:
        try:
            s = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise RuntimeError(f"{path}: cannot read checkpoint ({e})") from e
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        self.opt_g.load_state_dict(s["opt_g"])
        self.opt_d.load_state_dict(s["opt_d"])
        self.rng.set_state(s["rng"])
        torch.set_rng_state(s["torch_rng"])
        if s["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda_rng"])
        self.step, self.extra_noise = int(s["step"]), float(s["extra_noise"])
        self.monitor.load_state_dict(s["monitor"])

    def sigma(self) -> float:
        c = self.config
        span = c.noise_anneal_steps or c.steps
        return max(c.instance_noise * max(0.0, 1.0 - self.step / span), self.extra_noise)

    def noisy(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        if sigma <= 0:
            return x
        # drawn for the global batch, this rank's rows kept: the same noise at any world size
        e = torch.randn((x.shape[0] * self.world, *x.shape[1:]), generator=self.rng)[self.rank::self.world]
        return x + sigma * e.to(x.device)

    def z(self, n: int) -> torch.Tensor:
        """This rank's share of the latent codes of a global batch of ``n``."""
        return torch.randn(n, self.config.z_dim, generator=self.rng)[self.rank::self.world].to(self.device)


def _remedy(run: _Run, event: HealthEvent) -> dict:
    changes = []
    if event.symptom == "overpowering":
        for grp in run.opt_d.param_groups:
            changes.append(f"lr_d {grp['lr']:.3g} -> {grp['lr'] * 0.5:.3g}")
            grp["lr"] *= 0.5
    else:
        for grp in run.opt_g.param_groups:
            changes.append(f"lr_g {grp['lr']:.3g} -> {grp['lr'] * 0.5:.3g}")
            grp["lr"] *= 0.5
    old = run.sigma()
    run.extra_noise = max(run.extra_noise, 0.1)
    changes.append(f"instance noise {old:.3g} -> {run.sigma():.3g}")
    return {"type": "remedy", "step": run.step, "symptom": event.symptom, "action": "; ".join(changes)}


def train(config: GanConfig, out_dir: str | os.PathLike, resume: bool = False, *,
          stop_at: int | None = None) -> RunResult:
    """Train a GAN into ``out_dir`` (see the module docstring for the layout).

    ``resume``: continue from the last checkpoint in ``out_dir`` (the result equals an uninterrupted
    run with the same config and seed). ``stop_at``: stop after that step, as an interruption would
    (a checkpoint is written), for resuming later.
    """
    from tqdm import tqdm

    dist_.init(resolve_device(config.device))
    main_rank, world = dist_.is_main(), dist_.world_size()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be divisible by the "
                         f"{world} processes")
    out = Path(out_dir)
    cfg_path = out / "config.json"
    if resume:
        if not cfg_path.is_file():
            raise FileNotFoundError(f"--resume {out}: no config.json there (nothing to resume)")
        saved = load_config(out)
        if dataclasses.replace(saved, steps=config.steps, progress=config.progress, device=config.device,
                               amp=config.amp) != config:
            config = dataclasses.replace(saved, steps=max(config.steps, saved.steps), progress=config.progress,
                                         device=config.device, amp=config.amp)
    elif cfg_path.is_file() and latest_checkpoint(out) is not None:
        raise FileExistsError(f"{out} already holds a GAN run; use --resume to continue it or choose a new --out")
    dist_.barrier()  # every rank has checked the directory before rank 0 writes into it
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
    c = config
    train_x, ref_x, labelled = _load_data(c)
    run = _Run(c, out)
    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is not None:
        run.load_checkpoint(ckpt)
        mpath = out / "metrics.jsonl"
        if mpath.is_file():
            run.records = [r for r in map(json.loads, mpath.read_text().splitlines()) if r.get("step", 0) <= run.step]
    if main_rank:
        write_json(cfg_path, c.to_json())
        fnet = feature_net([out / "quality"])
    dist_.barrier()  # the feature network is cached (by rank 0) before the others load it
    if not main_rank:
        fnet = feature_net([out / "quality"])
    meter = QualityMeter(fnet, ref_x)
    probe = DiversityProbe(meter.features, ref_x[:256], classes=meter.classes if labelled else None,
                           labelled=labelled, duplicate_distance=run.monitor.config.duplicate_distance)

    n = len(train_x)
    per_epoch = n // c.batch_size
    sample_every = c.sample_every or per_epoch
    quality_every = c.quality_every if c.quality_every != 0 else per_epoch
    zoo_steps = {max(1, round(f * c.steps)): STAGES[min(i, 2)] if len(c.zoo_fractions) == 3 else f"f{int(f * 100):03d}"
                 for i, f in enumerate(c.zoo_fractions)}
    end = c.steps if stop_at is None else min(c.steps, stop_at)
    dev = run.device
    G, D = dist_.wrap_ddp(run.G, dev), dist_.wrap_ddp(run.D, dev)
    use_amp = amp_enabled(dev, c.amp, warn=main_rank)
    snapshots: list[Snapshot] = []
    mpath = out / "metrics.jsonl"
    t0, start_step = time.perf_counter(), run.step
    bar = tqdm(total=c.steps, initial=run.step, desc="gan", file=sys.stderr, disable=not (c.progress and main_rank),
               dynamic_ncols=True, leave=True)
    perm_epoch, perm = -1, None
    G.train()
    D.train()
    while run.step < end:
        step = run.step
        epoch = step // per_epoch
        if epoch != perm_epoch:
            perm, perm_epoch = _epoch_perm(n, c.seed, epoch), epoch
        sigma = run.sigma()
        check = (step + 1) % c.health_every == 0
        # ---- D update(s)
        for k in range(c.d_steps):
            j = (step % per_epoch) if k == 0 else int(torch.randint(0, per_epoch, (1,), generator=run.rng))
            idx = perm[j * c.batch_size:(j + 1) * c.batch_size][run.rank::world]  # this rank's share
            real = (train_x[idx].to(dev) * 2.0 - 1.0)  # (B / world, C, S, S) in [-1, 1]
            if dev.type == "cuda":
                real = real.contiguous(memory_format=torch.channels_last)
            z = run.z(c.batch_size)
            with autocast(dev, use_amp):
                fake = G(z)
                real_in, fake_in = run.noisy(real, sigma), run.noisy(fake.detach(), sigma)
                lr_ = D(real_in).float()
                lf = D(fake_in).float()
                loss_d = run.loss.d_loss(lr_, lf, c.label_smoothing)
            if run.loss.gp_weight > 0:
                loss_d = loss_d + run.loss.gp_weight * gradient_penalty(D, real_in, fake_in, run.rng)
            if c.r1 > 0:
                loss_d = loss_d + 0.5 * c.r1 * r1_penalty(D, real_in)
            run.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            grad_d = _grad_norm(D.parameters()) if check and k == c.d_steps - 1 else None
            run.opt_d.step()
        # ---- G update (reuses the last fake batch, as in the DCGAN reference). D's parameters are
        # frozen meanwhile: their gradients would be thrown away, so autograd skips computing them
        # (under DDP no D gradient hook fires, so nothing is all-reduced for D either).
        D.requires_grad_(False)
        with autocast(dev, use_amp):
            lg = D(run.noisy(fake, sigma)).float()
            loss_g = run.loss.g_loss(lg)
        if c.spectral_loss > 0:
            loss_g = loss_g + c.spectral_loss * _spectral_loss(fake, real)
        run.opt_g.zero_grad(set_to_none=True)
        grad_g_minimax = None
        if check or step == 0:  # the gradient of the original minimax objective E[log(1 - D(G(z)))], which vanishes
            # under a perfect D (Arjovsky & Bottou 2017, Thm 2.4); the health monitor watches it
            params = [p for p in G.parameters() if p.requires_grad]
            gs = torch.autograd.grad(-torch.nn.functional.softplus(lg).mean(), params, retain_graph=True,
                                     allow_unused=True)
            grad_g_minimax = float(torch.stack([g.norm() for g in gs if g is not None]).norm())
            grad_g_minimax = dist_.all_reduce_scalars({"g": grad_g_minimax})["g"]
        if step == 0:  # the untrained D's signal is the reference a vanishing gradient is judged against
            run.monitor.observe_grad(grad_g_minimax)
        loss_g.backward()
        D.requires_grad_(True)
        grad_g = _grad_norm(G.parameters()) if check else None
        run.opt_g.step()
        run.step += 1
        step = run.step
        # the global-batch losses (one device-to-host copy), so every rank stops together on a non-finite one
        both = torch.stack([loss_d.detach(), loss_g.detach()]).double().cpu()
        loss_d, loss_g = dist_.all_reduce_mean(both).tolist()
        if not (math.isfinite(loss_d) and math.isfinite(loss_g)):
            bar.close()
            raise FloatingPointError(f"step {step}: loss is not finite (D {loss_d}, G {loss_g}); "
                                     "try a lower learning rate, --spectral-norm or --r1")
        # ---- health
        if check:
            with torch.no_grad():
                pr, pf = torch.sigmoid(lr_.detach()), torch.sigmoid(lf.detach())
                fake01 = (fake.detach().float().cpu() + 1) / 2
            rec = {"type": "train", "step": step, "epoch": epoch, "loss_d": loss_d, "loss_g": loss_g,
                   "d_real": float(pr.mean()), "d_fake": float(pf.mean()),
                   "acc_real": float((lr_ > 0).float().mean()), "acc_fake": float((lf < 0).float().mean()),
                   "grad_g": grad_g, "grad_g_minimax": grad_g_minimax, "grad_d": grad_d, **probe(fake01.clamp(0, 1)),
                   "lr_g": run.opt_g.param_groups[0]["lr"], "lr_d": run.opt_d.param_groups[0]["lr"],
                   "sigma": sigma}
            # means over ranks: every rank's health monitor sees the same numbers and takes the same decisions
            rec = dist_.all_reduce_scalars(rec, skip=("step", "epoch", "loss_d", "loss_g", "lr_g", "lr_d", "sigma"))
            events = run.monitor.update(step, rec)
            rec["health"] = run.monitor.state
            run.records.append(rec)
            for ev in events:
                run.records.append(ev.to_json())
                msg = f"WARNING step {step}: {ev.message}. Remedy: {ev.remedy}"
                if c.auto_remedy:
                    r = _remedy(run, ev)
                    run.records.append(r)
                    msg += f"\n  auto-remedy applied: {r['action']}"
                else:
                    msg += " (rerun with --auto-remedy to apply it automatically)"
                if main_rank:
                    tqdm.write(msg, file=sys.stderr)
            bar.set_postfix_str(f"ep {epoch} D {loss_d:.3f} G {loss_g:.3f} "
                                f"D(x) {rec['d_real']:.2f} D(G(z)) {rec['d_fake']:.2f} health {run.monitor.state}")
        bar.update(1)
        # ---- quality, samples, zoo, checkpoints
        if step % c.checkpoint_every == 0 or step == end or step == c.steps:
            dist_.broadcast_buffers(run.G)  # what rank 0 saves is what every rank holds
            dist_.broadcast_buffers(run.D)
        if main_rank:  # rank 0 alone writes (the others only train)
            if quality_every > 0 and step % quality_every == 0 and step != c.steps:
                _quality(run, meter)
            if step % sample_every == 0 or step == c.steps:
                _samples(run, epoch, final=step == c.steps)
            if step in zoo_steps:
                snapshots.append(save_snapshot(out, run.G, f"{c.generator}_{zoo_steps[step]}_s{step:06d}", step,
                                               c.generator, c.resolved_generator_args(), stage=zoo_steps[step]))
            if step == c.steps:
                _quality(run, meter)
            if check or step == c.steps or step == end:
                _write_metrics(mpath, run.records)
            if step % c.checkpoint_every == 0 or step == end:
                run.save_checkpoint()
    bar.close()
    seconds = time.perf_counter() - t0
    if main_rank:
        if run.step >= c.steps:
            save_safetensors(run.D.state_dict(), out / "discriminator.safetensors",
                             metadata={"convention": "logit>0=real"})
            save_safetensors(run.G.state_dict(), out / "generator.safetensors", metadata={"generator": c.generator})
        if c.health_plot:
            plot_health(run.records, out / "health.png")
    dist_.barrier()  # every file is in place before any rank returns
    quals = [r for r in run.records if r.get("type") == "quality"]
    last_q = None
    if quals and run.step >= c.steps:
        q = quals[-1]
        last_q = Quality(q["fd"], q["precision"], q["recall"], q["coverage"], q["n"])
    try:
        snaps = load_zoo(out)
    except Exception:
        snaps = snapshots
    return RunResult(out, run.step, seconds, (run.step - start_step) * c.batch_size * c.d_steps / max(seconds, 1e-9),
                     last_q, [(q["step"], q["fd"]) for q in quals],
                     [HealthEvent(**{k: v for k, v in r.items() if k != "type"}) for r in run.records
                      if r.get("type") == "warning"],
                     [r for r in run.records if r.get("type") == "remedy"], snaps)


def _quality(run: _Run, meter: QualityMeter) -> None:
    c = run.config
    q = meter(sample(run.G, c.quality_samples, seed=c.seed + 2, batch_size=500))
    run.records.append({"type": "quality", "step": run.step, "metric": METRIC_NAME, "fd": q.fd,
                        "precision": q.precision, "recall": q.recall, "coverage": q.coverage, "n": q.n})


def _samples(run: _Run, epoch: int, final: bool) -> None:
    imgs = sample(run.G, 64, seed=run.config.seed + 1, batch_size=500)  # the same (fixed) noise every time
    d = run.out / "samples"
    save_grid(imgs, d / ("final.png" if final else f"epoch_{epoch:03d}_s{run.step:07d}.png"), nrow=8)
    save_grid(imgs[:8], d / "fixed" / f"step_{run.step:07d}.png", nrow=8, pad=1)
    rows = sorted((d / "fixed").glob("step_*.png"))
    if len(rows) > 16:  # at most 16 rows in the progression image, evenly spaced, always the last
        keep = [rows[round(i * (len(rows) - 1) / 15)] for i in range(16)]
        rows = list(dict.fromkeys(keep))
    from detector.decode import read_image

    strips = [read_image(p, channels=run.config.channels) for p in rows]
    w = max(s.shape[-1] for s in strips)
    strips = [torch.nn.functional.pad(s, (0, w - s.shape[-1]), value=1.0) for s in strips]
    from detector.imageio import save_png

    save_png(torch.cat(strips, dim=1), d / "progress.png")


# ---------------------------------------------------------------------------- adversarial rounds

_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def continue_training(run_dir: str | os.PathLike, discriminator: nn.Module, steps: int, tag: str, *,
                      device: str = "cpu", lr: float | None = None, seed: int | None = None,
                      snapshots: int = 2, progress: bool = False) -> list[Snapshot]:
    """Train the run's latest generator further against a *fixed* ``discriminator`` (logit > 0 = real).

    Used by adversarial hardening rounds: G learns to fool the given D; ``snapshots`` new
    snapshots (evenly spaced, the last at the end) join the zoo named ``<generator>_<tag>_sNNNNNN``.
    The caller's discriminator is not modified (its parameters are frozen during the call, then
    restored; it runs in eval mode).
    """
    from tqdm import tqdm

    if not _TAG.match(tag):
        raise ValueError(f"tag must match [a-z0-9][a-z0-9_-]*, not {tag!r}")
    if steps < 1 or snapshots < 1:
        raise ValueError("steps and snapshots must be >= 1")
    run_dir = Path(run_dir)
    c = load_config(run_dir)
    zoo = load_zoo(run_dir)
    base = max(zoo, key=lambda s: (s.step, s.name))
    dev = resolve_device(device)
    G = base.load(dev).train()
    seed = c.seed + base.step + 7 if seed is None else seed
    rng = torch.Generator().manual_seed(seed)
    loss = create_loss(c.loss)
    opt = torch.optim.Adam(G.parameters(), lr=lr or c.lr_g, betas=(c.beta1, c.beta2))
    real_x = _load_data(c)[0] if c.spectral_loss > 0 else None
    flags = [p.requires_grad for p in discriminator.parameters()]
    was_training = discriminator.training
    d_dev = next(discriminator.parameters()).device
    discriminator.eval().requires_grad_(False)
    marks = {round(steps * (i + 1) / snapshots) for i in range(snapshots)}
    out: list[Snapshot] = []
    try:
        for k in tqdm(range(1, steps + 1), desc=f"gan {tag}", file=sys.stderr, disable=not progress):
            z = torch.randn(c.batch_size, c.z_dim, generator=rng).to(dev)
            fake = G(z)
            loss_g = loss.g_loss(discriminator(fake.to(d_dev)))
            if real_x is not None:
                idx = torch.randint(0, len(real_x), (c.batch_size,), generator=rng)
                loss_g = loss_g + c.spectral_loss * _spectral_loss(fake, real_x[idx].to(dev) * 2 - 1)
            opt.zero_grad(set_to_none=True)
            loss_g.backward()
            opt.step()
            if not math.isfinite(loss_g.item()):
                raise FloatingPointError(f"continue_training {tag}: loss not finite at step {k}")
            if k in marks:
                step = base.step + k
                out.append(save_snapshot(run_dir, G, f"{c.generator}_{tag}_s{step:06d}", step, c.generator,
                                         c.resolved_generator_args(), stage=tag, tag=tag))
    finally:
        for p, f in zip(discriminator.parameters(), flags):
            p.requires_grad_(f)
        discriminator.train(was_training)
    return out
