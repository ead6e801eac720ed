"""The remedy ladder behind ``--auto-remedy``: act on the cause a health warning measured, one
bounded change at a time, keep what helps and roll back what does not.

The trainer reads a small :class:`Knobs` every step (learning rates, how often D updates, instance
noise, label smoothing, R1, a mode-seeking term, G's objective). A warning of :mod:`gan.health`
applies the next *rung* of its symptom's ladder; the rung is on trial for ``trial_checks`` health
checks (one rung at a time), after which it is judged by :meth:`gan.health.HealthMonitor.relief`
(>= 1: the symptom's condition is off): kept when the mean relief over the trial is >= 1; kept and
watched for another trial when it is at least ``1.5x`` the mean over the checks before; otherwise
rolled back (only the fields it changed; a rung that helped in an earlier window stays) and the
next rung tried.
Every step of this is a ``remedy`` record in ``metrics.jsonl`` with the metric before and after.

Why these rungs (docs/gan.md has the long form):

* D overpowering G (Arjovsky & Bottou, ICLR 2017: a confident D leaves G no gradient):
  ``non_saturating`` (minimax runs only: Goodfellow et al. 2014 give the non-saturating G loss as the
  cure of exactly this stall); ``rebalance`` (meet at the geometric mean of the two learning rates,
  as two time-scale training keeps them within a small ratio, Heusel et al. 2017); ``slow_d`` (fewer
  D updates per G step, then D updates every 2nd, then 4th step); ``noise`` (instance noise makes the two distributions overlap,
  Sønderby et al. 2017, Arjovsky & Bottou 2017); ``smoothing`` (one-sided label smoothing caps D's
  confidence, Salimans et al. 2016); ``r1`` (R1 penalises D's gradient on real data, Mescheder et al. 2018).
* Mode collapse and partial mode dropping: ``rebalance`` (a G much faster than D chases D's current
  weak spot, Metz et al. 2017); ``noise`` and ``r1`` (smoother D, gradients that point across modes);
  ``mode_seeking`` (the diversity term of Mao et al., CVPR 2019); ``lower_lr_g``.

Bounds: no learning rate below ``LR_FLOOR`` of its configured value nor above the larger configured
one; both learning rates are never lowered together; noise, smoothing, R1, D's skipping and the
mode-seeking weight have caps.
"""
from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["Knobs", "RemedyLadder", "LADDERS", "RUNGS", "LR_FLOOR", "mode_seeking_loss", "handle_events"]

LR_FLOOR = 0.1  # no learning rate below this share of its configured value
MAX_NOISE, MAX_SMOOTHING, MAX_R1, MAX_D_EVERY, MAX_MODE_SEEKING = 0.3, 0.3, 10.0, 4, 1.0
IMBALANCE = 1.5  # learning rates further apart than this ratio are "imbalanced"
MOVE = 10.0  # one rebalance moves each learning rate by at most this factor
HELPED = 1.5  # a rung helped: relief >= 1 or this many times the relief before it


