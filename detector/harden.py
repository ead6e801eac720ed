"""Hardening: fine-tune a GAN discriminator into a calibrated real-vs-fake detector.

Starts from D's weights (the sign of its head flipped once, so logit > 0 = fake), trains on real
images versus fakes from named generator sets with the CNNDetection augmentations (Wang et al.,
CVPR 2020, see :mod:`detector.augment`), then

* chooses the decision threshold on the *validation* split at a target false-positive rate
  (never on test: the DeepfakeBench/UniversalFakeDetect hygiene failure), and
* fits a temperature on validation (Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern
  Neural Networks", ICML 2017) so the score reads as a probability of "fake".

Works on tensors only: it imports neither ``gan`` nor ``eval``. The CLI (``unmask harden``)
samples the fakes from a GAN run's generator zoo and passes them in.

Training checkpoints (weights, optimiser, step) live beside the artifact under
``checkpoints/`` and are separate from it; the artifact itself (``model.safetensors`` +
``detector.json``) is written only once training is done, so a crash never leaves one that loads.
Each step draws its batch and augmentations from an RNG seeded by ``(seed, step)``, so a resumed
run follows the same path as an uninterrupted one.

Under ``torchrun`` the network is wrapped in DistributedDataParallel (gradients averaged over
ranks); ``batch_size`` is the global batch, drawn from the step's seed and shared round-robin
over the ranks (each rank augments its share with its own RNG); rank 0 alone writes checkpoints,
plots and the artifact. Checkpoints hold no per-rank state, so a run resumes under any number of
processes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import distributed as dist_
from .artifact import Detector, DetectorSpec
from .atomic import save_safetensors, torch_save, write_json
from .augment import AugmentConfig, augment_batch
from .device import amp_enabled, autocast, resolve_device, to_channels_last
from .nets import flip_head
from .preprocess import normalize

__all__ = [
    "Splits", "HardenConfig", "SplitMetrics", "HardenResult", "split_indices", "split_tensor", "fingerprint",
    "train_detector", "fit_temperature", "threshold_at_fpr", "collect_logits", "evaluate", "harden",
    "format_metrics", "save_replay", "load_replay", "real_splits", "calibrate_and_evaluate", "REPLAY_FILE",
    "CHECKPOINT_DIR",
]

REPLAY_FILE = "replay.safetensors"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILE = "harden.pt"


@dataclass(frozen=True)
class Splits:
    """One image set cut into train / validation / test tensors ``(N, C, S, S)`` in [0, 1]."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


@dataclass(frozen=True)
class HardenConfig:
    """How to harden; maps onto ``unmask harden`` options and is saved in provenance."""

    steps: int = 8000
    batch_size: int = 64             # half real, half fake
    lr: float = 4e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    cosine: bool = True              # cosine learning-rate decay to 0 over the steps (Loshchilov & Hutter 2017)
    target_fpr: float = 0.01
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    checkpoint_every: int = 100
    eval_batch: int = 512
    replay_per_generator: int = 1024  # fakes per generator (and per split) kept for retraining
    device: str = "cpu"
    amp: bool = False                # bfloat16 autocast on CUDA (ignored, with a note, on CPU)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")
        if not 0.0 < self.target_fpr < 1.0:
            raise ValueError(f"target_fpr must be in (0, 1), got {self.target_fpr}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")

    def to_json(self) -> dict:
        d = asdict(self)
        d["augment"] = self.augment.to_json()
        d["betas"] = list(self.betas)
        return d


@dataclass(frozen=True)
class SplitMetrics:
    """Metrics of a detector on one split: all generators pooled, and per generator."""

    split: str
    auc: float
    accuracy: float
    fpr: float            # real images called fake at the threshold
    tpr: float            # fakes called fake at the threshold
    nll: float            # mean binary cross-entropy of the calibrated scores
    n_real: int
    n_fake: int
    threshold: float
    per_generator: dict = field(default_factory=dict)   # name -> {"auc", "tpr", "n"}

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HardenResult:
    detector_dir: Path
    threshold: float
    temperature: float
    val: SplitMetrics
    test: SplitMetrics
    steps: int
    resumed_from: int
    seconds: float


