"""Measuring a detector: metrics, plots, HTML report, spectral baselines, robustness matrices,
cross-generator matrices, leave-one-family-out tables. Imports ``detector``; never ``gan`` (the CLI
in ``unmask`` joins them)."""
from __future__ import annotations

from .baselines import BASELINES, DurallSpectrum, FrankDCT, SpectralBaseline, create_baseline, cross_fit_scores
from .evaluate import BaselineTrainData, EvalConfig, EvalReport, evaluate, run_eval
from .lofo import LofoResult, LofoRow, Measured, evaluate_fold, write_lofo
from .matrix import FinetuneConfig, MatrixResult, cross_generator_matrix, finetune_detector, split_train_test
from .metrics import (Calibration, FalsePositiveAudit, MetricError, Metrics, calibration, compute_metrics,
                      equal_error_rate, false_positive_audit, tpr_at_fpr, wilson_interval)
from .report import write_report
from .results import BaselineResult, Figure
from .robustness import DEFAULT_PERTURBATIONS, PERTURBATIONS, RobustnessResult, evaluate_robustness
from .scoring import ScoredSet, load_eval_sets, score_images

__all__ = [
    "BASELINES", "DurallSpectrum", "FrankDCT", "SpectralBaseline", "create_baseline", "cross_fit_scores",
    "BaselineTrainData", "EvalConfig", "EvalReport", "evaluate", "run_eval",
    "LofoResult", "LofoRow", "Measured", "evaluate_fold", "write_lofo",
    "FinetuneConfig", "MatrixResult", "cross_generator_matrix", "finetune_detector", "split_train_test",
    "Calibration", "FalsePositiveAudit", "MetricError", "Metrics", "calibration", "compute_metrics",
    "equal_error_rate", "false_positive_audit", "tpr_at_fpr", "wilson_interval",
    "write_report", "BaselineResult", "Figure",
    "DEFAULT_PERTURBATIONS", "PERTURBATIONS", "RobustnessResult", "evaluate_robustness",
    "ScoredSet", "load_eval_sets", "score_images",
]
