"""Hardening: fine-tune a GAN discriminator into a calibrated real-vs-fake detector.

Starts from D's weights (the sign of its head flipped once, so logit > 0 = fake), trains on real
images versus fakes from named generator sets with the CNNDetection augmentations (Wang et al.,
CVPR 2020, see :mod:`detector.train.augment`) in :func:`detector.train.loop.train_detector`, then

* chooses the decision threshold on the *validation* split at a target false-positive rate
  (never on test: the DeepfakeBench/UniversalFakeDetect hygiene failure), and
* fits a temperature on validation (Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern
  Neural Networks", ICML 2017) so the score reads as a probability of "fake"
  (:mod:`detector.train.calibration`).

Works on tensors only: it imports neither ``gan`` nor ``eval``. The CLI (``unmask harden``)
samples the fakes from a GAN run's generator zoo and passes them in.

Training checkpoints (weights, optimiser, step) live beside the artifact under
``checkpoints/`` and are separate from it; the artifact itself (``model.safetensors`` +
``detector.json``) is written only once training is done, so a crash never leaves one that loads.
Under ``torchrun`` (process group set up by the command's entry point) rank 0 alone writes
checkpoints, plots, the replay buffer and the artifact.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from torch import nn

from .. import distributed as dist_
from ..artifact import Detector, DetectorSpec
from ..atomic import write_json
from ..nets import flip_head
from .calibration import SplitMetrics, calibrate_and_evaluate, format_metrics
from .config import HardenConfig
from .loop import require_process_group, train_detector
from .replay import REPLAY_FILE, save_replay
from .splits import Splits, fingerprint
from .trust import fit_trust

__all__ = ["HardenConfig", "HardenResult", "harden", "CHECKPOINT_DIR", "CHECKPOINT_FILE"]

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILE = "harden.pt"


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


def _score_plot(path: Path, real: np.ndarray, fakes: Mapping[str, np.ndarray], threshold: float, title: str) -> None:
    from ..figures import figure_png, pyplot

    fig, ax = pyplot().subplots(figsize=(6, 3.5))
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
    figure_png(fig, path, dpi=110)


# ---------------------------------------------------------------------------- the whole recipe


def _check_inputs(real: Splits, fakes: Mapping[str, Splits]) -> tuple[int, int]:
    """``(channels, size)`` of the one square image shape every split shares; raises otherwise."""
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
    return c, h


def harden(net: nn.Module, architecture: str, arch_args: Mapping, real: Splits, fakes: Mapping[str, Splits],
           out: str | os.PathLike, config: HardenConfig = HardenConfig(), *, flip: bool = True,
           policy: str = "resize", tile_aggregate: str = "max", mean: Sequence[float] = (0.5,),
           std: Sequence[float] = (0.5,), provenance: Mapping | None = None, resume: bool = False,
           log: Callable[[str], None] = print, progress: bool = True, originals: Mapping | None = None,
           weights: Mapping[str, float] | None = None) -> HardenResult:
    """Harden ``net`` (a GAN discriminator, logit > 0 = real unless ``flip=False``) into a detector
    artifact in ``out``; returns the metrics. ``real`` and each of ``fakes`` are already split;
    ``weights`` give each fake set's share of the training fakes (default: equal). ``originals``: what
    the inputs no longer show of the training reals (see :func:`detector.train.trust.fit_trust`), for
    the domain model."""
    t0 = time.time()
    out = Path(out)
    _, _, main = require_process_group()
    if not main:
        log = lambda *a, **k: None  # noqa: E731
    c, h = _check_inputs(real, fakes)
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
                                         "fakes": {n: fingerprint(f.train) for n, f in fakes.items()},
                                         **({"weights": dict(weights)} if weights else {})},
                                        sort_keys=True).encode()).hexdigest()
    if main and not resume and ckpt.exists():
        ckpt.unlink()
    dist_.barrier()  # the stale checkpoint is gone before any rank looks for one
    resumed = train_detector(net, real.train, {n: f.train for n, f in fakes.items()}, config, spec.mean, spec.std,
                             ckpt, resume, weights=weights, data_id=data_id, log=log, progress=progress)
    cal = calibrate_and_evaluate(net, spec, real, fakes, config.target_fpr, config.device, config.eval_batch)
    log(format_metrics([cal.val, cal.test]))
    prov = dict(provenance or {})
    prov.update({
        "seed": config.seed,
        "split_sizes": {"real": real.sizes(), **{n: f.sizes() for n, f in fakes.items()}},
        "generators": prov.get("generators") or [{"name": n} for n in fakes],
        "harden_config": config.to_json(),
        "metrics": {"val": cal.val.to_json(), "test": cal.test.to_json()},
        "flipped_from_discriminator": bool(flip),
    })
    if weights:  # each set's share of the fake half of every training batch
        w = {n: float(weights.get(n, 1.0)) for n in fakes}
        prov["fake_weights"] = {n: v / sum(w.values()) for n, v in w.items()}
    rule = (f"FPR <= {config.target_fpr:g} on validation real images (n={len(real.val)}); "
            f"validation FPR {cal.val.fpr:.4f}, TPR {cal.val.tpr:.4f}")
    spec = replace(spec, threshold=cal.threshold, threshold_rule=rule, temperature=cal.temperature, provenance=prov)
    trust = fit_trust(net, spec, real, config.target_fpr, config.device, originals, config.seed, fakes=fakes)
    if main:  # rank 0 alone writes
        save_replay(out / REPLAY_FILE, real, fakes, config.replay_per_generator, config.seed)
        write_json(out / "harden_metrics.json", {"val": cal.val.to_json(), "test": cal.test.to_json(),
                                                 "temperature": cal.temperature, "threshold": cal.threshold})
        t = cal.test
        _score_plot(out / "scores.png", cal.test_real, cal.test_fakes, cal.threshold,
                    f"test split: AUC {t.auc:.4f}, FPR {t.fpr:.4f}, TPR {t.tpr:.4f}")
        det = Detector(net.cpu(), spec)
        det.trust = trust
        det.save(out)  # artifact last: it only exists once everything else is done
    dist_.barrier()  # the artifact is in place before any rank returns
    log(f"detector written to {out} (threshold {cal.threshold:.4f}, temperature {cal.temperature:.3f})")
    return HardenResult(out, cal.threshold, cal.temperature, cal.val, cal.test, config.steps, resumed,
                        time.time() - t0)
