"""Many processes (torchrun) scan one list of paths into one output file.

The file list is split round-robin over the ranks; each rank streams its rows to its own part file
(``.<out name>.parts/rank-R-of-N.<ext>``) through :func:`detector.scan.local.scan_local`, then rank 0
merges the parts into ``out`` (every file exactly once, in the single-process order) and removes
them. ``resume`` continues every shard from the parts, under any number of processes. The process
group is set up by the command's entry (:func:`detector.distributed.init`), never here.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import torch

from .. import distributed as dist_
from .. import files as files_
from ..artifact import Detector
from ..atomic import atomic_open, write_text
from ..decode import display_path
from .formats import ScanOutputError, format_for, read_rows
from .local import ScanConfig, ScanResult, _Tally, scan_local

__all__ = ["parts_dir", "scan_sharded"]


def parts_dir(out: str | os.PathLike) -> Path:
    """Where the ranks of a distributed scan into ``out`` write their part files."""
    out = Path(out)
    return out.parent / f".{out.name}.parts"


def _part_rows(pdir: Path, suffix: str) -> Iterator[dict]:
    if pdir.is_dir():
        for part in sorted(pdir.glob(f"rank-*{suffix}")):
            yield from read_rows(part)


def scan_sharded(paths: Sequence[str | os.PathLike], detector: Detector, out: Path, config: ScanConfig,
                 log) -> ScanResult:
    """One shard per rank into its own part file, then rank 0 merges the parts into ``out``."""
    t0 = time.time()
    r, n, main = dist_.rank(), dist_.world_size(), dist_.is_main()
    format_for(out)  # refuses an output that is neither .csv nor .jsonl before any rank writes
    pdir = parts_dir(out)
    if out.exists() and out.is_dir():
        raise ScanOutputError(f"{out}: is a directory; give a .csv or .jsonl file path")
    if not (config.resume or config.overwrite) and (out.exists() or pdir.exists()):
        what = out if out.exists() else pdir
        raise ScanOutputError(f"{what}: already exists; pass --resume to continue that scan or --overwrite to "
                              "replace it")
    dist_.barrier()  # every rank has looked before anything is removed or written
    if main:
        if config.overwrite and pdir.exists():
            shutil.rmtree(pdir)
        pdir.mkdir(parents=True, exist_ok=True)
    dist_.barrier()
    skipped: list[str] = []
    own, pabs = os.path.abspath(out), os.path.abspath(pdir) + os.sep
    listed = [p for p in files_.list_files(paths, config.extensions, skipped)
              if os.path.abspath(p) != own and not os.path.abspath(p).startswith(pabs)]
    done: set[str] = set()
    if config.resume:  # every rank reads everything, so all agree on what is left to do
        if out.exists():
            done.update(row["path"] for row in read_rows(out))
        done.update(row["path"] for row in _part_rows(pdir, out.suffix))
    todo = [p for p in listed if display_path(p) not in done]  # rows hold display paths
    mine = dist_.shard(todo, r, n)  # deterministic round-robin: every file in exactly one shard
    del todo
    if main:  # skip counts of an earlier session are stale: those files are scanned again now
        for stale in pdir.glob("rank-*.skipped"):
            stale.unlink()
    dist_.barrier()  # nobody appends to a part before every rank has read them all
    part = pdir / f"rank-{r:05d}-of-{n:05d}{out.suffix}"
    if main and skipped:
        log(f"note: {len(skipped)} symbolic link(s) to folders not followed (e.g. {display_path(skipped[0])})")
    quiet = lambda *a, **k: None  # noqa: E731
    local = scan_local(mine, detector, part, replace(config, resume=True, overwrite=False,
                                                     progress=config.progress and main), quiet)
    if config.out_of_domain == "skip":  # rows never written, so a resumed scan scores those files again:
        write_text(part.with_suffix(".skipped"), f"{local.n_ood}\n")  # this session's count, for the merge
    n_new = int(dist_.all_reduce_mean(torch.tensor([float(local.n_new)], dtype=torch.float64)).item() * n + 0.5)
    dist_.barrier()  # every part is complete
    result = ScanResult(out=out, n_files=0, n_new=n_new, n_resumed=0, n_fake=0, n_real=0, n_errors=0,
                        skipped_links=len(skipped))
    if main:
        result = _merge(out, pdir, listed, config, result)
    dist_.barrier()  # the output is in place before any rank returns
    result.seconds = time.time() - t0
    return result


def _merge(out: Path, pdir: Path, listed: list[str], config: ScanConfig, result: ScanResult) -> ScanResult:
    """Rank 0: the earlier output (when resuming) and every part, merged into ``out`` in listing order."""
    fmt = format_for(out)
    merged: dict[str, dict] = {}
    if config.resume and out.exists():
        for row in read_rows(out):
            merged.setdefault(row["path"], row)
    for row in _part_rows(pdir, out.suffix):
        merged.setdefault(row["path"], row)
    pos = {display_path(p): i for i, p in enumerate(listed)}
    rows = sorted(merged.values(), key=lambda row: pos.get(row["path"], len(pos)))  # single-process order
    del merged
    tally = _Tally(config.top)
    with atomic_open(out, "wb") as f:
        f.write(fmt.header().encode("utf-8", "surrogateescape"))
        for i in range(0, len(rows), 4096):
            chunk = rows[i:i + 4096]
            f.write(fmt.rows(chunk).encode("utf-8", "surrogateescape"))
            for row in chunk:
                tally.note(row["path"], row["label"], row["score"], row.get("in_domain"))
    n_skip = sum(_skipped(p) for p in pdir.glob("rank-*.skipped"))  # --out-of-domain skip: counted, not written
    shutil.rmtree(pdir)  # the merged output holds every row now
    c = tally.counts
    return replace(result, n_files=len(rows) + n_skip, n_resumed=len(rows) + n_skip - result.n_new,
                   n_fake=c["fake"], n_real=c["real"], n_errors=c["error"],
                   n_ood=c["out_of_domain"] + tally.ood_apart + n_skip, top=sorted(tally.heap, reverse=True))


def _skipped(path: Path) -> int:
    """The count a rank left in its ``.skipped`` file (0 without one)."""
    try:
        return int(path.read_text().strip() or 0)
    except FileNotFoundError:
        return 0
