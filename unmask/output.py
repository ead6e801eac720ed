"""Where a long command's output goes: ``--quiet`` and ``--json`` for every command that does long work.

* Progress (bars on a terminal, a few lines in a log: :mod:`detector.progress`) and warnings go to
  stderr; results go to stdout or files. The two are never mixed, so ``unmask scan ... > out.txt``
  or ``make demo > log`` gets results, or a readable log, not carriage-return noise.
* ``--quiet`` silences progress (every bar and progress line of the command, whichever library loop
  makes it); results and warnings are still printed.
* ``--json`` prints exactly one JSON object on stdout when the command is done (its summary, for
  scripts: ``unmask scan ... --json | jq .errors``); the human-readable result lines then go to
  stderr. The exit codes do not change.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any, Callable

import click

__all__ = ["long_work", "Report", "jsonable"]


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON values: dataclasses and mappings as objects, paths as strings, NumPy and
    torch scalars as numbers, NaN and infinity as null (JSON has neither)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:  # NumPy / torch scalar
        x = x.item()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)


class Report:
    """A command's results: :meth:`line` for people, :meth:`done` for the ``--json`` summary."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json

    def line(self, text: str = "") -> None:
        """A human-readable result line: stdout, or stderr under ``--json`` (stdout is the JSON's)."""
        click.echo(text, err=self.as_json)

    def done(self, summary: dict) -> None:
        """Under ``--json``, print ``summary`` (with ``"ok": True`` unless given) as one line of JSON."""
        if self.as_json:
            click.echo(json.dumps(jsonable({"ok": True, **summary}), ensure_ascii=False, allow_nan=False))


def long_work(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--quiet`` and ``--json`` to a click command (put it under the command's options); the
    command receives ``quiet: bool`` and ``report: Report`` and runs with progress silenced under
    ``--quiet``."""
    from detector.progress import quiet as quiet_progress

    @functools.wraps(f)
    def run(*args: Any, quiet: bool, as_json: bool, **kw: Any) -> Any:
        with quiet_progress(quiet):
            return f(*args, quiet=quiet, report=Report(as_json), **kw)

    run = click.option("--json", "as_json", is_flag=True,
                       help="Print a machine-readable summary (one JSON object) on stdout; result lines go to "
                            "stderr.")(run)
    return click.option("--quiet", is_flag=True, help="No progress output (no bars, no progress lines).")(run)
