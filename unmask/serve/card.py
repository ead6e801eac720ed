"""The detector card: what the service runs, read once at start from the artifact directory.

``detector.json`` essentials (architecture, input, policy, threshold and how it was chosen,
provenance), a SHA-256 of each artifact file so a client can tell two detectors apart, and the
metrics the training commands left beside the artifact (``harden_metrics.json``,
``retrain_metrics.json``), read as plain JSON and only when small.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from detector.artifact import Detector

__all__ = ["detector_card", "METRIC_FILES"]

METRIC_FILES = ("harden_metrics.json", "retrain_metrics.json")
_MAX_METRICS_BYTES = 1_000_000


def _sha256(p: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def _metrics(directory: Path) -> dict:
    out = {}
    for name in METRIC_FILES:
        p = directory / name
        try:
            if p.is_file() and p.stat().st_size <= _MAX_METRICS_BYTES:
                out[name.removesuffix(".json")] = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue  # a card without metrics beats a service that does not start
    return out


def detector_card(det: Detector, directory: str | Path, limits: dict) -> dict:
    """The JSON the service answers at ``GET /v1/detector`` (and shows on its page)."""
    d = Path(directory)
    s = det.spec
    return {
        "name": d.resolve().name,
        "architecture": s.architecture,
        "arch_args": s.arch_args,
        "input_size": s.input_size,
        "channels": s.channels,
        "policy": s.policy,
        "tile_aggregate": s.tile_aggregate,
        "tile_topk": s.tile_topk,
        "threshold": s.threshold,
        "threshold_rule": s.threshold_rule,
        "temperature": s.temperature,
        "provenance": s.provenance,
        "format_version": s.format_version,
        "unmask_version": s.unmask_version,
        "sha256": {p: _sha256(d / p) for p in ("detector.json", "model.safetensors")},
        "metrics": _metrics(d),
        "limits": limits,
    }
