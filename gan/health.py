"""Live diagnosis of the two classic GAN failures, from statistics logged every N steps.

* **Discriminator overpowering the generator** (Arjovsky & Bottou, ICLR 2017: a perfect D
  leaves G with vanishing gradients): D is near-certain that the fakes are fake (mean
  ``sigmoid(D(G(z)))`` at most ``1 - confidence``) over a whole window of checks *and* the
  generator's gradient has fallen below ``vanish_ratio`` times its peak so far (the trainer
  records it at step 0 too, against the untrained D). The gradient
  watched is that of the original minimax objective ``E[log(1 - D(G(z)))]`` (logged as
  ``grad_g_minimax``): under the non-saturating and hinge losses the raw G gradient (``grad_g``)
  stays large even when D wins, it just stops carrying information, whereas the minimax gradient
  is the one Arjovsky & Bottou prove vanishes (their Theorem 2.4).
* **Mode collapse** (Goodfellow, NIPS 2016 tutorial; Salimans et al., NeurIPS 2016): over a
  window, the mean pairwise feature distance of samples falls below ``collapse_ratio`` times the
  same measure on real images, or most samples are near-duplicates, or (labelled data) the
  samples cover far fewer classes than real images do.
* **Partial mode dropping** (Arora & Zhang 2017; Kynkäänniemi et al., NeurIPS 2019): the samples
  still look real (precision at least ``drop_precision`` times a real batch's) but miss part of
  the data (recall below ``drop_recall`` times a real batch's, or class coverage below
  ``drop_coverage`` times real coverage): caught long before full collapse, which it often is not.

Each warning names a manual remedy; ``--auto-remedy`` climbs the ladder of :mod:`gan.remedies`,
which judges each rung by :meth:`HealthMonitor.relief` (>= 1: the symptom's condition is off).

The features are the FD-FMNIST embedding of :mod:`gan.quality` (any offline feature map works).
"""
from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from .quality import precision_recall

__all__ = ["HealthConfig", "HealthEvent", "HealthMonitor", "DiversityProbe", "SYMPTOMS", "REMEDIES", "plot_health"]

SYMPTOMS = ("overpowering", "collapse", "dropping")
REMEDIES = {
    "overpowering": "bring --lr-d and --lr-g towards each other (or slow D: --d-steps / a narrower D), "
                    "then --instance-noise 0.1, --label-smoothing 0.1, --r1 1",
    "collapse": "--instance-noise 0.1, --r1 1, bring --lr-g towards --lr-d",
    "dropping": "bring --lr-g towards --lr-d, --instance-noise 0.1, --r1 1",
}


@dataclass(frozen=True)
class HealthConfig:
    window: int = 4  # consecutive checks a symptom must persist
    confidence: float = 0.95  # D "near-certain": mean P(real | fake) <= 1 - confidence
    vanish_ratio: float = 0.1  # G's (minimax) gradient norm below this share of its peak so far
    collapse_ratio: float = 0.5  # sample diversity below this share of real diversity
    duplicate_rate: float = 0.5  # share of samples with a near-duplicate neighbour
    duplicate_distance: float = 0.1  # near-duplicate: NN distance < this x real median NN distance
    coverage_ratio: float = 0.5  # class coverage below this share of real coverage
    drop_coverage: float = 0.9  # partial dropping: class coverage below this share of real coverage ...
    drop_recall: float = 0.5  # ... or recall below this share of a real batch's recall ...
    drop_precision: float = 0.5  # ... while precision stays above this share of a real batch's
    warmup_steps: int = 0  # no collapse verdicts before this step (an untrained G is not collapsed, just young)


@dataclass(frozen=True)
class HealthEvent:
    step: int
    symptom: str  # one of SYMPTOMS
    message: str
    remedy: str

    def to_json(self) -> dict:
        return {"type": "warning", **asdict(self)}


