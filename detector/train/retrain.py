"""Retrain a detector on a new generator without forgetting the ones it already knew.

Fine-tunes the artifact's network on the new generator's images while *replaying* a sample of
what it was trained on before (``replay.safetensors``, written by hardening beside the artifact
and ignored by :func:`detector.load`): experience replay, the simplest remedy for catastrophic
forgetting in continual learning (Rolnick et al., "Experience Replay for Continual Learning",
NeurIPS 2019; Robins, "Catastrophic forgetting, rehearsal and pseudorehearsal", 1995).
Threshold and temperature are chosen again on validation. A before/after table shows the metrics
on the new generator(s) and each old one; the new provenance lists all of them.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from .. import distributed as dist_
from ..artifact import WEIGHTS, Detector, load
from ..atomic import write_json, write_text
from .calibration import SplitMetrics, calibrate_and_evaluate, collect_logits, evaluate
from .config import HardenConfig, RetrainConfig
from .harden import CHECKPOINT_DIR
from .loop import require_process_group, train_detector
from .replay import REPLAY_FILE, load_replay, save_replay
from .splits import Splits, fingerprint, real_splits, split_tensor
from .trust import fit_trust

__all__ = ["RetrainConfig", "RetrainResult", "retrain", "format_table"]


@dataclass(frozen=True)
class RetrainResult:
    detector_dir: Path
    before: SplitMetrics        # old detector on the test splits (old + new generators)
    after: SplitMetrics         # new detector on the same test splits
    new_generators: list
    old_generators: list
    table: str
    seconds: float


def _full_real(spec, replayed: Splits, log: Callable[[str], None]) -> tuple[Splits, str]:
    """The detector's full real splits, rebuilt from its provenance (source, split seed and fractions)
    when that source is still available with the same checksum; else the replayed sample."""
    d = spec.provenance.get("data") or {}
    src, seed = d.get("source"), d.get("split_seed")
    if not isinstance(src, str) or not isinstance(seed, int) or "val_fraction" not in d:
        return replayed, "replay sample"
    if not (src.startswith("fashion-mnist") or Path(src).exists()):
        return replayed, "replay sample"
    try:
        sp, info = real_splits(src, spec.input_size, spec.channels, seed, d["val_fraction"],
                               d.get("test_fraction", 0.15), d.get("limit"))
    except (OSError, ValueError) as e:
        log(f"real data {src!r} not usable ({e}); replaying the stored sample instead")
        return replayed, "replay sample"
    if d.get("checksum") and info.get("checksum") != d.get("checksum"):
        log(f"real data {src!r} changed since hardening (checksum differs); replaying the stored sample instead")
        return replayed, "replay sample"
    log(f"real images: rebuilt the original splits from {src} (seed {seed}): {sp.sizes()}")
    return sp, f"{src} (seed {seed})"


def format_table(before: SplitMetrics, after: SplitMetrics, new: Sequence[str]) -> str:
    lines = [f"{'generator':<32}{'kind':<6}{'AUC before':>11}{'AUC after':>11}{'TPR before':>11}{'TPR after':>11}"]
    for name in after.per_generator:
        b, a = before.per_generator[name], after.per_generator[name]
        lines.append(f"{name[:31]:<32}{'new' if name in new else 'old':<6}{b['auc']:>11.4f}{a['auc']:>11.4f}"
                     f"{b['tpr']:>11.4f}{a['tpr']:>11.4f}")
    lines.append(f"{'real (false-positive rate)':<38}{'':>11}{'':>11}{before.fpr:>11.4f}{after.fpr:>11.4f}")
    lines.append(f"{'all (pooled AUC)':<38}{before.auc:>11.4f}{after.auc:>11.4f}")
    return "\n".join(lines)


def _new_splits(new_fakes: Mapping[str, torch.Tensor], spec, config: RetrainConfig) -> dict[str, Splits]:
    """Each new generator's images, checked against the artifact's input and split by the seed."""
    out: dict[str, Splits] = {}
    want = (spec.channels, spec.input_size, spec.input_size)
    for k, (name, x) in enumerate(new_fakes.items()):
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"{name}: images must be {want}, got {tuple(x.shape[1:])}")
        if len(x) < 10:
            raise ValueError(f"{name}: need at least 10 images of the new generator, got {len(x)}")
        out[name] = split_tensor(x, config.seed + 101 * (k + 1), config.val_fraction, config.test_fraction)
    return out


def _provenance(spec, src_dir: Path, config: RetrainConfig, old_fakes: Mapping, new_splits: Mapping,
                real_note: str, sources: Mapping[str, str] | None, val: SplitMetrics, before: SplitMetrics,
                after: SplitMetrics) -> dict:
    """The old provenance plus the new generators, a history entry and the new metrics."""
    prov = dict(spec.provenance)
    gens = list(prov.get("generators") or [{"name": n} for n in old_fakes])
    for n in new_splits:
        gens.append({"name": n, "source": (sources or {}).get(n, "tensor"), "added_by": "retrain",
                     "split_sizes": new_splits[n].sizes()})
    history = list(prov.get("history", []))
    history.append({"retrained_from": str(src_dir), "real_images": real_note, "previous_weights_sha256":
                    hashlib.sha256((src_dir / WEIGHTS).read_bytes()).hexdigest(),
                    "previous_metrics": prov.get("metrics"), "new_generators": list(new_splits),
                    "config": config.to_json()})
    prov.update({"generators": gens, "history": history, "metrics": {"val": val.to_json(), "test": after.to_json()},
                 "retrain_before_after": {"before": before.to_json(), "after": after.to_json()}})
    return prov


def retrain(detector_dir: str | os.PathLike, new_fakes: Mapping[str, torch.Tensor], out: str | os.PathLike,
            config: RetrainConfig = RetrainConfig(), extra_real: torch.Tensor | None = None,
            sources: Mapping[str, str] | None = None, resume: bool = False,
            log: Callable[[str], None] = print, progress: bool = True, detector: Detector | None = None
            ) -> RetrainResult:
    """Fine-tune the detector in ``detector_dir`` on ``new_fakes`` (name -> ``(N, C, S, S)`` [0, 1])
    with replay of its old data; write the new artifact (and replay buffer) into ``out``.

    ``detector`` is the artifact already loaded from ``detector_dir`` (on ``config.device``), when
    the caller has it; it is trained in place."""
    t0 = time.time()
    src_dir, out = Path(detector_dir), Path(out)
    _, _, main = require_process_group()
    if not main:
        log = lambda *a, **k: None  # noqa: E731
    if src_dir.resolve() == out.resolve():
        raise ValueError("--out must differ from the detector being retrained (the old one is kept)")
    old = detector if detector is not None else load(src_dir, config.device)
    spec = old.spec
    real, old_fakes = load_replay(src_dir / REPLAY_FILE)
    real, real_note = _full_real(spec, real, log)
    clash = sorted(set(new_fakes) & set(old_fakes))
    if clash:
        raise ValueError(f"generator name(s) already known to this detector: {', '.join(clash)}; rename them")
    new_splits = _new_splits(new_fakes, spec, config)
    if extra_real is not None and len(extra_real):
        r = split_tensor(extra_real, config.seed + 7, config.val_fraction, config.test_fraction)
        real = Splits(torch.cat([real.train, r.train]), torch.cat([real.val, r.val]), torch.cat([real.test, r.test]))
    all_fakes = {**old_fakes, **new_splits}
    target_fpr = config.target_fpr or spec.provenance.get("harden_config", {}).get("target_fpr", 0.01)

    # before: the old detector, its own calibration, on every test split
    lg = lambda net, x: collect_logits(net, x, spec.mean, spec.std, 512, config.device)  # noqa: E731
    before = evaluate("test", lg(old.net, real.test), {n: lg(old.net, f.test) for n, f in all_fakes.items()},
                      spec.temperature, spec.threshold)

    net = old.net
    share_new = 1.0 - config.replay_weight if old_fakes else 1.0
    weights = {n: config.replay_weight / len(old_fakes) for n in old_fakes}
    weights.update({n: share_new / len(new_splits) for n in new_splits})
    hc = HardenConfig(steps=config.steps, batch_size=config.batch_size, lr=config.lr, target_fpr=target_fpr,
                      seed=config.seed, augment=config.augment, checkpoint_every=config.checkpoint_every,
                      device=config.device, amp=config.amp)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT_DIR / "retrain.pt"
    data_id = hashlib.sha256((fingerprint(real.train) + "".join(fingerprint(f.train) for f in all_fakes.values())
                              + str({k: v for k, v in asdict(config).items() if k not in ("device", "amp")})
                              + str(src_dir.resolve())).encode()).hexdigest()
    if main and not resume and ckpt.exists():
        ckpt.unlink()
    dist_.barrier()
    train_detector(net, real.train, {n: f.train for n, f in all_fakes.items()}, hc, spec.mean, spec.std, ckpt,
                   resume, weights=weights, data_id=data_id, log=log, progress=progress)
    cal = calibrate_and_evaluate(net, spec, real, all_fakes, target_fpr, config.device)
    table = format_table(before, cal.test, list(new_splits))
    log(table)
    prov = _provenance(spec, src_dir, config, old_fakes, new_splits, real_note, sources, cal.val, before, cal.test)
    rule = (f"FPR <= {target_fpr:g} on validation real images (n={len(real.val)}) after retraining; "
            f"validation FPR {cal.val.fpr:.4f}, TPR {cal.val.tpr:.4f}")
    new_spec = replace(spec, threshold=cal.threshold, threshold_rule=rule, temperature=cal.temperature,
                       provenance=prov)
    new_spec = replace(new_spec, trust=None)
    trust = fit_trust(net, new_spec, real, target_fpr, config.device, seed=config.seed, previous=old.trust,
                      fakes=all_fakes)
    if main:  # rank 0 alone writes
        save_replay(out / REPLAY_FILE, real, all_fakes, config.replay_per_generator, config.seed)
        write_json(out / "retrain_metrics.json", {"before": before.to_json(), "after": cal.test.to_json(),
                                                  "val": cal.val.to_json(), "new_generators": list(new_splits),
                                                  "old_generators": list(old_fakes)})
        write_text(out / "retrain_table.txt", table + "\n")
        new = Detector(net.cpu(), new_spec)
        new.trust = trust
        new.save(out)
    dist_.barrier()
    log(f"retrained detector written to {out} (threshold {cal.threshold:.4f}, temperature {cal.temperature:.3f})")
    return RetrainResult(out, before, cal.test, list(new_splits), list(old_fakes), table, time.time() - t0)
