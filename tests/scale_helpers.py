"""Running a function on 2 CPU processes with a real gloo process group (torch.multiprocessing
spawn), recording which files each rank wrote, for tests/test_scale.py."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Callable

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, fn: Callable, args: tuple, logdir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    written: list[str] = []
    real_replace = os.replace

    def spy(src, dst, *a, **k):  # every unmask write ends in detector.atomic's os.replace
        written.append(str(dst))
        return real_replace(src, dst, *a, **k)

    os.replace = spy
    try:
        result = fn(rank, *args)
    finally:
        os.replace = real_replace
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    log = Path(logdir)
    if result is not None:
        torch.save(result, log / f"result{rank}.pt")
    (log / f"writes{rank}.json").write_text(json.dumps(written))


def spawn(fn: Callable, args: tuple, logdir: Path, world: int = 2) -> list[dict]:
    """Run ``fn(rank, *args)`` on ``world`` processes; returns per rank {'writes': [...], 'result': ...}."""
    logdir.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(world, free_port(), fn, args, str(logdir)), nprocs=world, join=True)
    out = []
    for r in range(world):
        res = logdir / f"result{r}.pt"
        out.append({"writes": json.loads((logdir / f"writes{r}.json").read_text()),
                    "result": torch.load(res, weights_only=False) if res.exists() else None})
    return out
