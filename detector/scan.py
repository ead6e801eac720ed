"""Scan files and folders with a detector: one row per input file, streamed to CSV or JSONL.

* Every file gets exactly one row (the output is valid UTF-8: a file name that is not shows its
  odd bytes as ``\\xNN`` escapes, see :func:`detector.decode.display_path`): ``path, score, label, threshold, error, policy, n_tiles,
  width, height``. ``label`` is ``real``, ``fake`` or ``error``; ``score`` is the calibrated
  probability of "fake"; an unreadable file gets ``label=error`` and the reason, and the scan goes on.
* Images of any size follow the artifact's policy (resize / crop, or native-resolution tiles whose
  scores are aggregated); the ``policy`` column records what was done to each file.
* Decoding runs in DataLoader worker processes; the network sees whole batches.
* Rows are appended one batch at a time with a single ``write`` and flushed, so a killed scan
  leaves complete rows only. ``resume=True`` re-reads the output, drops any torn trailing record,
  and scans only the files without a row: every file ends up exactly once.
* Memory stays flat: results are written, not kept (only a ``top``-N heap).
* Under ``torchrun`` (several processes) the file list is split round-robin over the ranks; each
  rank streams its rows to its own part file (``.<out name>.parts/rank-R-of-N.<ext>``), then rank 0
  merges the parts into ``out`` (every file exactly once, in the single-process order) and removes
  them. ``resume`` continues every shard from the parts, under any number of processes.
"""
from __future__ import annotations

import csv
import heapq
import io
import json
import math
import os
import stat
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from .artifact import Detector, DetectorSpec, aggregate
from .atomic import atomic_open, write_text
from .decode import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, UnreadableImage, display_path, read_image
from .preprocess import fit, resize, tile_grid, tiles

__all__ = ["COLUMNS", "ScanConfig", "ScanResult", "ScanOutputError", "list_inputs", "scan", "read_rows",
           "parts_dir"]

COLUMNS = ("path", "score", "label", "threshold", "error", "policy", "n_tiles", "width", "height")
LABELS = ("real", "fake", "error")


class ScanOutputError(ValueError):
    """The output file cannot be used (exists without resume, or belongs to another kind of file)."""


@dataclass(frozen=True)
class ScanConfig:
    """Options of :func:`scan` (``unmask scan`` maps onto them)."""

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

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.workers < 0 or self.top < 0 or self.max_tiles < 1 or self.forward_chunk < 1:
            raise ValueError("batch_size, max_tiles and forward_chunk must be >= 1; workers and top >= 0")
        if self.resume and self.overwrite:
            raise ValueError("choose either resume or overwrite, not both")


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
    top: list = field(default_factory=list)   # [(score, path)] highest first
    seconds: float = 0.0
    skipped_links: int = 0

    @property
    def files_per_s(self) -> float:
        return self.n_new / self.seconds if self.seconds > 0 else float("nan")


# ---------------------------------------------------------------------------- listing


def list_inputs(paths: Iterable[str | os.PathLike], extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
                skipped: list | None = None) -> list[str]:
    """Files to scan, in a stable order: explicitly named paths as given, folders walked recursively
    (sorted by name). Symbolic links to folders are not followed (appended to ``skipped``); an
    unlistable folder is returned itself (its row will say why). Duplicates are dropped."""
    exts = None if extensions is None else {e.lower() for e in extensions}
    seen: set[str] = set()
    out: list[str] = []

    def add(p: str) -> None:
        if p not in seen:
            seen.add(p)
            out.append(p)

    def walk(d: str) -> None:
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            add(d)
            return
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                walk(e.path)
                continue
            if e.is_symlink() and os.path.isdir(e.path):
                if skipped is not None:
                    skipped.append(e.path)
                continue
            if exts is None or os.path.splitext(e.name)[1].lower() in exts:
                add(e.path)

    for p in map(os.fspath, paths):
        if os.path.isdir(p):
            walk(p)
        else:
            add(p)
    return out


# ---------------------------------------------------------------------------- decoding (in workers)


