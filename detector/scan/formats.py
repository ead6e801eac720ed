"""Scan output formats: CSV or JSONL rows, one per input file, and reading them back.

A row is complete or absent: :meth:`_Format.parse` returns the valid rows at the start of a file
and where they end, so a resumed scan can drop a torn last record (a killed process) and go on.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

__all__ = ["COLUMNS", "LABELS", "ScanOutputError", "read_rows", "format_for", "write_all"]

COLUMNS = ("path", "score", "label", "threshold", "error", "policy", "n_tiles", "width", "height", "in_domain",
           "domain_score")
LABELS = ("real", "fake", "out_of_domain", "error")
#: The columns added with the domain guard: a JSONL row written before them resumes as "not checked".
_TRUST_COLUMNS = ("in_domain", "domain_score")
_PRE_TRUST = frozenset(COLUMNS) - frozenset(_TRUST_COLUMNS)


class ScanOutputError(ValueError):
    """The output file cannot be used (exists without resume, or belongs to another kind of file)."""


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
            if isinstance(row, dict) and set(row) == _PRE_TRUST:
                row.update(dict.fromkeys(_TRUST_COLUMNS))
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


def format_for(out: Path) -> _Format:
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
    return format_for(out).parse(text)[0]


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