# ---------------------------------------------------------------------------- data helpers


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Disjoint index sets covering ``range(n)``: one per fraction (the last takes the rest)."""
    if n < len(fractions):
        raise ValueError(f"cannot split {n} items into {len(fractions)} parts")
    if any(f < 0 for f in fractions) or sum(fractions) > 1.0 + 1e-9:
        raise ValueError(f"fractions must be non-negative and sum to at most 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    out, start = [], 0
    for i, f in enumerate(fractions):
        stop = n if i == len(fractions) - 1 else start + max(1, int(round(f * n)))
        out.append(np.sort(perm[start:stop]))
        start = stop
    return out


def split_tensor(x: torch.Tensor, seed: int, val: float = 0.15, test: float = 0.15) -> Splits:
    """Cut ``x`` into train / val / test by ``seed`` with no overlap."""
    tr, va, te = split_indices(len(x), (1.0 - val - test, val, test), seed)
    return Splits(x[tr], x[va], x[te])


def fingerprint(*tensors: torch.Tensor) -> str:
    """SHA-256 of tensors' bytes (to refuse resuming on different data)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)


def save_replay(path: Path, real: Splits, fakes: Mapping[str, Splits], per_generator: int, seed: int) -> None:
    """Keep a sample of every set (uint8) beside the artifact so retraining can replay it."""
    g = np.random.default_rng(seed + 7919)
    tensors: dict[str, torch.Tensor] = {}

    def take(x: torch.Tensor, n: int) -> torch.Tensor:
        idx = np.sort(g.permutation(len(x))[: min(n, len(x))])
        return _to_uint8(x[torch.from_numpy(idx)])

    names = list(fakes)
    for split in ("train", "val", "test"):
        tensors[f"real.{split}"] = take(getattr(real, split), 4 * per_generator)
        for i, name in enumerate(names):
            tensors[f"fake{i}.{split}"] = take(getattr(fakes[name], split), per_generator)
    save_safetensors(tensors, path, metadata={"format": "unmask-replay", "generators": json.dumps(names)})