class _Files(Dataset):
    """``i -> (i, inputs (N, C, S, S) | None, n, width, height, policy, error)``."""

    def __init__(self, files: Sequence[str], spec: DetectorSpec, max_pixels: int, max_tiles: int) -> None:
        self.files, self.spec, self.max_pixels, self.max_tiles = files, spec, max_pixels, max_tiles

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path = self.files[i]
        s = self.spec
        try:
            try:
                st = os.stat(path)
            except OSError:
                st = None  # read_image gives the precise reason
            if st is not None and stat.S_ISDIR(st.st_mode):
                try:
                    os.scandir(path).close()
                    reason = "is a directory, not an image file"
                except OSError as e:
                    reason = f"folder cannot be listed: {e.strerror or e}"
                raise UnreadableImage(path, reason)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise UnreadableImage(path, "not a regular file (a FIFO, socket or device); not read")
            img = read_image(path, channels=s.channels, max_pixels=self.max_pixels)
            _, h, w = img.shape
            if s.policy == "tile":
                policy = "tile"
                n = len(tile_grid(max(h, s.input_size), max(w, s.input_size), s.input_size))
                if n > self.max_tiles:
                    f = math.sqrt(self.max_tiles / n)
                    while True:
                        nh, nw = max(s.input_size, int(h * f)), max(s.input_size, int(w * f))
                        if len(tile_grid(nh, nw, s.input_size)) <= self.max_tiles or f < 1e-4:
                            break
                        f *= 0.95
                    img = resize(img, nh, nw)
                    policy = f"tile(scaled {nw / w:.4g})"
                x, _ = tiles(img, s.input_size, s.channels)
            else:
                policy = s.policy
                x = fit(img, s.input_size, s.channels, s.policy).unsqueeze(0)
            return i, x, len(x), w, h, policy, ""
        except UnreadableImage as e:
            return i, None, 0, None, None, s.policy, e.reason
        except Exception as e:  # noqa: BLE001 - one hostile file must never stop the scan
            return i, None, 0, None, None, s.policy, f"unexpected error: {type(e).__name__}: {e}"[:500]


def _collate(items):
    """One batch -> ``(rows, inputs)``: the files' model inputs concatenated into ONE tensor.

    Runs in the DataLoader worker, so each batch crosses the process boundary as a single shared-memory
    tensor instead of one per file; per-file tensors cost a file descriptor and a storage rebuild each
    in the main process, which halved decode throughput in bench/scan_speed.py's profile."""
    xs = [it[1] for it in items if it[1] is not None]
    x = (torch.cat(xs) if len(xs) > 1 else xs[0]) if xs else None
    return [(i, x_ is not None, n, w, h, policy, err) for i, x_, n, w, h, policy, err in items], x


# ---------------------------------------------------------------------------- output formats


class _Format:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def header(self) -> str:
        if self.kind == "csv":
            return self.rows([list(COLUMNS)])
        return ""

    def rows(self, rows: list) -> str:
        if self.kind == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            for r in rows:
                w.writerow(["" if v is None else v for v in (r if isinstance(r, list) else [r[c] for c in COLUMNS])])
            return buf.getvalue()
        return "".join(json.dumps({c: r[c] for c in COLUMNS}, ensure_ascii=True) + "\n" for r in rows)

    def parse(self, text: str) -> tuple[list[dict], int]:
        """Complete, valid rows at the start of ``text`` and the character offset where they end."""
        good: list[dict] = []
        if self.kind == "csv":
            head = self.header()
            if not text.startswith(head):
                raise ScanOutputError("the existing output does not start with the expected CSV header "
                                      f"({','.join(COLUMNS)}); not resuming into it")
            pos = len(head)
            try:
                for rec in csv.reader(io.StringIO(text[pos:], newline="")):
                    if len(rec) != len(COLUMNS):
                        break
                    row = dict(zip(COLUMNS, rec))
                    s = self.rows([rec])
                    if not text.startswith(s, pos) or not _valid(row):
                        break
                    good.append(row)
                    pos += len(s)
            except csv.Error:
                pass
            return good, pos
        pos = 0
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                break
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break
            if not isinstance(row, dict) or set(row) != set(COLUMNS) or not _valid(row):
                break
            good.append(row)
            pos += len(line)
        return good, pos


def _valid(row: dict) -> bool:
    if row["label"] not in LABELS or not isinstance(row["path"], str) or not row["path"]:
        return False
    if row["label"] != "error":
        try:
            return math.isfinite(float(row["score"]))
        except (TypeError, ValueError):
            return False
    return True


