"""Helpers shared by the benchmarks: thread pinning, timing, peak memory."""
from __future__ import annotations

import os
import platform
import resource
import time
from typing import Callable

import torch


def pin_threads(n: int = 2) -> None:
    """Same intra-op thread count for every contender in a comparison."""
    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Fastest wall time of ``repeat`` calls (seconds): the least disturbed by other load."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
