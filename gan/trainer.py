"""The GAN trainer: DCGAN-style alternating updates (Radford et al., ICLR 2016; Goodfellow et al.,
NeurIPS 2014) with named losses and stabilisers (:mod:`gan.config`), live health diagnosis,
checkpoints that resume bit-for-bit, sample grids, the FD-FMNIST quality and the generator zoo.

A small :class:`Trainer` holds G, D, their optimizers, the noise RNG and the health monitor:
``d_step``/``g_step`` are one update each, ``health`` records and diagnoses, ``save``/``load`` are
the checkpoints; :func:`train` is the short loop around them. The run directory is :mod:`gan.rundir`'s.
Every random draw of training comes from one seeded generator saved in the checkpoint, so a
resumed run equals an uninterrupted one bit for bit.

Distributed (``torchrun --nproc_per_node N -m unmask gan train``; the command joins the process
group): G and D are wrapped in DDP; ``batch_size`` is the global batch, each rank takes every N-th
image of it (the epoch permutation is shared, as DistributedSampler's is), and every random draw
is drawn for the global batch and sharded the same way, so the run matches a single-process run up
to batch-norm statistics and float summation order. Checkpoints hold no per-rank state (resume
under any number of processes); only rank 0 writes files. Batch norm: SyncBatchNorm on CUDA,
per-rank statistics on CPU (:func:`detector.distributed.wrap_ddp`).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from detector import distributed as dist_
from detector.atomic import save_safetensors, torch_save
from detector.device import amp_enabled, autocast, resolve_device, to_channels_last
from detector.nets import create_network
from detector.progress import Progress

from .config import GanConfig
from .data import TrainData, epoch_permutation, load_data
from .generators import NON_GAN_GENERATORS, create_generator
from .health import DiversityProbe, HealthConfig, HealthEvent, HealthMonitor, plot_health
from .remedies import RemedyLadder, handle_events, mode_seeking_loss
from .losses import create_loss, gradient_penalty, r1_penalty
from .quality import METRIC_NAME, Quality, QualityMeter, feature_net
from .rundir import RunDir
from .spectral import spectral_loss as _spectral_loss
from .zoo import Snapshot, load_zoo, sample, save_sample_grids, save_snapshot

__all__ = ["Trainer", "RunResult", "train"]


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


@dataclass
class DStep:
    """What the last D update of a step leaves for the G update and the health record."""
    z: torch.Tensor  # (B / world, z_dim): the codes of ``fake``
    real: torch.Tensor  # (B / world, C, S, S) in [-1, 1]
    fake: torch.Tensor  # (B / world, C, S, S) in [-1, 1], still attached to G's graph
    real_logits: torch.Tensor  # (B / world,)
    fake_logits: torch.Tensor  # (B / world,)
    loss: torch.Tensor
    grad_norm: float | None


def _grad_norm(params) -> float:
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


class Trainer:
    """G, D, both optimizers, the training RNG and the health monitor of one run."""

    def __init__(self, config: GanConfig, out_dir: str | os.PathLike) -> None:
        self.config, self.run = config, RunDir(out_dir)
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
        self.monitor = HealthMonitor(HealthConfig(window=config.health_window, warmup_steps=min(500, config.steps // 5)))
        self.ladder = RemedyLadder(config, trial_checks=config.health_window)  # its knobs: what each step reads
        self.records: list[dict] = []
        self.G_train, self.D_train = self.G, self.D  # what the steps call (DDP-wrapped by :meth:`start`)
        self.use_amp = False

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        """Write ``checkpoints/ckpt_<step>.pt`` (the last two are kept)."""
        path = self.run.checkpoint_path(self.step)
        state = {"step": self.step, "G": self.G.state_dict(), "D": self.D.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "rng": self.rng.get_state(), "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                 "remedies": self.ladder.state_dict(), "monitor": self.monitor.state_dict()}
        torch_save(state, path)
        self.run.prune_checkpoints()
        return path

    def load(self, path: Path) -> None:
        """Restore everything :meth:`save` wrote (networks, optimizers, RNGs, monitor, step)."""
        s = self.run.read_checkpoint(path)
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        self.opt_g.load_state_dict(s["opt_g"])
        self.opt_d.load_state_dict(s["opt_d"])
        self.rng.set_state(s["rng"])
        torch.set_rng_state(s["torch_rng"])
        if s["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda_rng"])
        self.step = int(s["step"])
        if "remedies" in s:  # checkpoints from before the remedy ladder hold no ladder state: start it fresh
            self.ladder.load_state_dict(s["remedies"])
        self.monitor.load_state_dict(s["monitor"])

    # ------------------------------------------------------------------ noise
    def sigma(self) -> float:
        c = self.config
        span = c.noise_anneal_steps or c.steps
        return max(c.instance_noise * max(0.0, 1.0 - self.step / span), self.ladder.knobs.instance_noise)

    def noisy(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        if sigma <= 0:
            return x
        # drawn for the global batch, this rank's rows kept: the same noise at any world size
        e = torch.randn((x.shape[0] * self.world, *x.shape[1:]), generator=self.rng)[self.rank::self.world]
        return x + sigma * e.to(x.device)

    def z(self, n: int) -> torch.Tensor:
        """This rank's share of the latent codes of a global batch of ``n``."""
        return torch.randn(n, self.config.z_dim, generator=self.rng)[self.rank::self.world].to(self.device)

    # ------------------------------------------------------------------ one step
    def d_step(self, images: torch.Tensor, perm: torch.Tensor, sigma: float, check: bool) -> DStep:
        """``config.d_steps`` D updates; the first on this step's batch of the epoch, the others on
        random batches. ``images`` (N, C, S, S) in [0, 1]; ``perm`` the epoch's order of them."""
        c, dev, D, knobs = self.config, self.device, self.D_train, self.ladder.knobs
        per_epoch, n = len(images) // c.batch_size, knobs.d_updates(self.step)
        for k in range(max(n, 1)):  # n == 0 (auto-remedy slowing D): D only scores this step's batch
            j = (self.step % per_epoch) if k == 0 else int(torch.randint(0, per_epoch, (1,), generator=self.rng))
            idx = perm[j * c.batch_size:(j + 1) * c.batch_size][self.rank::self.world]  # this rank's share
            real = (images[idx].to(dev) * 2.0 - 1.0)  # (B / world, C, S, S) in [-1, 1]
            if dev.type == "cuda":
                real = real.contiguous(memory_format=torch.channels_last)
            z = self.z(c.batch_size)
            with autocast(dev, self.use_amp):
                fake = self.G_train(z)
                real_in, fake_in = self.noisy(real, sigma), self.noisy(fake.detach(), sigma)
                real_logits = D(real_in).float()
                fake_logits = D(fake_in).float()
                loss_d = self.loss.d_loss(real_logits, fake_logits, knobs.label_smoothing)
            if self.loss.gp_weight > 0:
                loss_d = loss_d + self.loss.gp_weight * gradient_penalty(D, real_in, fake_in, self.rng)
            if knobs.r1 > 0 and n:
                loss_d = loss_d + 0.5 * knobs.r1 * r1_penalty(D, real_in)
            grad_d = None
            if n:
                self.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                grad_d = _grad_norm(D.parameters()) if check and k == n - 1 else None
                self.opt_d.step()
        return DStep(z, real, fake, real_logits, fake_logits, loss_d, grad_d)

    def g_step(self, d: DStep, sigma: float, check: bool) -> tuple[torch.Tensor, float | None, float | None]:
        """One G update on the last fake batch (as in the DCGAN reference); ``(loss, grad norm,
        minimax grad norm)``, the norms measured on health steps only."""
        c, G, D = self.config, self.G_train, self.D_train
        # D's parameters are frozen meanwhile: their gradients would be thrown away, so autograd skips
        # computing them (under DDP no D gradient hook fires, so nothing is all-reduced for D either).
        D.requires_grad_(False)
        with autocast(self.device, self.use_amp):
            lg = D(self.noisy(d.fake, sigma)).float()
            loss_g = self.loss.g_loss(lg, non_saturating=self.ladder.knobs.non_saturating)
        if self.ladder.knobs.mode_seeking > 0:
            loss_g = loss_g + self.ladder.knobs.mode_seeking * mode_seeking_loss(d.fake, d.z)
        if c.spectral_loss > 0:
            loss_g = loss_g + c.spectral_loss * _spectral_loss(d.fake, d.real)
        self.opt_g.zero_grad(set_to_none=True)
        grad_g_minimax = None
        if check or self.step == 0:  # the gradient of the original minimax objective E[log(1 - D(G(z)))], which
            # vanishes under a perfect D (Arjovsky & Bottou 2017, Thm 2.4); the health monitor watches it
            params = [p for p in G.parameters() if p.requires_grad]
            gs = torch.autograd.grad(-torch.nn.functional.softplus(lg).mean(), params, retain_graph=True,
                                     allow_unused=True)
            grad_g_minimax = float(torch.stack([g.norm() for g in gs if g is not None]).norm())
            grad_g_minimax = dist_.all_reduce_scalars({"g": grad_g_minimax})["g"]
        if self.step == 0:  # the untrained D's signal is the reference a vanishing gradient is judged against
            self.monitor.observe_grad(grad_g_minimax)
        loss_g.backward()
        D.requires_grad_(True)
        grad_g = _grad_norm(G.parameters()) if check else None
        self.opt_g.step()
        return loss_g, grad_g, grad_g_minimax

    # ------------------------------------------------------------------ health
    def health(self, d: DStep, losses: tuple[float, float], grads: tuple, epoch: int, sigma: float,
               probe: DiversityProbe, log) -> dict:
        """Record the step's health (global means over ranks), diagnose it, apply remedies when
        ``auto_remedy``; returns the record."""
        loss_d, loss_g = losses
        grad_g, grad_g_minimax = grads
        with torch.no_grad():
            pr, pf = torch.sigmoid(d.real_logits.detach()), torch.sigmoid(d.fake_logits.detach())
            fake01 = (d.fake.detach().float().cpu() + 1) / 2
        rec = {"type": "train", "step": self.step, "epoch": epoch, "loss_d": loss_d, "loss_g": loss_g,
               "d_real": float(pr.mean()), "d_fake": float(pf.mean()),
               "acc_real": float((d.real_logits > 0).float().mean()),
               "acc_fake": float((d.fake_logits < 0).float().mean()),
               "grad_g": grad_g, "grad_g_minimax": grad_g_minimax, "grad_d": d.grad_norm, **probe(fake01.clamp(0, 1)),
               "lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"], "sigma": sigma}
        # means over ranks: every rank's health monitor sees the same numbers and takes the same decisions
        rec = dist_.all_reduce_scalars(rec, skip=("step", "epoch", "loss_d", "loss_g", "lr_g", "lr_d", "sigma"))
        events = self.monitor.update(self.step, rec)
        rec["health"] = self.monitor.state
        self.records.append(rec)
        handle_events(self, rec, events, sigma, log)  # warnings logged; auto-remedy judged and applied
        return rec

    # ------------------------------------------------------------------ outputs
    def quality(self, meter: QualityMeter) -> None:
        q = meter(sample(self.G, self.config.quality_samples, seed=self.config.seed + 2, batch_size=500))
        self.records.append({"type": "quality", "step": self.step, "metric": METRIC_NAME, "fd": q.fd,
                             "precision": q.precision, "recall": q.recall, "coverage": q.coverage, "n": q.n})

    def write_outputs(self, epoch: int, end: int, check: bool, meter: QualityMeter, every: tuple[int, int]
                      ) -> Snapshot | None:
        """After a step: quality, samples, zoo snapshot, metrics and checkpoint when due (rank 0 writes)."""
        c, step = self.config, self.step
        quality_every, sample_every = every
        if step % c.checkpoint_every == 0 or step == end or step == c.steps:
            dist_.broadcast_buffers(self.G)  # what rank 0 saves is what every rank holds
            dist_.broadcast_buffers(self.D)
        if not dist_.is_main():  # rank 0 alone writes (the others only train)
            return None
        snap = None
        if quality_every > 0 and step % quality_every == 0 and step != c.steps:
            self.quality(meter)
        if step % sample_every == 0 or step == c.steps:
            name = "final.png" if step == c.steps else f"epoch_{epoch:03d}_s{step:07d}.png"
            save_sample_grids(self.G, self.run.samples, name, step, c.seed + 1, c.channels)
        stage = c.zoo_steps().get(step)
        if stage is not None:
            snap = save_snapshot(self.run.path, self.G, f"{c.generator}_{stage}_s{step:06d}", step,
                                 c.generator, c.resolved_generator_args(), stage=stage)
        if step == c.steps:
            self.quality(meter)
        if check or step == c.steps or step == end:
            self.run.write_metrics(self.records)
        if step % c.checkpoint_every == 0 or step == end:
            self.save()
        return snap

    # ------------------------------------------------------------------ the loop
    def start(self, data: TrainData) -> tuple[QualityMeter, DiversityProbe]:
        """Write the config, load (rank 0: cache) the quality network, wrap G and D for DDP."""
        if dist_.is_main():
            self.run.write_config(self.config)
            fnet = feature_net([self.run.quality_cache])
        dist_.barrier()  # the feature network is cached (by rank 0) before the others load it
        if not dist_.is_main():
            fnet = feature_net([self.run.quality_cache])
        meter = QualityMeter(fnet, data.reference)
        probe = DiversityProbe(meter.features, data.reference[:256], classes=meter.classes if data.labelled else None,
                               labelled=data.labelled, duplicate_distance=self.monitor.config.duplicate_distance)
        self.G_train, self.D_train = dist_.wrap_ddp(self.G, self.device), dist_.wrap_ddp(self.D, self.device)
        self.use_amp = amp_enabled(self.device, self.config.amp, warn=dist_.is_main())
        return meter, probe

    def fit(self, data: TrainData, end: int) -> tuple[float, list[Snapshot]]:
        """Train until step ``end``; ``(seconds, snapshots written)``."""
        c, main = self.config, dist_.is_main()
        meter, probe = self.start(data)
        per_epoch = len(data.train) // c.batch_size
        every = (c.quality_every if c.quality_every != 0 else per_epoch, c.sample_every or per_epoch)
        snapshots: list[Snapshot] = []
        t0 = time.perf_counter()
        bar = Progress(total=c.steps, initial=self.step, desc="gan", unit="step", enabled=c.progress and main)
        log = bar.write if main else (lambda m: None)
        perm_epoch, perm = -1, None
        self.G_train.train()
        self.D_train.train()
        while self.step < end:
            epoch = self.step // per_epoch
            if epoch != perm_epoch:
                perm, perm_epoch = epoch_permutation(len(data.train), c.seed, epoch), epoch
            sigma = self.sigma()
            check = (self.step + 1) % c.health_every == 0
            d = self.d_step(data.train, perm, sigma, check)
            loss_g, grad_g, grad_g_minimax = self.g_step(d, sigma, check)
            self.step += 1
            # the global-batch losses (one device-to-host copy), so every rank stops together on a non-finite one
            both = torch.stack([d.loss.detach(), loss_g.detach()]).double().cpu()
            losses = dist_.all_reduce_mean(both).tolist()
            if not all(math.isfinite(v) for v in losses):
                bar.close()
                raise FloatingPointError(f"step {self.step}: loss is not finite (D {losses[0]}, G {losses[1]}); "
                                         "try a lower learning rate, --spectral-norm or --r1")
            if check:
                rec = self.health(d, tuple(losses), (grad_g, grad_g_minimax), epoch, sigma, probe, log)
                bar.set_postfix_str(f"ep {epoch} D {losses[0]:.3f} G {losses[1]:.3f} D(x) {rec['d_real']:.2f} "
                                    f"D(G(z)) {rec['d_fake']:.2f} health {self.monitor.state}")
            bar.update(1)
            snap = self.write_outputs(epoch, end, check, meter, every)
            snapshots += [snap] if snap is not None else []
        bar.close()
        return time.perf_counter() - t0, snapshots

    def finish(self) -> None:
        """Final weights (when the run is complete) and ``health.png``; rank 0 writes."""
        c = self.config
        if dist_.is_main():
            if self.step >= c.steps:
                save_safetensors(self.D.state_dict(), self.run.discriminator_path,
                                 metadata={"convention": "logit>0=real"})
                save_safetensors(self.G.state_dict(), self.run.generator_path, metadata={"generator": c.generator})
            if c.health_plot:
                plot_health(self.records, self.run.path / "health.png")
        dist_.barrier()  # every file is in place before any rank returns

    def result(self, seconds: float, start_step: int, snapshots: list[Snapshot]) -> RunResult:
        c, recs = self.config, self.records
        quals = [r for r in recs if r.get("type") == "quality"]
        q = quals[-1] if quals and self.step >= c.steps else None
        last_q = None if q is None else Quality(q["fd"], q["precision"], q["recall"], q["coverage"], q["n"])
        try:
            snaps = load_zoo(self.run.path)
        except Exception:  # noqa: BLE001 - no zoo yet (an early stop): the snapshots of this session
            snaps = snapshots
        ips = (self.step - start_step) * c.batch_size * c.d_steps / max(seconds, 1e-9)
        return RunResult(self.run.path, self.step, seconds, ips, last_q, [(q["step"], q["fd"]) for q in quals],
                         [HealthEvent(**{k: v for k, v in r.items() if k != "type"}) for r in recs
                          if r.get("type") == "warning"],
                         [r for r in recs if r.get("type") == "remedy"], snaps)