def load_replay(path: Path) -> tuple[Splits, dict[str, Splits]]:
    """Inverse of :func:`save_replay`: the real sample and each generator's sample, as float [0, 1]."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no replay buffer (retraining needs the {REPLAY_FILE} written by harden)")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != "unmask-replay":
            raise ValueError(f"{path}: not an unmask replay buffer")
        names = json.loads(meta["generators"])
        t = {k: f.get_tensor(k).float().div_(255.0) for k in f.keys()}
    real = Splits(t["real.train"], t["real.val"], t["real.test"])
    fakes = {n: Splits(t[f"fake{i}.train"], t[f"fake{i}.val"], t[f"fake{i}.test"]) for i, n in enumerate(names)}
    return real, fakes


# ---------------------------------------------------------------------------- training


def _batch(real: torch.Tensor, fakes: Sequence[torch.Tensor], weights: np.ndarray, half: int,
           gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ri = torch.randint(0, len(real), (half,), generator=gen)
    which = torch.multinomial(torch.as_tensor(weights, dtype=torch.float), half, replacement=True, generator=gen)
    parts = []
    for k, src in enumerate(fakes):
        m = int((which == k).sum())
        if m:
            parts.append(src[torch.randint(0, len(src), (m,), generator=gen)])
    x = torch.cat([real[ri]] + parts)
    y = torch.cat([torch.zeros(half), torch.ones(len(x) - half)])
    return x, y


def train_detector(net: nn.Module, real_train: torch.Tensor, fake_train: Mapping[str, torch.Tensor],
                   config: HardenConfig, mean: Sequence[float], std: Sequence[float],
                   checkpoint: Path | None = None, resume: bool = False, weights: Mapping[str, float] | None = None,
                   data_id: str = "", log: Callable[[str], None] = print, progress: bool = True,
                   extra_loss: Callable[[nn.Module], torch.Tensor] | None = None) -> int:
    """Fine-tune ``net`` (logit > 0 = fake) with BCE on augmented balanced batches.

    ``weights`` give each fake set's share of the fake half (default equal). Writes a checkpoint
    every ``config.checkpoint_every`` steps; with ``resume`` continues from it. Returns the step it
    resumed from (0 for a fresh run).
    """
    from tqdm import tqdm

    device = resolve_device(config.device)
    dist_.init(device)
    rank, world, main = dist_.rank(), dist_.world_size(), dist_.is_main()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be divisible by the "
                         f"{world} processes")
    use_amp = amp_enabled(device, config.amp, warn=main)
    if not main:
        log = lambda *a, **k: None  # noqa: E731
    names = list(fake_train)
    if not names:
        raise ValueError("no fake images to train on")
    if len(real_train) == 0 or any(len(fake_train[n]) == 0 for n in names):
        raise ValueError("every training set needs at least one image")
    w = np.array([float((weights or {}).get(n, 1.0)) for n in names])
    w = w / w.sum()
    to_channels_last(net.to(device), device)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
    start = 0
    if resume and checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state.get("data_id", "") != data_id:
            raise ValueError(f"{checkpoint}: checkpoint was made on different data or settings; "
                             "start afresh without --resume or use another output folder")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
        log(f"resuming hardening from step {start} ({checkpoint})")
    fakes = [fake_train[n] for n in names]
    half = config.batch_size // 2
    model = dist_.wrap_ddp(net, device)  # gradients averaged over ranks (the plain net when not distributed)
    net.train()
    bar = tqdm(range(start, config.steps), total=config.steps, initial=start, desc="harden", unit="step",
               disable=not (progress and main), dynamic_ncols=True)
    running = None
    for step in bar:
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        rng = np.random.default_rng([config.seed, step])
        x, y = _batch(real_train, fakes, w, half, gen)
        if world > 1:  # this rank's share of the global batch, augmented with its own RNG
            x, y = x[rank::world], y[rank::world]
            rng = np.random.default_rng([config.seed, step, rank])
        x = augment_batch(x, config.augment, rng)
        if config.cosine:  # a function of the step alone, so a resumed run gets the same schedule
            for group in opt.param_groups:
                group["lr"] = config.lr * 0.5 * (1.0 + math.cos(math.pi * step / max(1, config.steps)))
        x = normalize(x.to(device), mean, std)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, use_amp):
            logits = model(x).float()
        loss = F.binary_cross_entropy_with_logits(logits, y.to(device))
        if extra_loss is not None:
            loss = loss + extra_loss(net)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = loss.item()
        running = lv if running is None else 0.95 * running + 0.05 * lv
        if (step + 1) % 20 == 0:
            bar.set_postfix(loss=f"{running:.4f}")
        if checkpoint is not None and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps):
            dist_.broadcast_buffers(net)  # rank 0's BatchNorm statistics everywhere: what is saved is what all hold
            if main:
                torch_save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step + 1, "data_id": data_id},
                           checkpoint)
    bar.close()
    dist_.broadcast_buffers(net)
    net.eval()
    return start


@torch.inference_mode()
def collect_logits(net: nn.Module, x: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                   batch: int = 512, device: str = "cpu") -> torch.Tensor:
    """Raw logits ``(N,)`` (float64) of ``x`` ``(N, C, S, S)`` in [0, 1], in eval mode."""
    net.eval()
    out = [net(normalize(x[i:i + batch].to(device), mean, std)).double().cpu() for i in range(0, len(x), batch)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature ``T`` minimising the NLL of ``sigmoid(logits / T)`` (Guo et al., ICML 2017).

    A 1-D problem, solved by a coarse log-spaced grid then golden-section refinement; clamped to
    the artifact's allowed range [0.001, 1000].
    """
    z, y = logits.double().numpy(), labels.double().numpy()

    def nll(t: float) -> float:  # mean BCE of sigmoid(z / t), computed stably
        u = z / t
        return float(np.mean(np.logaddexp(0.0, u) - y * u))

    grid = np.logspace(-3, 3, 61)
    vals = [nll(t) for t in grid]
    k = int(np.argmin(vals))
    lo, hi = math.log(grid[max(0, k - 1)]), math.log(grid[min(len(grid) - 1, k + 1)])
    phi = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - phi * (b - a), a + phi * (b - a)
    for _ in range(40):
        if nll(math.exp(c)) < nll(math.exp(d)):
            b = d
        else:
            a = c
        c, d = b - phi * (b - a), a + phi * (b - a)
    t = math.exp((a + b) / 2)
    return float(min(1000.0, max(1e-3, t)))