def _format_for(out: Path) -> _Format:
    suf = out.suffix.lower()
    if suf == ".csv":
        return _Format("csv")
    if suf in (".jsonl", ".ndjson"):
        return _Format("jsonl")
    raise ScanOutputError(f"{out}: output must end in .csv or .jsonl")


def read_rows(out: str | os.PathLike) -> list[dict]:
    """All complete rows of a scan output (CSV values are strings; JSONL values typed)."""
    out = Path(out)
    text = out.read_bytes().decode("utf-8", "surrogateescape")
    return _format_for(out).parse(text)[0]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# ---------------------------------------------------------------------------- the scan


def _keep_top(heap: list[tuple[float, str]], top: int, item: tuple[float, str]) -> None:
    """Push ``(score, path)`` onto a min-heap holding the ``top`` highest items seen so far."""
    if not top:
        return
    if len(heap) < top:
        heapq.heappush(heap, item)
    elif item > heap[0]:
        heapq.heapreplace(heap, item)


def scan(paths: Sequence[str | os.PathLike], detector: Detector, out: str | os.PathLike,
         config: ScanConfig = ScanConfig(), log=print) -> ScanResult:
    """Scan ``paths`` with ``detector`` into ``out`` (.csv or .jsonl); see the module docstring.

    Launched by torchrun (after :func:`detector.distributed.init`), each rank scans its shard and
    rank 0 merges; the result's counts are complete on rank 0 only."""
    from . import distributed as dist_

    if dist_.is_distributed() and dist_.world_size() > 1:
        return _scan_distributed(paths, detector, Path(out), config, log)
    return _scan_local(paths, detector, out, config, log)


