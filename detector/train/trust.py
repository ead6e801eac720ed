"""Fitting a detector's trust section at hardening (and retraining) time.

* the domain model (:func:`detector.domain.fit_domain`): the feature model on the *training* images
  the detector learnt from, reals and fakes pooled (class-free), its threshold on the *validation*
  reals; the colour and size limits from the training reals alone (and, when the caller knows them,
  their original sizes). Why the fakes: a discriminator's features separate fakes from reals by
  construction, so a model of the reals alone put 36% of the demo's own fakes "out of domain"
  (docs/trust.md); a guard must never hide a fake of familiar content as foreign. Pooled, the
  real-to-fake direction is part of the domain, and new fakes of the same content stay inside;
* the validation reals' logits, from which :mod:`detector.tails` sets the threshold of every
  aggregate (tiles, frames, videos) at the detector's target false-positive rate.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ..artifact import Detector, DetectorSpec
from ..domain import colourfulness, fit_domain
from ..tails import Tails
from ..trust import Trust
from .splits import Splits

__all__ = ["fit_trust", "features_of"]

#: Training reals used for the feature model (a random subset beyond this: the covariance is
#: well estimated long before, and fitting stays a few seconds).
MAX_TRAIN = 20_000


def features_of(det: Detector, x: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(logits (N,), features (N, D) or None)`` of model inputs ``x`` through ``det``."""
    zs, fs = [], []
    for i in range(0, len(x), batch):
        z, f = det.logits_and_features(x[i:i + batch])
        zs.append(z)
        fs.append(f)
    if not zs:
        return torch.zeros(0), None
    return torch.cat(zs), (None if fs[0] is None else torch.cat(fs))


def fit_trust(net: torch.nn.Module, spec: DetectorSpec, real: Splits, target_fpr: float, device: str = "cpu",
              originals: Mapping | None = None, seed: int = 0, previous: Trust | None = None,
              fakes: Mapping[str, Splits] | None = None) -> Trust:
    """The :class:`Trust` of a trained, calibrated detector (``spec`` holds its temperature).

    ``originals`` may give what the model inputs no longer show about the training reals: ``colour``
    (N,) colourfulness and ``sides`` (N, 2) original sizes, aligned with ``real.train``. Without it the
    colourfulness is measured on the inputs (a grey detector then assumes grey originals) and sizes
    are not checked. ``previous`` (retraining): its pre-network limits (colour, sizes) are kept, since
    the replayed reals are model inputs that no longer show them."""
    det = Detector(net, spec, device)
    train = real.train
    idx = None
    if len(train) > MAX_TRAIN:
        idx = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(len(train), MAX_TRAIN, replace=False)))
        train = train[idx]
    _, f_train = features_of(det, train)
    z_val, f_val = features_of(det, real.val)
    if fakes and f_train is not None:  # as many fakes as reals, shared over the generators
        per = max(1, len(train) // len(fakes))
        rng = np.random.default_rng(seed + 1)
        for sp in fakes.values():
            pick = torch.from_numpy(np.sort(rng.choice(len(sp.train), min(per, len(sp.train)), replace=False)))
            f_train = torch.cat([f_train, features_of(det, sp.train[pick])[1]])
    domain = None
    if f_train is not None and f_val is not None:
        originals = dict(originals or {})
        colour = originals.get("colour")
        colour = (np.asarray([colourfulness(t) for t in train]) if colour is None
                  else np.asarray(colour, dtype=np.float64)[idx.numpy() if idx is not None else slice(None)])
        sides = originals.get("sides")
        if sides is not None:
            sides = np.asarray(sides, dtype=np.float64).reshape(-1, 2)
        domain = fit_domain(f_train, f_val, train, colour, sides)
        if previous is not None and previous.domain is not None:
            for k in ("colour_hi", "colour_lo", "side_lo", "side_hi"):
                setattr(domain, k, getattr(previous.domain, k))
    logits = z_val.float()
    if len(logits) < 10:  # too few validation reals to set aggregate thresholds
        return Trust(float(target_fpr), domain, None, None)
    return Trust(float(target_fpr), domain, Tails(logits.double().numpy(), spec.temperature, target_fpr), logits)