def _spread(f: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Features ``(N, D)`` -> (mean distance between distinct pairs, ``(N,)`` nearest-neighbour distances)."""
    d = torch.cdist(f.double(), f.double())  # (N, N)
    n = len(d)
    return float(d.sum() / (n * (n - 1))), (d + torch.eye(n, dtype=d.dtype) * 1e12).min(1).values


class DiversityProbe:
    """Diversity of a batch of images in a feature space, relative to real images.

    ``features(images (N, C, H, W) in [0, 1]) -> (N, D)``; ``classes`` (optional) -> ``(N,)`` labels.
    """

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                 classes: Callable[[torch.Tensor], torch.Tensor] | None = None, labelled: bool = False,
                 duplicate_distance: float = 0.1) -> None:
        self.features, self.classes, self.labelled = features, classes, labelled and classes is not None
        f = features(real)
        self.real_diversity, nn_d = _spread(f)
        self.dup_radius = float(nn_d.median()) * duplicate_distance
        self.real_coverage = self._coverage(real) if self.labelled else None
        # precision/recall against 3/4 of the real images; the other quarter, as a batch of the same
        # size as the fakes, gives the real baseline (a 64-image batch cannot reach recall 1)
        cut = (3 * len(f)) // 4
        self.ref, self.held = f[:cut], f[cut:]
        self._baseline: dict[int, tuple[float, float]] = {}

    def _coverage(self, images: torch.Tensor) -> float:
        counts = torch.bincount(self.classes(images), minlength=10).float()
        # an exact share (9 of 10 is 0.9, not float32's 0.8999999762, which sat under the 0.9 limit and
        # made a healthy run's 9-of-10 batches count as partial mode dropping)
        return int((counts >= max(1.0, 0.02 * len(images))).sum()) / len(counts)

    def _precision_recall(self, f: torch.Tensor) -> dict:
        f = f[:len(self.held)]
        if len(f) not in self._baseline:
            self._baseline[len(f)] = precision_recall(self.ref, self.held[:len(f)], k=min(3, len(f) - 1))
        p, r = precision_recall(self.ref, f, k=min(3, len(f) - 1))
        rp, rr = self._baseline[len(f)]
        return {"precision": p, "recall": r, "real_precision": rp, "real_recall": rr}

    @torch.no_grad()
    def __call__(self, fake: torch.Tensor) -> dict:
        f = self.features(fake)
        div, nn_d = _spread(f)
        out = {"diversity": div, "real_diversity": self.real_diversity,
               "diversity_ratio": div / max(self.real_diversity, 1e-12),
               "dup_rate": float((nn_d < self.dup_radius).double().mean())}
        if len(f) >= 4 and len(self.held) >= 4:
            out.update(self._precision_recall(f))
        if self.labelled:
            out["coverage"] = self._coverage(fake)
            out["real_coverage"] = self.real_coverage
        return out


class HealthMonitor:
    """Feed it one dict of statistics per check; it returns the warnings that fire at that check."""

    def __init__(self, config: HealthConfig = HealthConfig()) -> None:
        self.config = config
        w = config.window
        self.overpower: deque[bool] = deque(maxlen=w)
        self.collapse: deque[bool] = deque(maxlen=w)
        self.dropping: deque[bool] = deque(maxlen=w)
        self.grad_g_peak = 0.0
        self.events: list[HealthEvent] = []
        self.state = "ok"

    def observe_grad(self, grad_g: float) -> None:
        """Record a generator gradient norm (e.g. at step 0, before D has learned) as a peak candidate."""
        self.grad_g_peak = max(self.grad_g_peak, float(grad_g))

    def _parts(self, symptom: str, stats: dict) -> dict[str, float]:
        """The ratios whose condition defines ``symptom`` (each < 1: that condition holds)."""
        c, out = self.config, {}
        if symptom == "overpowering":
            grad_g, d_fake = stats.get("grad_g_minimax", stats.get("grad_g")), stats.get("d_fake")
            if grad_g is not None and d_fake is not None and self.grad_g_peak > 0:
                out["confident"] = d_fake / (1.0 - c.confidence) - 1e-12  # d_fake <= 1 - confidence
                out["vanished"] = float(grad_g) / (c.vanish_ratio * self.grad_g_peak)
            return out
        real_cov = stats.get("real_coverage")
        cov = stats.get("coverage") / real_cov if stats.get("coverage") is not None and real_cov else None
        if symptom == "collapse":
            if "diversity_ratio" in stats:
                out["diversity"] = stats["diversity_ratio"] / c.collapse_ratio
            if "dup_rate" in stats:
                out["duplicates"] = (1.0 - stats["dup_rate"]) / (1.0 - c.duplicate_rate)
            if cov is not None:
                out["coverage"] = cov / c.coverage_ratio
        elif symptom == "dropping":
            if cov is not None:
                out["coverage"] = cov / c.drop_coverage
            if stats.get("real_recall"):
                out["recall"] = stats["recall"] / (c.drop_recall * stats["real_recall"])
        return out

    def relief(self, symptom: str, stats: dict) -> float:
        """How far ``stats`` are from ``symptom``: < 1 inside its condition, >= 1 outside, inf when
        they cannot tell. The yardstick the remedy ladder judges a remedy by."""
        parts = self._parts(symptom, stats)
        if symptom == "overpowering":  # both conditions at once
            return max(parts.values()) if len(parts) == 2 else float("inf")
        return min(parts.values(), default=float("inf"))  # any condition

    def update(self, step: int, stats: dict) -> list[HealthEvent]:
        c = self.config
        fired: list[HealthEvent] = []
        grad_g = stats.get("grad_g_minimax", stats.get("grad_g"))
        if grad_g is not None:
            self.grad_g_peak = max(self.grad_g_peak, float(grad_g))
        ref, d_fake = self.grad_g_peak, stats.get("d_fake")
        self.overpower.append(self.relief("overpowering", stats) < 1)
        if len(self.overpower) == c.window and all(self.overpower):
            fired.append(HealthEvent(
                step, "overpowering",
                f"discriminator overpowering the generator: D calls fakes fake with "
                f"{100 * (1 - d_fake):.1f}% confidence for {c.window} checks in a row and G's gradient "
                f"norm fell to {grad_g:.2e} ({grad_g / ref:.2%} of its peak {ref:.2e})",
                REMEDIES["overpowering"]))
            self.overpower.clear()
        parts = self._parts("collapse", stats)
        texts = {"diversity": lambda: f"sample diversity is {stats['diversity_ratio']:.0%} of real diversity",
                 "duplicates": lambda: f"{stats['dup_rate']:.0%} of samples are near-duplicates",
                 "coverage": lambda: f"samples cover {stats['coverage']:.0%} of classes "
                                     f"(real: {stats['real_coverage']:.0%})"}
        reasons = [texts[k]() for k, v in parts.items() if v < 1]
        self.collapse.append(bool(reasons) and step > c.warmup_steps)
        if len(self.collapse) == c.window and all(self.collapse):
            fired.append(HealthEvent(step, "collapse", "mode collapse: " + "; ".join(reasons) +
                                     f" (for {c.window} checks in a row)", REMEDIES["collapse"]))
            self.collapse.clear()
        fired += self._update_dropping(step, stats, bool(reasons))
        self.events += fired
        if fired:
            self.state = "+".join(e.symptom for e in fired)
        elif any(self.overpower) or any(self.collapse) or any(self.dropping):
            self.state = "watch"
        else:
            self.state = "ok"
        return fired

    def _update_dropping(self, step: int, stats: dict, collapsed: bool) -> list[HealthEvent]:
        """Partial mode dropping: samples that look real (precision holds) but miss part of the data."""
        c = self.config
        precise = stats.get("real_precision") and stats["precision"] >= c.drop_precision * stats["real_precision"]
        inside = self.relief("dropping", stats) < 1 and bool(precise) and not collapsed
        self.dropping.append(inside and step > c.warmup_steps)
        if not (len(self.dropping) == c.window and all(self.dropping)):
            return []
        self.dropping.clear()
        msg = (f"partial mode dropping: samples look real (precision {stats['precision']:.2f}, real batch "
               f"{stats['real_precision']:.2f}) but recall is {stats.get('recall', 0):.2f} (real batch "
               f"{stats.get('real_recall', 0):.2f})")
        if stats.get("coverage") is not None:
            msg += f" and they cover {stats['coverage']:.0%} of classes (real: {stats['real_coverage']:.0%})"
        return [HealthEvent(step, "dropping", msg + f" (for {c.window} checks in a row)", REMEDIES["dropping"])]

    def state_dict(self) -> dict:
        return {"overpower": list(self.overpower), "collapse": list(self.collapse), "dropping": list(self.dropping),
                "grad_g_peak": self.grad_g_peak, "state": self.state,
                "events": [asdict(e) for e in self.events]}

    def load_state_dict(self, s: dict) -> None:
        self.overpower = deque(s["overpower"], maxlen=self.config.window)
        self.collapse = deque(s["collapse"], maxlen=self.config.window)
        self.dropping = deque(s.get("dropping", []), maxlen=self.config.window)
        self.grad_g_peak = float(s["grad_g_peak"])
        self.state = s["state"]
        self.events = [HealthEvent(**e) for e in s["events"]]


def plot_health(records: list[dict], path) -> None:
    """Draw the logged curves (losses, D outputs, accuracies, gradient norms, diversity, FD) to a PNG."""
    from detector.figures import figure_png, pyplot

    plt = pyplot()
    train = [r for r in records if r.get("type") == "train"]
    qual = [r for r in records if r.get("type") == "quality"]
    warn = [r for r in records if r.get("type") == "warning"]
    rem = [r for r in records if r.get("type") == "remedy"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    s = [r["step"] for r in train]

    def series(ax, keys, title, log=False, ylim=None):
        for k, label in keys:
            ys = [r.get(k) for r in train]
            if any(y is not None for y in ys):
                ax.plot(s, [float("nan") if y is None else y for y in ys], label=label)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        if ylim:
            ax.set_ylim(*ylim)
        if ax.get_legend_handles_labels()[0]:  # nothing recorded yet (a very short run): no legend
            ax.legend(fontsize=8)

    series(axes[0, 0], [("loss_d", "D loss"), ("loss_g", "G loss")], "losses")
    series(axes[0, 1], [("d_real", "mean D(real)"), ("d_fake", "mean D(fake)")], "D output (P(real))", ylim=(0, 1))
    series(axes[0, 2], [("acc_real", "D acc on real"), ("acc_fake", "D acc on fake")], "D accuracy", ylim=(0, 1.02))
    series(axes[1, 0], [("grad_g", "|grad G| (training loss)"), ("grad_g_minimax", "|grad G| (minimax)"),
                        ("grad_d", "|grad D|")], "gradient norms", log=True)
    series(axes[1, 1], [("diversity_ratio", "diversity / real"), ("dup_rate", "near-duplicate rate"),
                        ("coverage", "class coverage"), ("recall", "recall (batch)")], "sample diversity", ylim=(0, max(
                            [1.2] + [r.get("diversity_ratio") or 0 for r in train])))
    ax = axes[1, 2]
    if qual:
        ax.plot([r["step"] for r in qual], [r["fd"] for r in qual], "o-", label="FD-FMNIST (not FID)")
        ax.set_ylabel("FD-FMNIST")
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in qual], [r["precision"] for r in qual], "g--", label="precision")
        ax2.plot([r["step"] for r in qual], [r["recall"] for r in qual], "r--", label="recall")
        ax2.set_ylim(0, 1)
        ax2.legend(fontsize=8, loc="center right")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_title("quality (FD-FMNIST, precision/recall)")
    for a in axes.flat:
        a.set_xlabel("step")
        for w in warn:
            color = {"overpowering": "red", "collapse": "purple"}.get(w["symptom"], "orange")
            a.axvline(w["step"], color=color, alpha=0.4, lw=1)
        for r in rem:
            a.axvline(r["step"], color="green", ls=":", alpha=0.6, lw=1)
    fig.suptitle("GAN health (red: D overpowering, purple: mode collapse, orange: partial mode dropping, "
                 "green dotted: auto-remedy)")
    fig.subplots_adjust(left=0.06, right=0.95, bottom=0.08, top=0.9, wspace=0.3, hspace=0.35)
    figure_png(fig, path, dpi=70, tight=False)
