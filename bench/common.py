"""Helpers shared by the benchmarks: thread pinning, timing, peak memory, synthetic inputs."""
from __future__ import annotations

import os
import platform
import resource
import time
from typing import Callable

import numpy as np
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


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """1/5/15-minute load averages (other jobs on a shared machine show up here)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict:
    return {
        "cpu": _cpu_model(),
        "load_average": load_average(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "default_torch_threads": torch.get_num_threads(),  # each benchmark pins its own (see its result)
    }


def stand_in(policy: str = "tile", **arch):
    """An untrained, seeded ``dcgan_d`` ``Detector`` (28 px, 1 channel; ``arch`` overrides its
    arguments): speed does not depend on the weights."""
    from detector.artifact import Detector, spec_for_network
    from detector.nets import create_network

    torch.manual_seed(0)
    args = dict(in_channels=1, image_size=28, **arch)
    return Detector(create_network("dcgan_d", **args), spec_for_network("dcgan_d", args, 28, 1, policy=policy))


def stand_in_detector(workdir, width: int = 64):
    """Save :func:`stand_in` (tile policy) into ``workdir`` and return its directory."""
    from pathlib import Path

    d = Path(workdir) / "stand_in_detector"
    stand_in("tile", width=width, norm="batch").save(d)
    return d


def mosaic(imgs: np.ndarray, i: int, size: int) -> np.ndarray:
    """The ``i``-th ``(size, size)`` uint8 grey mosaic of consecutive 28-px ``imgs`` (N, 28, 28), wrapping around."""
    k = -(-size // 28)
    rows = [np.concatenate([imgs[(i * k * k + r * k + c) % len(imgs)] for c in range(k)], 1) for r in range(k)]
    return np.ascontiguousarray(np.concatenate(rows, 0)[:size, :size])


def cache_dir(name: str):
    """A folder for generated benchmark inputs kept between runs, outside the repository:
    ``$UNMASK_BENCH_CACHE/<name>`` or ``~/.cache/unmask/bench/<name>``."""
    from pathlib import Path

    base = os.environ.get("UNMASK_BENCH_CACHE") or Path.home() / ".cache" / "unmask" / "bench"
    d = Path(base) / name
    d.mkdir(parents=True, exist_ok=True)
    return d