@dataclass(frozen=True)
class Knobs:
    """What the trainer reads each step; starts at the config's values."""

    lr_d: float
    lr_g: float
    d_steps: int = 1  # D updates per G update (on the steps D updates at all)
    d_every: int = 1  # D updates on every d_every-th step only
    instance_noise: float = 0.0  # a floor under the annealed configured sigma
    label_smoothing: float = 0.0
    r1: float = 0.0
    mode_seeking: float = 0.0  # weight of the mode-seeking term in G's loss
    non_saturating: bool = False  # G trains on the non-saturating loss (minimax runs)

    @classmethod
    def from_config(cls, c) -> "Knobs":
        return cls(lr_d=c.lr_d, lr_g=c.lr_g, d_steps=c.d_steps, label_smoothing=c.label_smoothing, r1=c.r1)

    def d_updates(self, step: int) -> int:
        """How many D updates step ``step`` makes (0: D only looks)."""
        return self.d_steps if step % self.d_every == 0 else 0

    def set_lrs(self, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer) -> None:
        for opt, lr in ((opt_g, self.lr_g), (opt_d, self.lr_d)):
            for grp in opt.param_groups:
                grp["lr"] = lr

    def changes(self, other: "Knobs") -> dict:
        """``{field: (self's, other's)}`` for each field that differs."""
        a, b = dataclasses.asdict(self), dataclasses.asdict(other)
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mao et al. (CVPR 2019): ``1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps)`` over the two halves
    of the batch; minimising it pushes distinct codes to distinct images."""
    h = len(fake) // 2
    ratio = (fake[:h] - fake[h:2 * h]).abs().mean() / (z[:h] - z[h:2 * h]).abs().mean()
    return 1.0 / (ratio + 1e-5)


# ---------------------------------------------------------------------------- rungs
# rung(knobs, config, sigma now) -> new knobs, or None where it does not apply or is at its bound

def _rebalance(k: Knobs, c, sigma: float) -> Knobs | None:
    ratio = k.lr_d / k.lr_g
    if max(ratio, 1 / ratio) < IMBALANCE:
        return None
    f = min(math.sqrt(max(ratio, 1 / ratio)), MOVE)  # both meet at the geometric mean
    lr_d, lr_g = (k.lr_d / f, k.lr_g * f) if ratio > 1 else (k.lr_d * f, k.lr_g / f)
    hi = max(c.lr_d, c.lr_g)
    lr_d, lr_g = min(hi, max(lr_d, LR_FLOOR * c.lr_d)), min(hi, max(lr_g, LR_FLOOR * c.lr_g))
    return dataclasses.replace(k, lr_d=lr_d, lr_g=lr_g)


def _slow_d(k: Knobs, c, sigma: float) -> Knobs | None:
    if k.d_steps > 1:  # fewer D updates per G update first, then D only every 2nd, 4th step
        return dataclasses.replace(k, d_steps=k.d_steps - 1)
    return dataclasses.replace(k, d_every=2 * k.d_every) if 2 * k.d_every <= MAX_D_EVERY else None


def _noise(k: Knobs, c, sigma: float) -> Knobs | None:
    new = min(MAX_NOISE, max(0.1, 2 * sigma))  # from where it is now (the configured one may be annealing)
    return dataclasses.replace(k, instance_noise=new) if new > max(sigma, k.instance_noise) + 1e-9 else None


def _smoothing(k: Knobs, c, sigma: float) -> Knobs | None:
    new = min(MAX_SMOOTHING, round(k.label_smoothing + 0.1, 6))
    ok = c.loss in ("bce", "minimax") and new > k.label_smoothing
    return dataclasses.replace(k, label_smoothing=new) if ok else None


def _r1(k: Knobs, c, sigma: float) -> Knobs | None:
    new = min(MAX_R1, max(1.0, 4 * k.r1))
    return dataclasses.replace(k, r1=new) if new > k.r1 else None


def _mode_seeking(k: Knobs, c, sigma: float) -> Knobs | None:
    new = min(MAX_MODE_SEEKING, k.mode_seeking + 0.5)
    return dataclasses.replace(k, mode_seeking=new) if new > k.mode_seeking else None


def _lower_lr_g(k: Knobs, c, sigma: float) -> Knobs | None:
    new = max(LR_FLOOR * c.lr_g, k.lr_g / 2)
    # only the faster (or equal) side: halving a G already slower than D would widen the gap
    return dataclasses.replace(k, lr_g=new) if new < k.lr_g and k.lr_g >= k.lr_d else None


def _non_saturating(k: Knobs, c, sigma: float) -> Knobs | None:
    return dataclasses.replace(k, non_saturating=True) if c.loss == "minimax" and not k.non_saturating else None


RUNGS: dict[str, Callable] = {"non_saturating": _non_saturating, "rebalance": _rebalance, "slow_d": _slow_d,
                              "noise": _noise, "smoothing": _smoothing, "r1": _r1,
                              "mode_seeking": _mode_seeking, "lower_lr_g": _lower_lr_g}
LADDERS = {"overpowering": ("non_saturating", "rebalance", "slow_d", "noise", "smoothing", "r1"),
           "diversity": ("rebalance", "noise", "r1", "mode_seeking", "lower_lr_g")}
LADDER_OF = {"overpowering": "overpowering", "collapse": "diversity", "dropping": "diversity"}


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


class RemedyLadder:
    """The knobs of one run and where each ladder stands; :meth:`observe` at every health check,
    :meth:`on_warning` for each warning."""

    def __init__(self, config, trial_checks: int = 4) -> None:
        self.config, self.trial_checks = config, max(1, trial_checks)
        self.knobs = Knobs.from_config(config)
        self.next_rung = {name: 0 for name in LADDERS}
        self.trials: dict[str, dict] = {}  # ladder -> the rung on trial (at most one at a time)
        self.history = {s: deque(maxlen=self.trial_checks) for s in LADDER_OF}  # recent relief per symptom

    def observe(self, step: int, relief: dict[str, float], sigma: float) -> list[dict]:
        """Record this check's relief; judge the trial if it is due (records of what happened)."""
        for s, v in relief.items():
            self.history[s].append(min(v, 10.0))
        out = []
        for ladder, t in list(self.trials.items()):
            t["after"].append(min(relief[t["symptom"]], 10.0))
            if len(t["after"]) < self.trial_checks:
                continue
            out += self._judge(ladder, t, step, sigma)
        return out

    def _judge(self, ladder: str, t: dict, step: int, sigma: float) -> list[dict]:
        """Cured: kept. Improving: kept and watched another trial (no new rung piled on). Neither:
        rolled back, or kept if it had helped in an earlier window; then the next rung."""
        after, before = sum(t["after"]) / len(t["after"]), t["before"]
        trend = f"relief {'?' if before is None else f'{before:.2f}'} -> {after:.2f}"
        rec = {"type": "remedy", "step": step, "symptom": t["symptom"], "rung": t["rung"], "metric": "relief",
               "before": before, "after": after, "verdict": "kept"}
        improving = before is not None and after >= HELPED * before
        if after < 1.0 and improving:
            t.update(before=after, after=[], extended=True)
            return [{**rec, "action": f"kept {t['rung']} ({trend}), still improving: watching it "
                                      f"{self.trial_checks} more checks"}]
        del self.trials[ladder]
        if after >= 1.0:
            return [{**rec, "action": f"kept {t['rung']} ({trend})"}]
        if t.get("extended"):
            rec["action"] = f"kept {t['rung']} ({trend}; it helped earlier), stalled: next rung"
        else:
            rec.update(verdict="rolled back", action=f"rolled back {t['rung']} ({trend}): " + self._undo(t))
        return [rec, self.apply(step, t["symptom"], sigma)]

    def _undo(self, t: dict) -> str:
        fields = {}
        for name, (old, new) in t["changes"].items():
            if getattr(self.knobs, name) == new:  # untouched since (another ladder may have moved it)
                fields[name] = old
        before = self.knobs
        self.knobs = dataclasses.replace(self.knobs, **fields)
        return "; ".join(f"{n} {_fmt(a)} -> {_fmt(b)}" for n, (a, b) in before.changes(self.knobs).items()) or "nothing"

    def on_warning(self, step: int, symptom: str, sigma: float) -> dict:
        """Apply the next rung for ``symptom`` unless a rung is on trial: one change at a time, so each
        verdict can be put down to its rung (and remedies do not pile up while one takes effect)."""
        t = next(iter(self.trials.values()), None)
        if t is not None:
            return {"type": "remedy", "step": step, "symptom": symptom, "rung": t["rung"], "verdict": "on trial",
                    "action": f"none: {t['rung']} is on trial since step {t['step']}"}
        return self.apply(step, symptom, sigma)

    def apply(self, step: int, symptom: str, sigma: float) -> dict:
        """The next applicable rung of ``symptom``'s ladder, put on trial; its ``remedy`` record."""
        ladder = LADDER_OF[symptom]
        rungs = LADDERS[ladder]
        h = self.history[symptom]
        before = sum(h) / len(h) if h else None  # None: judged by relief >= 1 alone
        while self.next_rung[ladder] < len(rungs):
            name = rungs[self.next_rung[ladder]]
            self.next_rung[ladder] += 1
            new = RUNGS[name](self.knobs, self.config, sigma)
            if new is None or not self.knobs.changes(new):
                continue
            changes = self.knobs.changes(new)
            self.knobs = new
            self.trials[ladder] = {"symptom": symptom, "rung": name, "step": step, "before": before,
                                   "changes": changes, "after": []}
            return {"type": "remedy", "step": step, "symptom": symptom, "rung": name, "verdict": "on trial",
                    "metric": "relief", "before": before,
                    "action": f"{name}: " + "; ".join(f"{n} {_fmt(a)} -> {_fmt(b)}" for n, (a, b) in changes.items())}
        return {"type": "remedy", "step": step, "symptom": symptom, "rung": None, "verdict": "exhausted",
                "action": f"none left: every rung of the {ladder} ladder was tried or is at its bound"}

    def state_dict(self) -> dict:
        return {"knobs": dataclasses.asdict(self.knobs), "next_rung": dict(self.next_rung),
                "trials": {k: {**t, "changes": {n: list(v) for n, v in t["changes"].items()}}
                           for k, t in self.trials.items()},
                "history": {s: list(h) for s, h in self.history.items()}}

    def load_state_dict(self, s: dict) -> None:
        self.knobs = Knobs(**s["knobs"])
        self.next_rung = dict(s["next_rung"])
        self.trials = {k: {**t, "changes": {n: tuple(v) for n, v in t["changes"].items()}}
                       for k, t in s["trials"].items()}
        for name, h in s["history"].items():
            self.history[name] = deque(h, maxlen=self.trial_checks)


def handle_events(trainer, rec: dict, events: list, sigma: float, log) -> None:
    """After a health check: judge the trials, log each warning and (``auto_remedy``) act on it."""
    auto, ladder = trainer.config.auto_remedy, trainer.ladder
    if auto:
        relief = {s: trainer.monitor.relief(s, rec) for s in LADDER_OF}
        for r in ladder.observe(trainer.step, relief, sigma):
            trainer.records.append(r)
            log(f"auto-remedy step {trainer.step}: {r['action']}")
    for ev in events:
        trainer.records.append(ev.to_json())
        msg = f"WARNING step {trainer.step}: {ev.message}. Remedy: {ev.remedy}"
        if auto:
            r = ladder.on_warning(trainer.step, ev.symptom, sigma)
            trainer.records.append(r)
            msg += f"\n  auto-remedy: {r['action']}"
        else:
            msg += " (rerun with --auto-remedy to apply it automatically)"
        log(msg)
    if auto:
        ladder.knobs.set_lrs(trainer.opt_g, trainer.opt_d)
