"""What a detector knows of its own limits: its domain (:mod:`detector.domain`) and the validation
real scores that set aggregate thresholds (:mod:`detector.tails`), stored with the artifact.

``detector.json`` holds a ``trust`` section (scalars, versioned) and ``trust.safetensors`` beside it
holds the arrays (feature mean and precision, validation logits): no pickle, loaded like the
weights. An artifact without the section (written before format 2) still loads, with one warning
line: its verdicts carry no domain check and tiled aggregates use the per-input threshold.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .domain import DomainModel
from .tails import Tails

__all__ = ["Trust", "TRUST_FILE", "TRUST_VERSION", "OOD_MODES", "load_trust"]

TRUST_FILE = "trust.safetensors"
TRUST_VERSION = 1
#: What to do with an out-of-domain input: label it (flag), keep its real/fake label (score), or drop it (skip).
OOD_MODES = ("flag", "score", "skip")
log = logging.getLogger("detector")


@dataclass
class Trust:
    target_fpr: float
    domain: DomainModel | None
    tails: Tails | None
    val_logits: torch.Tensor | None   # (n,) float32, what ``tails`` was built from

    def section(self) -> dict:
        """The ``trust`` object of ``detector.json``."""
        return {"version": TRUST_VERSION, "file": TRUST_FILE, "target_fpr": self.target_fpr,
                "domain": None if self.domain is None else self.domain.to_json(),
                "tails": None if self.val_logits is None else {"n_val_logits": int(self.val_logits.numel())}}

    def arrays(self) -> dict[str, torch.Tensor]:
        out = {} if self.domain is None else self.domain.arrays()
        if self.val_logits is not None:
            out["tails.val_logits"] = self.val_logits.float().contiguous()
        return out

    def save(self, directory: Path) -> None:
        from .atomic import save_safetensors

        save_safetensors(self.arrays(), Path(directory) / TRUST_FILE, metadata={"format": "unmask-trust"})


def load_trust(directory: Path, section: dict | None, temperature: float, read) -> Trust | None:
    """The artifact's :class:`Trust`, or None (with one warning line) when it has none. ``read`` is the
    artifact's safetensors reader (refuses pickles); problems raise ``ValueError`` naming the file."""
    if section is None:
        log.warning("warning: %s: this detector has no domain model (an artifact from before format 2); no domain "
                    "check is possible and tiled images use the per-tile threshold", directory)
        return None
    where = f"{Path(directory) / 'detector.json'}: trust"
    if section.get("version") != TRUST_VERSION:
        raise ValueError(f"{where}: version {section.get('version')!r} not supported (expected {TRUST_VERSION})")
    fpr = section.get("target_fpr")
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 < fpr < 1:
        raise ValueError(f"{where}: target_fpr must be in (0, 1), got {fpr!r:.40}")
    path = Path(directory) / TRUST_FILE
    if not path.is_file():
        raise ValueError(f"{path}: missing file; the detector's trust section refers to it")
    arrays = read(path)
    dom = section.get("domain")
    domain = DomainModel.from_parts(dom, arrays, str(path)) if isinstance(dom, dict) else None
    logits = arrays.get("tails.val_logits") if section.get("tails") else None
    tails = None
    if logits is not None:
        try:
            tails = Tails(logits.double().numpy(), temperature, fpr)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    return Trust(float(fpr), domain, tails, logits)
