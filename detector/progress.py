"""Progress that fits where it is read: live bars on a terminal, a few plain lines in a log.

Every long loop in unmask (GAN training, hardening, scans, videos, evaluation) reports through
:class:`Progress` or :func:`track`, never through tqdm directly, because a live bar redraws itself
with carriage returns: on a terminal that is one line updating in place, but in a file (``make demo >
log``, CI, cron) it is thousands of updates glued into a few huge lines. So the mode follows the
stream (stderr unless told otherwise):

* a terminal (``isatty()``): a tqdm bar, as before;
* anything else: one line when a task starts, one at each quarter of the way (never more often than
  every ``MIN_INTERVAL`` seconds, so a task of a second is two lines), one at the end with the
  elapsed time and rate; a task without a known total gets a line every ``HEARTBEAT`` seconds instead;
* silenced: ``enabled=False`` for one task, :func:`quiet` for every task (the commands' ``--quiet``).

``UNMASK_PROGRESS=live|log|off`` overrides the choice (e.g. ``log`` to see the log format on a
terminal). Progress goes to stderr and results to stdout or files, so piping a command's results
never picks up progress text.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, TextIO, TypeVar

__all__ = ["Progress", "track", "quiet", "is_quiet", "mode", "MIN_INTERVAL", "HEARTBEAT"]

T = TypeVar("T")
MIN_INTERVAL = 2.0     # seconds between two log lines of one task (its start and end lines excepted)
HEARTBEAT = 60.0       # seconds between log lines of a task without a known total
_STEP = 0.25           # a log line at every quarter of a task with a known total
_quiet = False


@contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """Silence every progress report inside the block (a command's ``--quiet``).

    >>> with quiet():
    ...     for _ in track(range(3), desc="work"):
    ...         pass
    """
    global _quiet
    before, _quiet = _quiet, _quiet or on
    try:
        yield
    finally:
        _quiet = before


def is_quiet() -> bool:
    return _quiet


def mode(stream: TextIO, enabled: bool = True) -> str:
    """``"live"`` (a tqdm bar), ``"log"`` (plain lines) or ``"off"`` for a report on ``stream``."""
    if not enabled or _quiet:
        return "off"
    forced = os.environ.get("UNMASK_PROGRESS", "").strip().lower()
    if forced in ("live", "log", "off"):
        return forced
    try:
        return "live" if stream.isatty() else "log"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "log"


def _secs(s: float) -> str:
    return f"{s:.1f}s" if s < 60 else f"{int(s // 60)}m{int(s % 60):02d}s"


class Progress:
    """One task's progress: a tqdm bar on a terminal, a few lines in a log (see the module docstring).

    tqdm's calls that unmask uses keep their names (``update``, ``set_postfix_str``, ``set_postfix``,
    ``write``, ``close``, iteration over ``iterable``), so a bar and a log line come from one call.

    >>> with Progress(total=100, desc="scan", unit="file", stream=sys.stdout) as bar:  # doctest: +SKIP
    ...     bar.update(100)
    scan: 0/100 file
    scan: 100/100 file done in 0.0s (...)
    """

    def __init__(self, iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", *, initial: int = 0, leave: bool = True, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable) + initial  # as tqdm: a range(start, steps) with initial=start
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.stream = sys.stderr if stream is None else stream
        self.mode = mode(self.stream, enabled)
        self.n = initial
        self.postfix = ""
        self._bar = None
        self._closed = False
        self._t0 = self._last = time.monotonic()
        self._n0 = initial
        self._mark = 0  # quarters already reported
        if self.mode == "live":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, file=self.stream,
                             dynamic_ncols=True)
        elif self.mode == "log":
            if total:
                self._mark = int(initial / total / _STEP)
            self._line(f"{self._count()}" + (f" (resuming at {initial})" if initial else ""))

    # ---------------------------------------------------------------- tqdm's interface
    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this Progress was made without an iterable")
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "log":
            self._maybe_line()

    def set_postfix_str(self, s: str = "") -> None:
        self.postfix = s
        if self._bar is not None:
            self._bar.set_postfix_str(s)

    def set_postfix(self, **kw: Any) -> None:
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in kw.items()))

    def write(self, msg: str) -> None:
        """A message (a warning, a health note) that must not tear a live bar; always printed."""
        if self._bar is not None:
            self._bar.write(msg, file=self.stream)
        else:
            print(msg, file=self.stream, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "log":
            dt = time.monotonic() - self._t0
            done = self.total is None or self.n >= self.total
            rate = (self.n - self._n0) / dt if dt > 0 else float("inf")
            speed = f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"
            self._line(f"{self._count()} {'done' if done else 'stopped'} in {_secs(dt)}"
                       + (f" ({speed} {self.unit}/s)" if self.n > self._n0 and dt > 0 else ""), post=True)

    # ---------------------------------------------------------------- log lines
    def _count(self) -> str:
        return f"{self.n}/{self.total} {self.unit}" if self.total is not None else f"{self.n} {self.unit}"

    def _line(self, text: str, post: bool = False) -> None:
        tail = f"  [{self.postfix}]" if post and self.postfix else ""
        print(f"{self.desc}: {text}{tail}" if self.desc else f"{text}{tail}", file=self.stream, flush=True)
        self._last = time.monotonic()

    def _maybe_line(self) -> None:
        now = time.monotonic()
        if self.total:
            mark = int(min(self.n, self.total) / self.total / _STEP)
            if mark <= self._mark or self.n >= self.total or now - self._last < MIN_INTERVAL:
                return
            self._mark = mark
            dt = now - self._t0
            left = dt * (self.total - self.n) / max(1, self.n - self._n0)
            self._line(f"{self._count()} ({100 * self.n / self.total:.0f}%) {_secs(dt)}, ~{_secs(left)} left",
                       post=True)
        elif now - self._last >= HEARTBEAT:
            self._line(f"{self._count()} {_secs(now - self._t0)}", post=True)


def track(iterable: Iterable[T], desc: str = "", unit: str = "it", *, total: int | None = None,
          leave: bool = True, enabled: bool = True, stream: TextIO | None = None) -> Iterator[T]:
    """Iterate over ``iterable`` reporting progress (tqdm's ``tqdm(iterable)``, see :class:`Progress`).

    >>> [x for x in track(range(3), desc="squares", enabled=False)]
    [0, 1, 2]
    """
    if mode(sys.stderr if stream is None else stream, enabled) == "off":
        return iter(iterable)
    return iter(Progress(iterable, total, desc, unit, leave=leave, enabled=enabled, stream=stream))
