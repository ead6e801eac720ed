"""Choosing the compute device once and passing it down (no hard-coded ``.cuda()``), plus the two
CUDA-only speed-ups every command shares: mixed precision (``--amp``: bfloat16 autocast, which needs
no gradient scaler; Micikevicius et al., ICLR 2018) and the ``channels_last`` memory format."""
from __future__ import annotations

import contextlib
import sys

import torch
from torch import nn

__all__ = ["resolve_device", "amp_enabled", "autocast", "to_channels_last", "AMP_DTYPE"]

AMP_DTYPE = torch.bfloat16


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> CUDA when available (the local rank's GPU under torchrun), else CPU;
    ``cpu``, ``cuda`` or ``cuda:N`` -> that device, with a clear error if it is not available."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            from .distributed import local_rank

            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        if dev.index is None:  # plain 'cuda': this process's GPU (the local rank's under torchrun)
            from .distributed import local_rank

            dev = torch.device("cuda", local_rank() % torch.cuda.device_count())
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {spec!r}: use auto, cpu, cuda or cuda:N")
    return dev


def amp_enabled(device: torch.device, amp: bool, *, warn: bool = True) -> bool:
    """Whether ``--amp`` takes effect on ``device``: CUDA only. On CPU it is a no-op, said once on stderr."""
    if not amp:
        return False
    if device.type == "cuda":
        return True
    if warn:
        print(f"note: --amp ignored on {device} (mixed precision is used on CUDA devices only); "
              "running in float32", file=sys.stderr)
    return False


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when ``enabled``, else a null context."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=AMP_DTYPE)
    return contextlib.nullcontext()


def to_channels_last(module: nn.Module, device: torch.device) -> nn.Module:
    """Convert a convolutional module to ``channels_last`` on CUDA (faster cuDNN kernels); unchanged on CPU."""
    if device.type == "cuda":
        module.to(memory_format=torch.channels_last)
    return module
