"""Process-group helpers for ``torchrun`` (PyTorch's own distributed engine, no home-made one).

Launched by ``torchrun --nproc_per_node N -m unmask ...`` the environment holds RANK, WORLD_SIZE
and LOCAL_RANK; without it everything runs as a single process (rank 0 of 1).
"""
from __future__ import annotations

import os
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

__all__ = ["rank", "world_size", "local_rank", "is_main", "is_distributed", "init", "barrier", "shard",
           "all_reduce_mean", "cleanup"]

T = TypeVar("T")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """True on the process that writes checkpoints, logs and artifacts (rank 0)."""
    return rank() == 0


def init(device: torch.device | None = None) -> bool:
    """Join the process group when launched by torchrun (gloo on CPU, NCCL on CUDA).

    Returns True when running distributed. Safe to call more than once."""
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 or "MASTER_ADDR" not in os.environ:
        return False
    backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    if device is not None and device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    return True


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard(items: Sequence[T], r: int | None = None, n: int | None = None) -> list[T]:
    """Deterministic round-robin share of ``items`` for rank ``r`` of ``n``: every item in exactly one share."""
    r = rank() if r is None else r
    n = world_size() if n is None else n
    return list(items[r::n])


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of ``t`` over ranks (identity when not distributed)."""
    if not is_distributed():
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / world_size()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
