"""One process scans a list of paths into one output file (see :mod:`detector.scan` for the contract).

Decoding and preprocessing run in DataLoader worker processes (:class:`_Files`, through the one
preprocessing function :func:`detector.preprocess.model_inputs`); the main process forwards whole
batches through :class:`detector.scoring.Scorer` and appends one batch of rows per ``write``.
"""
from __future__ import annotations

import heapq
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from .. import files as files_  # looked up at call time: tests hook the walker (test_reliability)
from ..artifact import Detector, DetectorSpec
from ..atomic import write_text
from ..decode import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, UnreadableImage, display_path
from ..progress import Progress
from ..domain import ImageStats
from ..scoring import Scorer, file_inputs
from .formats import ScanOutputError, _Format, format_for, write_all

__all__ = ["ScanConfig", "ScanResult", "scan_local"]


@dataclass(frozen=True)
class ScanConfig:
    """Options of :func:`detector.scan.scan` (``unmask scan`` maps onto them)."""

    batch_size: int = 64              # files per batch
    workers: int = 2                  # DataLoader decoding processes (0 = decode in this process)
    resume: bool = False
    overwrite: bool = False
    top: int = 10                     # keep the N highest-scoring files for the summary
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_tiles: int = 1024             # bigger images are scaled down so their tile grid fits
    forward_chunk: int = 2048         # at most this many model inputs per forward pass
    extensions: tuple[str, ...] | None = tuple(sorted(IMAGE_EXTENSIONS))  # None: every file
    progress: bool = True
    device: str = "cpu"
    amp: bool = False                 # bfloat16 autocast on CUDA (the detector's ``amp``; ignored on CPU)
    out_of_domain: str = "flag"       # flag: label out_of_domain | score: keep real/fake | skip: no row

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.workers < 0 or self.top < 0 or self.max_tiles < 1 or self.forward_chunk < 1:
            raise ValueError("batch_size, max_tiles and forward_chunk must be >= 1; workers and top >= 0")
        if self.resume and self.overwrite:
            raise ValueError("choose either resume or overwrite, not both")
        if self.out_of_domain not in ("flag", "score", "skip"):
            raise ValueError(f"out_of_domain must be flag, score or skip, not {self.out_of_domain!r}")


@dataclass
class ScanResult:
    """What a scan did; counts cover the whole output file (resumed rows included)."""

    out: Path
    n_files: int
    n_new: int
    n_resumed: int
    n_fake: int
    n_real: int
    n_errors: int
    n_ood: int = 0                            # out of the detector's domain (labelled or skipped so)
    top: list = field(default_factory=list)   # [(score, path)] highest first, in-domain files only
    seconds: float = 0.0
    skipped_links: int = 0

    @property
    def files_per_s(self) -> float:
        return self.n_new / self.seconds if self.seconds > 0 else float("nan")


# ---------------------------------------------------------------------------- decoding (in workers)


class _Files(Dataset):
    """``i -> (i, inputs (N, C, S, S) | None, n, width, height, policy, error)``."""

    def __init__(self, files: Sequence[str], spec: DetectorSpec, max_pixels: int, max_tiles: int) -> None:
        self.files, self.spec, self.max_pixels, self.max_tiles = files, spec, max_pixels, max_tiles

    def __len__(self) -> int:
        return len(self.files)

    def _check(self, path: str) -> None:
        """Refuse folders, FIFOs, sockets and devices before anything tries to read them."""
        try:
            st = os.stat(path)
        except OSError:
            return  # read_image gives the precise reason
        if stat.S_ISDIR(st.st_mode):
            try:
                os.scandir(path).close()
                reason = "is a directory, not an image file"
            except OSError as e:
                reason = f"folder cannot be listed: {e.strerror or e}"
            raise UnreadableImage(path, reason)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableImage(path, "not a regular file (a FIFO, socket or device); not read")

    def __getitem__(self, i: int):
        path = self.files[i]
        s = self.spec
        try:
            self._check(path)
            f = file_inputs(path, s, self.max_pixels, self.max_tiles)
            return i, f.inputs, len(f.inputs), f.width, f.height, f.policy, "", f.colour
        except UnreadableImage as e:
            return i, None, 0, None, None, s.policy, e.reason, 0.0
        except Exception as e:  # noqa: BLE001 - one hostile file must never stop the scan
            return i, None, 0, None, None, s.policy, f"unexpected error: {type(e).__name__}: {e}"[:500], 0.0


def _collate(items):
    """One batch -> ``(rows, inputs)``: the files' model inputs concatenated into ONE tensor.

    Runs in the DataLoader worker, so each batch crosses the process boundary as a single shared-memory
    tensor instead of one per file; per-file tensors cost a file descriptor and a storage rebuild each
    in the main process, which halved decode throughput in bench/scan_speed.py's profile."""
    xs = [it[1] for it in items if it[1] is not None]
    x = (torch.cat(xs) if len(xs) > 1 else xs[0]) if xs else None
    return [(i, x_ is not None, n, w, h, policy, err, col) for i, x_, n, w, h, policy, err, col in items], x


# ---------------------------------------------------------------------------- the scan


def keep_top(heap: list[tuple[float, str]], top: int, item: tuple[float, str]) -> None:
    """Push ``(score, path)`` onto a min-heap holding the ``top`` highest items seen so far."""
    if not top:
        return
    if len(heap) < top:
        heapq.heappush(heap, item)
    elif item > heap[0]:
        heapq.heapreplace(heap, item)


