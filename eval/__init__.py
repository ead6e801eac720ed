"""Measuring a detector: metrics, plots, HTML report, spectral baselines, robustness matrices."""
from __future__ import annotations

__all__: list[str] = []