def _scan_local(paths: Sequence[str | os.PathLike], detector: Detector, out: str | os.PathLike,
                config: ScanConfig, log) -> ScanResult:
    from tqdm import tqdm

    t0 = time.time()
    out = Path(out)
    fmt = _format_for(out)
    spec = detector.spec
    thr = float(spec.threshold)
    heap: list[tuple[float, str]] = []
    counts = {"real": 0, "fake": 0, "error": 0}

    def note(path: str, label: str, score) -> None:
        counts[label] += 1
        if label != "error":
            _keep_top(heap, config.top, (float(score), path))

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
            note(r["path"], r["label"], r["score"])
        del rows
    elif out.exists() and not config.overwrite:
        raise ScanOutputError(f"{out}: already exists; pass --resume to continue that scan or --overwrite to replace it")
    else:
        write_text(out, fmt.header())  # atomically: a header exists before any row
    n_resumed = len(done)

    skipped: list[str] = []
    own = os.path.abspath(out)
    files = [p for p in list_inputs(paths, config.extensions, skipped)
             if (not done or display_path(p) not in done) and os.path.abspath(p) != own]
    done.clear()
    if skipped:
        log(f"note: {len(skipped)} symbolic link(s) to folders not followed (e.g. {display_path(skipped[0])})")
    ds = _Files(files, spec, config.max_pixels, config.max_tiles)
    workers = min(config.workers, max(0, len(files) // max(1, config.batch_size)))
    loader = DataLoader(ds, batch_size=config.batch_size, shuffle=False, num_workers=workers, collate_fn=_collate,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    fd = os.open(out, os.O_WRONLY | os.O_APPEND)
    bar = tqdm(total=len(files), desc="scan", unit="file", disable=not config.progress, dynamic_ncols=True)
    try:
        for items, x in loader:
            scores = None
            if x is not None:
                scores = torch.cat([detector.score_batch(x[j:j + config.forward_chunk])
                                    for j in range(0, len(x), config.forward_chunk)]).double()
            rows, off = [], 0
            for i, ok, n, w, h, policy, err in items:
                path = display_path(files[i])  # valid UTF-8 even for non-UTF-8 file names
                if not ok:
                    row = {"path": path, "score": None, "label": "error", "threshold": thr, "error": err,
                           "policy": policy, "n_tiles": 0, "width": w, "height": h}
                else:
                    s = float(scores[off]) if n == 1 else aggregate(scores[off:off + n], spec.tile_aggregate,
                                                                     spec.tile_topk)
                    off += n
                    s = round(s, 6)
                    row = {"path": path, "score": s, "label": "fake" if s >= thr else "real", "threshold": thr,
                           "error": None, "policy": policy, "n_tiles": n, "width": w, "height": h}
                note(path, row["label"], row["score"])
                rows.append(row)
            _write_all(fd, fmt.rows(rows).encode("utf-8", "surrogateescape"))
            bar.update(len(items))
    finally:
        os.close(fd)
        bar.close()
    top = sorted(heap, reverse=True)
    return ScanResult(out=out, n_files=n_resumed + len(files), n_new=len(files), n_resumed=n_resumed,
                      n_fake=counts["fake"], n_real=counts["real"], n_errors=counts["error"], top=top,
                      seconds=time.time() - t0, skipped_links=len(skipped))


# ---------------------------------------------------------------------------- many processes (torchrun)


def parts_dir(out: str | os.PathLike) -> Path:
    """Where the ranks of a distributed scan into ``out`` write their part files."""
    out = Path(out)
    return out.parent / f".{out.name}.parts"


def _part_rows(pdir: Path, suffix: str) -> Iterator[dict]:
    if pdir.is_dir():
        for part in sorted(pdir.glob(f"rank-*{suffix}")):
            yield from read_rows(part)


def _scan_distributed(paths: Sequence[str | os.PathLike], detector: Detector, out: Path, config: ScanConfig,
                      log) -> ScanResult:
    """One shard per rank into its own part file, then rank 0 merges the parts into ``out``."""
    import shutil

    from . import distributed as dist_

    t0 = time.time()
    r, n, main = dist_.rank(), dist_.world_size(), dist_.is_main()
    fmt = _format_for(out)
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
    listed = [p for p in list_inputs(paths, config.extensions, skipped)
              if os.path.abspath(p) != own and not os.path.abspath(p).startswith(pabs)]
    done: set[str] = set()
    if config.resume:  # every rank reads everything, so all agree on what is left to do
        if out.exists():
            done.update(row["path"] for row in read_rows(out))
        done.update(row["path"] for row in _part_rows(pdir, out.suffix))
    todo = [p for p in listed if display_path(p) not in done]  # rows hold display paths
    mine = dist_.shard(todo, r, n)  # deterministic round-robin: every file in exactly one shard
    del todo
    dist_.barrier()  # nobody appends to a part before every rank has read them all
    part = pdir / f"rank-{r:05d}-of-{n:05d}{out.suffix}"
    if main and skipped:
        log(f"note: {len(skipped)} symbolic link(s) to folders not followed (e.g. {display_path(skipped[0])})")
    quiet = lambda *a, **k: None  # noqa: E731
    local = _scan_local(mine, detector, part, replace(config, resume=True, overwrite=False,
                                                      progress=config.progress and main), quiet)
    n_new = int(dist_.all_reduce_mean(torch.tensor([float(local.n_new)], dtype=torch.float64)).item() * n + 0.5)
    dist_.barrier()  # every part is complete
    result = ScanResult(out=out, n_files=0, n_new=n_new, n_resumed=0, n_fake=0, n_real=0, n_errors=0,
                        skipped_links=len(skipped))
    if main:
        merged: dict[str, dict] = {}
        if config.resume and out.exists():
            for row in read_rows(out):
                merged.setdefault(row["path"], row)
        for row in _part_rows(pdir, out.suffix):
            merged.setdefault(row["path"], row)
        pos = {display_path(p): i for i, p in enumerate(listed)}
        rows = sorted(merged.values(), key=lambda row: pos.get(row["path"], len(pos)))  # single-process order
        del merged
        counts = {"real": 0, "fake": 0, "error": 0}
        heap: list[tuple[float, str]] = []
        with atomic_open(out, "wb") as f:
            f.write(fmt.header().encode("utf-8", "surrogateescape"))
            for i in range(0, len(rows), 4096):
                chunk = rows[i:i + 4096]
                f.write(fmt.rows(chunk).encode("utf-8", "surrogateescape"))
                for row in chunk:
                    counts[row["label"]] += 1
                    if row["label"] != "error":
                        _keep_top(heap, config.top, (float(row["score"]), row["path"]))
        shutil.rmtree(pdir)  # the merged output holds every row now
        result = replace(result, n_files=len(rows), n_resumed=len(rows) - n_new, n_fake=counts["fake"],
                         n_real=counts["real"], n_errors=counts["error"], top=sorted(heap, reverse=True))
    dist_.barrier()  # the output is in place before any rank returns
    result.seconds = time.time() - t0
    return result