def threshold_at_fpr(real_scores: torch.Tensor, target_fpr: float) -> float:
    """Threshold on scores (``score >= t`` means fake) letting at most ``target_fpr`` of the real
    scores through: midway between the k-th and (k+1)-th highest real score, k = floor(fpr * n)."""
    s = torch.sort(real_scores.double().flatten(), descending=True).values
    n = len(s)
    if n == 0:
        raise ValueError("no real validation scores to choose a threshold from")
    k = int(math.floor(target_fpr * n + 1e-9))
    if k >= n:
        return 0.0
    upper = float(s[k - 1]) if k >= 1 else 1.0
    lower = float(s[k])
    t = (upper + lower) / 2 if upper > lower else math.nextafter(lower, 2.0)
    return float(min(1.0, max(0.0, t)))


def evaluate(split: str, real_logits: torch.Tensor, fake_logits: Mapping[str, torch.Tensor], temperature: float,
             threshold: float) -> SplitMetrics:
    """AUC, accuracy, FPR/TPR at ``threshold`` and NLL (sklearn), pooled and per generator."""
    from sklearn.metrics import roc_auc_score

    def probs(z: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(z.double() / temperature).numpy()

    pr = probs(real_logits)
    per: dict[str, dict] = {}
    allf = []
    for name, z in fake_logits.items():
        pf = probs(z)
        allf.append(pf)
        yy = np.r_[np.zeros(len(pr)), np.ones(len(pf))]
        per[name] = {"auc": float(roc_auc_score(yy, np.r_[pr, pf])) if len(pf) and len(pr) else float("nan"),
                     "tpr": float((pf >= threshold).mean()) if len(pf) else float("nan"), "n": int(len(pf))}
    pf = np.concatenate(allf) if allf else np.zeros(0)
    y = np.r_[np.zeros(len(pr)), np.ones(len(pf))]
    p = np.r_[pr, pf]
    z = torch.cat([real_logits.double()] + [fake_logits[n].double() for n in fake_logits]) / temperature
    nll = float(F.binary_cross_entropy_with_logits(z, torch.from_numpy(y))) if len(y) else float("nan")
    auc = float(roc_auc_score(y, p)) if len(pr) and len(pf) else float("nan")
    return SplitMetrics(split=split, auc=auc, accuracy=float(((p >= threshold) == (y == 1)).mean()),
                        fpr=float((pr >= threshold).mean()), tpr=float((pf >= threshold).mean()) if len(pf) else
                        float("nan"), nll=nll, n_real=int(len(pr)), n_fake=int(len(pf)), threshold=threshold,
                        per_generator=per)


def format_metrics(ms: Sequence[SplitMetrics]) -> str:
    """A small text table of split metrics (and per-generator AUC/TPR)."""
    lines = [f"{'split':<8}{'AUC':>9}{'acc':>8}{'FPR':>8}{'TPR':>8}{'NLL':>9}{'real':>7}{'fake':>7}"]
    for m in ms:
        lines.append(f"{m.split:<8}{m.auc:>9.5f}{m.accuracy:>8.4f}{m.fpr:>8.4f}{m.tpr:>8.4f}{m.nll:>9.4f}"
                     f"{m.n_real:>7}{m.n_fake:>7}")
        for name, g in m.per_generator.items():
            lines.append(f"  {name[:30]:<30} AUC {g['auc']:.5f}  TPR {g['tpr']:.4f}  n={g['n']}")
    return "\n".join(lines)


def _score_plot(path: Path, real: np.ndarray, fakes: Mapping[str, np.ndarray], threshold: float, title: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import write_bytes

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(0, 1, 51)
    ax.hist(real, bins=bins, alpha=0.6, label=f"real (n={len(real)})", color="tab:blue")
    for name, s in fakes.items():
        ax.hist(s, bins=bins, alpha=0.4, label=f"{name[:24]} (n={len(s)})", histtype="stepfilled")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("calibrated score (probability of fake)")
    ax.set_ylabel("images")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def calibrate_and_evaluate(net: nn.Module, spec: DetectorSpec, real: Splits, fakes: Mapping[str, Splits],
                           target_fpr: float, device: str = "cpu", batch: int = 512
                           ) -> tuple[float, float, SplitMetrics, SplitMetrics, dict]:
    """Fit temperature and threshold on validation; return them, val and test metrics and test scores."""
    m, s = spec.mean, spec.std
    lg = lambda x: collect_logits(net, x, m, s, batch, device)  # noqa: E731
    rv = lg(real.val)
    fv = {n: lg(f.val) for n, f in fakes.items()}
    zv = torch.cat([rv] + list(fv.values()))
    yv = torch.cat([torch.zeros(len(rv))] + [torch.ones(len(v)) for v in fv.values()]).double()
    temperature = fit_temperature(zv, yv)
    threshold = threshold_at_fpr(torch.sigmoid(rv / temperature), target_fpr)
    val = evaluate("val", rv, fv, temperature, threshold)
    rt = lg(real.test)
    ft = {n: lg(f.test) for n, f in fakes.items()}
    test = evaluate("test", rt, ft, temperature, threshold)
    scores = {"real": torch.sigmoid(rt / temperature).numpy(),
              "fakes": {n: torch.sigmoid(z / temperature).numpy() for n, z in ft.items()}}
    return temperature, threshold, val, test, scores


# ---------------------------------------------------------------------------- the whole recipe


def harden(net: nn.Module, architecture: str, arch_args: Mapping, real: Splits, fakes: Mapping[str, Splits],
           out: str | os.PathLike, config: HardenConfig = HardenConfig(), *, flip: bool = True,
           policy: str = "resize", tile_aggregate: str = "max", mean: Sequence[float] = (0.5,),
           std: Sequence[float] = (0.5,), provenance: Mapping | None = None, resume: bool = False,
           log: Callable[[str], None] = print, progress: bool = True) -> HardenResult:
    """Harden ``net`` (a GAN discriminator, logit > 0 = real unless ``flip=False``) into a detector
    artifact in ``out``; returns the metrics. ``real`` and each of ``fakes`` are already split."""
    t0 = time.time()
    out = Path(out)
    dist_.init(resolve_device(config.device))
    main = dist_.is_main()
    if not main:
        log = lambda *a, **k: None  # noqa: E731
    if not fakes:
        raise ValueError("hardening needs at least one set of fake images")
    shapes = {tuple(t.shape[1:]) for sp in [real, *fakes.values()] for t in (sp.train, sp.val, sp.test) if len(t)}
    if len(shapes) != 1:
        raise ValueError(f"all images must share one (C, S, S) shape, got {sorted(shapes)}")
    c, h, w = next(iter(shapes))
    if h != w:
        raise ValueError(f"images must be square, got {h}x{w}")
    for name, sp in [("real", real), *fakes.items()]:
        for split in ("val", "test"):
            if len(getattr(sp, split)) == 0:
                raise ValueError(f"{name}: the {split} split is empty")
    if main:
        out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT_DIR / CHECKPOINT_FILE
    if flip:
        flip_head(net)
    spec = DetectorSpec(architecture=architecture, arch_args=dict(arch_args), input_size=h, channels=c,
                        mean=list(mean), std=list(std), policy=policy, tile_aggregate=tile_aggregate)
    spec.validate("harden")
    settings = {k: v for k, v in config.to_json().items() if k not in ("device", "amp")}  # not the result's
    data_id = hashlib.sha256(json.dumps({"config": settings, "arch": architecture, "args": dict(arch_args),
                                         "real": fingerprint(real.train),
                                         "fakes": {n: fingerprint(f.train) for n, f in fakes.items()}},
                                        sort_keys=True).encode()).hexdigest()
    if main and not resume and ckpt.exists():
        ckpt.unlink()
    dist_.barrier()  # the stale checkpoint is gone before any rank looks for one
    resumed = train_detector(net, real.train, {n: f.train for n, f in fakes.items()}, config, spec.mean, spec.std,
                             ckpt, resume, data_id=data_id, log=log, progress=progress)
    temperature, threshold, val, test, scores = calibrate_and_evaluate(net, spec, real, fakes, config.target_fpr,
                                                                       config.device, config.eval_batch)
    log(format_metrics([val, test]))
    prov = dict(provenance or {})
    prov.update({
        "seed": config.seed,
        "split_sizes": {"real": real.sizes(), **{n: f.sizes() for n, f in fakes.items()}},
        "generators": prov.get("generators") or [{"name": n} for n in fakes],
        "harden_config": config.to_json(),
        "metrics": {"val": val.to_json(), "test": test.to_json()},
        "flipped_from_discriminator": bool(flip),
    })
    rule = (f"FPR <= {config.target_fpr:g} on validation real images (n={len(real.val)}); "
            f"validation FPR {val.fpr:.4f}, TPR {val.tpr:.4f}")
    spec = replace(spec, threshold=threshold, threshold_rule=rule, temperature=temperature, provenance=prov)
    if main:  # rank 0 alone writes
        save_replay(out / REPLAY_FILE, real, fakes, config.replay_per_generator, config.seed)
        write_json(out / "harden_metrics.json", {"val": val.to_json(), "test": test.to_json(),
                                                 "temperature": temperature, "threshold": threshold})
        _score_plot(out / "scores.png", scores["real"], scores["fakes"], threshold,
                    f"test split: AUC {test.auc:.4f}, FPR {test.fpr:.4f}, TPR {test.tpr:.4f}")
        Detector(net.cpu(), spec).save(out)  # artifact last: it only exists once everything else is done
    dist_.barrier()  # the artifact is in place before any rank returns
    log(f"detector written to {out} (threshold {threshold:.4f}, temperature {temperature:.3f})")
    return HardenResult(out, threshold, temperature, val, test, config.steps, resumed, time.time() - t0)


def real_splits(source: str, size: int, channels: int, seed: int, val_fraction: float = 0.15,
                test_fraction: float = 0.15, limit: int | None = None) -> tuple[Splits, dict]:
    """Real images from ``source`` split into train / val / test by ``seed`` with no overlap.

    For Fashion-MNIST, train and validation come from the official *train* split and test is the
    official t10k split (never trained on); for a folder or video, all three are cut from it.
    Returns the splits and a provenance dict (source, checksum, seed, sizes).
    """
    from .data import open_source

    info: dict = {"source": source, "split_seed": seed, "val_fraction": val_fraction,
                  "test_fraction": test_fraction, "limit": limit}
    if source.startswith("fashion-mnist"):
        tr = open_source(source, size, channels, "train")
        te = open_source(source, size, channels, "test")
        x = tr.images if limit is None else tr.images[:limit]
        a, b = split_indices(len(x), (1.0 - val_fraction, val_fraction), seed)
        sp = Splits(x[torch.from_numpy(a)], x[torch.from_numpy(b)], te.images)
        info.update({"name": tr.name, "checksum": getattr(tr, "checksum", ""), "test": "official t10k split",
                     "train_val_from": "official train split"})
    else:
        src = open_source(source, size, channels, "train")
        imgs = src.images if hasattr(src, "images") else torch.stack(
            [src[i][0] for i in range(len(src) if limit is None else min(limit, len(src)))])
        sp = split_tensor(imgs, seed, val_fraction, test_fraction)
        info.update({"name": getattr(src, "name", source), "checksum": fingerprint(imgs)})
    info["sizes"] = sp.sizes()
    return sp, info
