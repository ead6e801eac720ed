"""Running functions on 2 CPU processes with a real gloo process group (torch.multiprocessing
spawn), recording which files each rank wrote during each function, for tests/test_scale.py."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.multiprocessing as mp

Job = tuple[str, Callable, tuple]  # (name, fn(rank, *args) -> picklable result, args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, jobs: Sequence[Job], logdir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    written: list[str] = []
    real_replace = os.replace

    def spy(src, dst, *a, **k):  # every unmask write ends in detector.atomic's os.replace
        written.append(str(dst))
        return real_replace(src, dst, *a, **k)

    out = {}
    os.replace = spy
    try:
        for name, fn, args in jobs:
            written.clear()
            result = fn(rank, *args)
            out[name] = {"result": result, "writes": list(written)}
    finally:
        os.replace = real_replace
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    torch.save(out, Path(logdir) / f"rank{rank}.pt")


def spawn(jobs: Sequence[Job], logdir: Path, world: int = 2) -> list[dict]:
    """Run each ``fn(rank, *args)`` of ``jobs`` in turn on ``world`` processes sharing one process group;
    returns, per rank, ``{name: {'result': ..., 'writes': [paths written during that job]}}``."""
    logdir.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(world, free_port(), list(jobs), str(logdir)), nprocs=world, join=True)
    return [torch.load(logdir / f"rank{r}.pt", weights_only=False) for r in range(world)]