class _Tally:
    """Label counts and the top-N heap over every row of the output."""

    def __init__(self, top: int) -> None:
        self.top, self.heap, self.ood_apart = top, [], 0
        self.counts = {"real": 0, "fake": 0, "out_of_domain": 0, "error": 0}

    def note(self, path: str, label: str, score, in_domain=None) -> None:
        self.counts[label] += 1
        if label in ("real", "fake") and str(in_domain).lower() == "false":
            self.ood_apart += 1  # scored anyway (--out-of-domain score): counted apart all the same
        if label not in ("error", "out_of_domain"):  # out-of-domain scores are not ranked with the rest
            keep_top(self.heap, self.top, (float(score), path))


def _open_output(out: Path, fmt: _Format, config: ScanConfig, tally: _Tally, log) -> set[str]:
    """Prepare ``out`` for appending; with ``resume``, the display paths already in it (tallied)."""
    done: set[str] = set()
    if out.exists() and out.is_dir():
        raise ScanOutputError(f"{out}: is a directory; give a .csv or .jsonl file path")
    if out.exists() and config.resume:
        raw = out.read_bytes()
        text = raw.decode("utf-8", "surrogateescape")
        rows, pos = fmt.parse(text)
        keep = len(text[:pos].encode("utf-8", "surrogateescape"))
        if keep != len(raw):
            log(f"resume: dropping {len(raw) - keep} bytes of an incomplete last record in {out}")
            with open(out, "r+b") as f:
                f.truncate(keep)
        if fmt.kind == "csv" and keep == 0:
            write_text(out, fmt.header())
        for r in rows:
            done.add(r["path"])
            tally.note(r["path"], r["label"], r["score"], r.get("in_domain"))
    elif out.exists() and not config.overwrite:
        raise ScanOutputError(f"{out}: already exists; pass --resume to continue that scan or --overwrite to replace it")
    else:
        write_text(out, fmt.header())  # atomically: a header exists before any row
    return done


def _rows(items, x, files: Sequence[str], scorer: Scorer, thr: float, ood: str = "flag") -> list[dict]:
    """One loader batch -> its output rows (scores rounded to 6 decimals). Each row has its own
    threshold (its tile aggregate's) and domain verdict; ``ood == "skip"`` drops out-of-domain rows."""
    ok = [it for it in items if it[1]]
    scored = iter(scorer.score_inputs(x, [it[2] for it in ok], policies=[it[5] for it in ok],
                                      stats=[ImageStats(it[7], it[3], it[4]) for it in ok]) if ok else [])
    rows = []
    for i, good, n, w, h, policy, err, _ in items:
        path = display_path(files[i])  # valid UTF-8 even for non-UTF-8 file names
        if not good:
            rows.append({"path": path, "score": None, "label": "error", "threshold": thr, "error": err,
                         "policy": policy, "n_tiles": 0, "width": w, "height": h, "in_domain": None,
                         "domain_score": None})
            continue
        r = next(scored)
        r.score = round(r.score, 6)
        ds = None if r.domain_score is None else round(r.domain_score, 4)
        rows.append({"path": path, "score": r.score, "label": r.label(ood), "threshold": round(r.threshold, 6),
                     "error": None, "policy": policy, "n_tiles": n, "width": w, "height": h,
                     "in_domain": r.in_domain, "domain_score": ds})
    return rows


def scan_local(paths: Sequence[str | os.PathLike], detector: Detector, out: str | os.PathLike,
               config: ScanConfig, log) -> ScanResult:
    """Scan ``paths`` in this process into ``out``, appending one batch of rows at a time."""
    t0 = time.time()
    out = Path(out)
    fmt = format_for(out)
    thr = float(detector.spec.threshold)
    tally = _Tally(config.top)
    done = _open_output(out, fmt, config, tally, log)
    n_resumed = len(done)
    skipped: list[str] = []
    own = os.path.abspath(out)
    files = [p for p in files_.list_files(paths, config.extensions, skipped)
             if (not done or display_path(p) not in done) and os.path.abspath(p) != own]
    done.clear()
    if skipped:
        log(f"note: {len(skipped)} symbolic link(s) to folders not followed (e.g. {display_path(skipped[0])})")
    ds = _Files(files, detector.spec, config.max_pixels, config.max_tiles)
    workers = min(config.workers, max(0, len(files) // max(1, config.batch_size)))
    loader = DataLoader(ds, batch_size=config.batch_size, shuffle=False, num_workers=workers, collate_fn=_collate,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    scorer = Scorer(detector, config.forward_chunk)
    fd = os.open(out, os.O_WRONLY | os.O_APPEND)
    bar = Progress(total=len(files), desc="scan", unit="file", enabled=config.progress)
    try:
        for items, x in loader:
            rows = _rows(items, x, files, scorer, thr, config.out_of_domain)
            for row in rows:
                tally.note(row["path"], row["label"], row["score"], row["in_domain"])
            if config.out_of_domain == "skip":  # tallied above (n_ood counts them), not written
                rows = [r for r in rows if r["label"] != "out_of_domain"]
            write_all(fd, fmt.rows(rows).encode("utf-8", "surrogateescape"))
            bar.update(len(items))
    finally:
        os.close(fd)
        bar.close()
    c = tally.counts
    return ScanResult(out=out, n_files=n_resumed + len(files), n_new=len(files), n_resumed=n_resumed,
                      n_fake=c["fake"], n_real=c["real"], n_errors=c["error"],
                      n_ood=c["out_of_domain"] + tally.ood_apart,
                      top=sorted(tally.heap, reverse=True),
                      seconds=time.time() - t0, skipped_links=len(skipped))
