"""The training loop of the zoo's generators that are NOT GANs: the VAE (:mod:`gan.vae`, negative ELBO)
and the diffusion model (:mod:`gan.diffusion`, denoising loss). Both minimise one loss of one network,
``model.loss(x, rng)``, so one plain Adam loop serves both; there is no discriminator and no health
monitor (their failure modes are not a GAN's).

It writes the same run directory as the GAN trainer (:class:`gan.rundir.RunDir`): ``config.json``
(without a ``discriminator`` entry), ``metrics.jsonl`` (``train`` and ``quality`` records), sample grids,
checkpoints that resume bit for bit (one seeded RNG for every draw, saved with the weights), the
early/middle/late zoo snapshots of the sampling module and ``generator.safetensors`` at the end.
Single process only (no torchrun): these models are small.
"""
from __future__ import annotations

import math
import os
import time

import torch
from torch import nn
from detector.progress import Progress

from detector import distributed as dist_
from detector.atomic import save_safetensors, torch_save
from detector.device import resolve_device

from .config import GanConfig
from .data import epoch_permutation, load_data
from .diffusion import DiffusionSampler
from .quality import METRIC_NAME, Quality, QualityMeter, feature_net
from .rundir import RunDir
from .trainer import RunResult
from .vae import VAE
from .zoo import ZooError, load_zoo, sample, save_sample_grids, save_snapshot

__all__ = ["build_model", "train_likelihood"]


def build_model(config: GanConfig) -> nn.Module:
    """The trainable model of a non-GAN run: it has ``loss(x, rng)`` and ``generator()`` (what the zoo keeps)."""
    args = config.resolved_generator_args()
    if config.generator == "vae":
        return VAE(**args)
    if config.generator == "diffusion":
        return DiffusionSampler(**args)
    raise ValueError(f"{config.generator!r} is a GAN generator: train it with gan.trainer")


def _save(run: RunDir, step: int, model: nn.Module, opt: torch.optim.Optimizer, rng: torch.Generator) -> None:
    torch_save({"step": step, "model": model.state_dict(), "opt": opt.state_dict(), "rng": rng.get_state(),
                "torch_rng": torch.get_rng_state()}, run.checkpoint_path(step))
    run.prune_checkpoints()


def _quality(meter: QualityMeter, gen: nn.Module, config: GanConfig, step: int) -> dict:
    q = meter(sample(gen, config.quality_samples, seed=config.seed + 2, batch_size=500))
    return {"type": "quality", "step": step, "metric": METRIC_NAME, "fd": q.fd, "precision": q.precision,
            "recall": q.recall, "coverage": q.coverage, "n": q.n}


def train_likelihood(config: GanConfig, out_dir: str | os.PathLike, resume: bool = False, *,
                     stop_at: int | None = None) -> RunResult:
    """Train a VAE or diffusion run into ``out_dir`` (same arguments and result as :func:`gan.trainer.train`)."""
    if dist_.world_size() > 1:
        raise ValueError(f"the {config.generator} family (not a GAN) trains in one process; run it without torchrun")
    run = RunDir(out_dir)
    config = run.training_config(config, resume)
    run.path.mkdir(parents=True, exist_ok=True)
    data, device = load_data(config), resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr_g, betas=(0.9, config.beta2))
    rng = torch.Generator().manual_seed(config.seed)
    step, records = 0, []
    ckpt = run.latest_checkpoint() if resume else None
    if ckpt is not None:
        s = run.read_checkpoint(ckpt)
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        rng.set_state(s["rng"])
        torch.set_rng_state(s["torch_rng"])
        step, records = int(s["step"]), run.read_metrics(up_to_step=int(s["step"]))
    run.write_config(config)
    meter = QualityMeter(feature_net([run.quality_cache]), data.reference)
    start, end, t0 = step, config.steps if stop_at is None else min(config.steps, stop_at), time.perf_counter()
    step = _loop(config, run, model, opt, rng, data.train, step, end, records, meter)
    seconds = time.perf_counter() - t0
    gen = model.generator()
    if step >= config.steps:
        save_safetensors(gen.state_dict(), run.generator_path, metadata={"generator": config.generator})
    quals = [r for r in records if r.get("type") == "quality"]
    q = quals[-1] if quals and step >= config.steps else None
    last_q = None if q is None else Quality(q["fd"], q["precision"], q["recall"], q["coverage"], q["n"])
    return RunResult(run.path, step, seconds, (step - start) * config.batch_size / max(seconds, 1e-9), last_q,
                     [(r["step"], r["fd"]) for r in quals], [], [], _snapshots(run))


def _snapshots(run: RunDir) -> list:
    try:
        return load_zoo(run.path)
    except ZooError:  # stopped before the first snapshot
        return []


def _loop(config: GanConfig, run: RunDir, model: nn.Module, opt: torch.optim.Optimizer, rng: torch.Generator,
          images: torch.Tensor, step: int, end: int, records: list, meter: QualityMeter) -> int:
    """Adam steps ``step`` -> ``end`` with samples, snapshots, metrics and checkpoints when due; the last step."""
    c, dev, gen = config, next(model.parameters()).device, model.generator()
    per_epoch = len(images) // c.batch_size
    sample_every = c.sample_every or per_epoch
    bar = Progress(total=c.steps, initial=step, desc=c.generator, unit="step", enabled=c.progress)
    perm_epoch, perm = -1, None
    model.train()
    while step < end:
        epoch = step // per_epoch
        if epoch != perm_epoch:
            perm, perm_epoch = epoch_permutation(len(images), c.seed, epoch), epoch
        j = step % per_epoch
        x = images[perm[j * c.batch_size:(j + 1) * c.batch_size]].to(dev) * 2.0 - 1.0  # (B, C, S, S) in [-1, 1]
        loss = model.loss(x, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            bar.close()
            raise FloatingPointError(f"step {step}: loss is not finite ({value}); try a lower --lr-g")
        if step % c.health_every == 0:
            records.append({"type": "train", "step": step, "epoch": epoch, "loss": value})
            bar.set_postfix_str(f"ep {epoch} loss {value:.4f}")
        bar.update(1)
        if step % sample_every == 0 or step == c.steps:
            name = "final.png" if step == c.steps else f"epoch_{epoch:03d}_s{step:07d}.png"
            save_sample_grids(gen, run.samples, name, step, c.seed + 1, c.channels)
        stage = c.zoo_steps().get(step)
        if stage is not None:
            save_snapshot(run.path, gen, f"{c.generator}_{stage}_s{step:06d}", step, c.generator,
                          c.resolved_generator_args(), stage=stage)
        if step == c.steps or (c.quality_every > 0 and step % c.quality_every == 0):
            records.append(_quality(meter, gen, c, step))
        if step % c.health_every == 0 or step == end or step == c.steps:
            run.write_metrics(records)
        if step % c.checkpoint_every == 0 or step == end:
            _save(run, step, model, opt, rng)
    bar.close()
    return step