def train(config: GanConfig, out_dir: str | os.PathLike, resume: bool = False, *,
          stop_at: int | None = None) -> RunResult:
    """Train a GAN into ``out_dir`` (layout: :mod:`gan.rundir`; VAE and diffusion runs: :mod:`gan.likelihood`).

    ``resume``: continue from the last checkpoint in ``out_dir`` (the result equals an uninterrupted
    run with the same config and seed). ``stop_at``: stop after that step, as an interruption would
    (a checkpoint is written), for resuming later. Under torchrun the caller joins the process
    group first (:func:`detector.distributed.init`; ``unmask gan train`` does).
    """
    if config.generator in NON_GAN_GENERATORS:  # not a GAN: the one-network loop
        from .likelihood import train_likelihood
        return train_likelihood(config, out_dir, resume, stop_at=stop_at)
    world = dist_.world_size()
    if world > 1 and not dist_.is_distributed():
        raise RuntimeError("WORLD_SIZE > 1 but no process group: call detector.distributed.init() first")
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} (global batch) must divide among {world} processes")
    run = RunDir(out_dir)
    config = run.training_config(config, resume)
    dist_.barrier()  # every rank has checked the directory before rank 0 writes into it
    if dist_.is_main():
        run.path.mkdir(parents=True, exist_ok=True)
    data = load_data(config)
    trainer = Trainer(config, run.path)
    ckpt = run.latest_checkpoint() if resume else None
    if ckpt is not None:
        trainer.load(ckpt)
        trainer.records = run.read_metrics(up_to_step=trainer.step)
    start_step = trainer.step
    end = config.steps if stop_at is None else min(config.steps, stop_at)
    seconds, snapshots = trainer.fit(data, end)
    trainer.finish()
    return trainer.result(seconds, start_step, snapshots)
