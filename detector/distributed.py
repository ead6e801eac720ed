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
           "all_reduce_mean", "all_reduce_scalars", "wrap_ddp", "unwrap", "broadcast_buffers", "cleanup"]

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


def all_reduce_scalars(values: dict, skip: tuple = ()) -> dict:
    """Mean over ranks of every float/int value of ``values`` (bools, None and ``skip`` keys untouched)."""
    if not is_distributed():
        return values
    keys = [k for k, v in values.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not keys:
        return values
    t = all_reduce_mean(torch.tensor([float(values[k]) for k in keys], dtype=torch.float64))
    return {**values, **{k: float(v) for k, v in zip(keys, t.tolist())}}


def wrap_ddp(module: torch.nn.Module, device: torch.device, sync_batchnorm: bool = True) -> torch.nn.Module:
    """``module`` wrapped in DistributedDataParallel when running distributed, else ``module`` itself.

    Batch norm: on CUDA the BatchNorm layers become SyncBatchNorm (statistics over the global
    batch) when ``sync_batchnorm``; PyTorch's SyncBatchNorm has no CPU kernel, so under gloo each
    rank normalises with its own share of the batch, DDP broadcasts rank 0's running statistics at
    every forward (``broadcast_buffers``), and :func:`broadcast_buffers` makes them identical at the
    end. The module is converted in place, so optimizers built on its parameters stay valid."""
    if not is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda" and sync_batchnorm:
        converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        if converted is not module:  # only happens when module itself is a BatchNorm layer
            raise ValueError("wrap_ddp: wrap the network, not a bare BatchNorm layer")
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None,
                                   broadcast_buffers=True)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP wrapper (what is saved: state_dict keys without ``module.``)."""
    return getattr(module, "module", module)


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank."""
    if not is_distributed():
        return
    for b in unwrap(module).buffers():
        dist.broadcast(b.data, src=src)


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
