"""Independent pieces of a pipeline run side by side in worker processes (``unmask demo`` uses it).

The demo trains three generator runs and hardens three detectors, each on one thread, and most of
them do not depend on each other: so on a machine with a few cores they run as separate processes,
one thread each (two GAN runs at once, then the detector and the leave-one-family-out folds while
the main process evaluates, scans and retrains) rather than one after the other.

:class:`Jobs` takes named jobs with the names they must wait for (``after``) and starts each one as
soon as its dependencies are done and a worker is free, in the order they were added. Workers are
*spawned* (a fresh interpreter: forking a process that has already run torch's thread pool can
hang), run with one torch thread, and send every line they print (progress included, in its log
format) back to the main process, which writes it through ``log`` prefixed with the job's name.
A job's exception is raised again by :meth:`Jobs.result`; jobs that depended on it are not run.
With ``workers=0`` every job runs in the calling process when its result is asked for (no
processes, lines go straight to ``log``): the same results, in order.

Job functions must be importable module-level functions taking and returning picklable values.
"""
from __future__ import annotations

import io
import multiprocessing
import queue as queue_
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Jobs", "JobError"]


class JobError(RuntimeError):
    """A job could not run because a job it waits for failed."""


class _Lines(io.TextIOBase):
    """A text stream that sends each complete line to ``put`` (carriage returns end a line too)."""

    def __init__(self, put: Callable[[str], None]) -> None:
        super().__init__()
        self._put, self._buf = put, ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:  # progress writes log lines, never a redrawn bar, into a relayed stream
        return False

    def write(self, s: str) -> int:
        self._buf += s.replace("\r", "\n")
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if line.strip():
                self._put(line)
        return len(s)

    def flush(self) -> None:
        if self._buf.strip():
            self._put(self._buf)
        self._buf = ""


def _in_worker(fn: Callable, args: tuple, kwargs: dict, lines, tag: str, quiet: bool) -> Any:
    """Run ``fn`` in a worker: one torch thread, its output relayed line by line."""
    import torch

    from detector import progress

    torch.set_num_threads(1)
    out = _Lines(lambda line: lines.put(f"[{tag}] {line}"))
    sys.stdout = sys.stderr = out
    try:
        with progress.quiet(quiet):
            return fn(*args, **kwargs)
    finally:
        out.flush()


@dataclass
class _Job:
    name: str
    fn: Callable
    args: tuple
    kwargs: dict
    after: tuple
    future: Future = field(default_factory=Future)
    started: bool = False


class Jobs:
    """Named jobs with dependencies, run by ``workers`` spawned processes (0: in this process)."""

    def __init__(self, workers: int, log: Callable[[str], None] = print, quiet: bool = False) -> None:
        self.workers, self.log, self.quiet = max(0, int(workers)), log, quiet
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._pool = self._thread = self._manager = self._lines = None
        if self.workers:
            ctx = multiprocessing.get_context("spawn")
            self._manager = ctx.Manager()
            self._lines = self._manager.Queue()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
            self._thread = threading.Thread(target=self._schedule, name="unmask-jobs", daemon=True)
            self._thread.start()

    def add(self, name: str, fn: Callable, *args: Any, after: tuple = (), **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` once every job named in ``after`` has finished."""
        with self._lock:
            if name in self._jobs:
                raise ValueError(f"job {name!r} already added")
            unknown = [a for a in after if a not in self._jobs]
            if unknown:
                raise ValueError(f"job {name!r} waits for unknown job(s) {unknown}: add those first")
            self._jobs[name] = _Job(name, fn, args, kwargs, tuple(after))

    def names(self) -> list[str]:
        """Every job added, in order."""
        return list(self._jobs)

    def result(self, name: str, timeout: float | None = None) -> Any:
        """The value ``name`` returned (waiting for it); its exception if it failed."""
        job = self._jobs[name]
        if not self.workers and not job.started:
            self._run_here(job)
        return job.future.result(timeout)

    def close(self) -> None:
        """Wait for every job, then stop the workers (the first failure is raised)."""
        try:
            for name in list(self._jobs):
                self.result(name)
        finally:
            self._closed = True
            if self._thread is not None:
                self._thread.join()
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._manager.shutdown()

    def __enter__(self) -> "Jobs":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:  # already failing: stop without waiting for the rest
            self._closed = True
            if self._thread is not None:
                self._thread.join()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._manager.shutdown()

    # ------------------------------------------------------------------ internals
    def _run_here(self, job: _Job) -> None:
        for dep in job.after:
            self.result(dep)
        job.started = True
        try:
            job.future.set_result(job.fn(*job.args, **job.kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to whoever asks for the result
            job.future.set_exception(e)

    def _failed_dep(self, job: _Job) -> str | None:
        for dep in job.after:
            f = self._jobs[dep].future
            if f.done() and f.exception() is not None:
                return dep
        return None

    def _start_ready(self, running: dict) -> None:
        if self._closed:
            return
        with self._lock:
            pending = [j for j in self._jobs.values() if not j.started]
        for job in pending:
            bad = self._failed_dep(job)
            if bad is not None:
                job.started = True
                job.future.set_exception(JobError(f"job {job.name!r} not run: {bad!r}, which it waits for, failed"))
            elif len(running) < self.workers and all(self._jobs[d].future.done() for d in job.after):
                job.started = True
                running[job.name] = self._pool.submit(_in_worker, job.fn, job.args, job.kwargs, self._lines, job.name,
                                                      self.quiet)

    def _relay(self, wait: float) -> None:
        try:
            self.log(self._lines.get(timeout=wait))
            while True:
                self.log(self._lines.get_nowait())
        except (queue_.Empty, EOFError, OSError):
            pass

    def _schedule(self) -> None:
        running: dict[str, Future] = {}
        while True:
            self._start_ready(running)
            self._relay(0.2)
            for name, f in list(running.items()):
                if f.done():
                    del running[name]
                    job = self._jobs[name]
                    if f.exception() is not None:
                        job.future.set_exception(f.exception())
                    else:
                        job.future.set_result(f.result())
            if self._closed:  # close(): every job is done; a failing exit: stop relaying now
                self._relay(0.0)
                return
