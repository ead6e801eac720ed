"""What an evaluation produces, as dataclasses: the baselines' training data and results, the figures
of the report, and :class:`EvalReport`, everything one ``unmask eval`` measured (rendered by
:mod:`eval.report`, written as ``metrics.json`` by :func:`eval.evaluate.run_eval`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .metrics import FalsePositiveAudit, Metrics
from .robustness import RobustnessResult
from .scoring import DomainSummary, ScoredSet

if TYPE_CHECKING:  # pragma: no cover
    from .evaluate import EvalConfig

__all__ = ["BaselineTrainData", "BaselineResult", "EvalReport", "Figure"]


@dataclass(frozen=True)
class Figure:
    """One plot of the report: its caption and its PNG bytes."""

    caption: str
    png: bytes


@dataclass(frozen=True)
class BaselineTrainData:
    """Training images for the baselines and a sentence saying where they came from."""

    real: list
    fake: list
    description: str


@dataclass
class BaselineResult:
    name: str
    paper: str
    training: str
    real_scores: np.ndarray
    fake_scores: dict                      # set name -> scores
    overall: Metrics
    per_fake_set: dict                     # set name -> Metrics


@dataclass
class EvalReport:
    """Everything an evaluation measured; :func:`eval.report.write_report` renders it."""

    config: EvalConfig
    spec: dict
    real: ScoredSet
    fakes: list
    overall: Metrics | None
    per_fake_set: dict
    audit: FalsePositiveAudit | None
    calibration: object | None
    baselines: list = field(default_factory=list)
    robustness: RobustnessResult | None = None
    unreadable: list = field(default_factory=list)
    seconds: float = 0.0
    created: str = ""
    domain: DomainSummary | None = None    # out-of-domain counts (None: not measured)

    @property
    def threshold(self) -> float:
        return float(self.spec["threshold"])

    def to_json(self) -> dict:
        out: dict = {
            "format": "unmask-eval/1",
            "created": self.created,
            "detector": {"path": self.config.detector, "spec": self.spec},
            "threshold": self.threshold,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.config).items()},
            "n_real": len(self.real),
            "fake_sets": {s.name: len(s) for s in self.fakes},
            "overall": None if self.overall is None else self.overall.to_json(),
            "per_fake_set": {k: m.to_json() for k, m in self.per_fake_set.items()},
            "unreadable": [asdict(u) for u in self.unreadable],
            "out_of_domain": None if self.domain is None else self.domain.to_json(),
            "seconds": round(self.seconds, 2),
        }
        if self.audit is not None:
            out["false_positive_audit"] = self.audit.to_json()
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_json()
        if self.baselines:
            out["baselines"] = {b.name: {"paper": b.paper, "training": b.training, "overall": b.overall.to_json(),
                                         "per_fake_set": {k: m.to_json() for k, m in b.per_fake_set.items()}}
                                for b in self.baselines}
        if self.robustness is not None:
            out["robustness"] = self.robustness.to_json()
        return out
