"""Scan files and folders with a detector: one row per input file, streamed to CSV or JSONL.

* Every file gets exactly one row (the output is valid UTF-8: a file name that is not shows its
  odd bytes as ``\\xNN`` escapes, see :func:`detector.decode.display_path`): ``path, score, label,
  threshold, error, policy, n_tiles, width, height, in_domain, domain_score``. ``label`` is ``real``,
  ``fake``, ``out_of_domain`` (unlike the detector's training reals: :mod:`detector.domain`) or
  ``error``; ``score`` is the calibrated probability of "fake" and ``threshold`` the file's own (a
  tiled image's is its aggregate's, :mod:`detector.tails`); an unreadable file gets ``label=error``
  and the reason, and the scan goes on.
* Inputs are listed by the one walker, :func:`detector.files.list_files`; images of any size follow
  the artifact's policy (resize / crop, or native-resolution tiles whose scores are aggregated) and
  are scored by the one engine, :class:`detector.scoring.Scorer`; the ``policy`` column records
  what was done to each file.
* Decoding runs in DataLoader worker processes; the network sees whole batches (``local``).
* Rows are appended one batch at a time with a single ``write`` and flushed, so a killed scan
  leaves complete rows only. ``resume=True`` re-reads the output, drops any torn trailing record,
  and scans only the files without a row: every file ends up exactly once (``formats``).
* Memory stays flat: results are written, not kept (only a ``top``-N heap).
* Under ``torchrun`` (several processes) every rank scans a shard into a part file and rank 0
  merges them (``sharded``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .. import distributed as dist_
from ..artifact import Detector
from .formats import COLUMNS, LABELS, ScanOutputError, read_rows
from .local import ScanConfig, ScanResult, scan_local
from .sharded import parts_dir, scan_sharded

__all__ = ["COLUMNS", "LABELS", "ScanConfig", "ScanResult", "ScanOutputError", "scan", "read_rows", "parts_dir"]


def scan(paths: Sequence[str | os.PathLike], detector: Detector, out: str | os.PathLike,
         config: ScanConfig = ScanConfig(), log=print) -> ScanResult:
    """Scan ``paths`` with ``detector`` into ``out`` (.csv or .jsonl); see the module docstring.

    Launched by torchrun (after :func:`detector.distributed.init`), each rank scans its shard and
    rank 0 merges; the result's counts are complete on rank 0 only."""
    if dist_.is_distributed() and dist_.world_size() > 1:
        return scan_sharded(paths, detector, Path(out), config, log)
    return scan_local(paths, detector, out, config, log)
