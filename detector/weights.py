"""A detector's weights, from an untrusted file: safetensors only (never a pickle), checked against
the architecture before anything is allocated (shapes on the meta device, a parameter cap, the file's
size), then tensor by tensor (names, shapes, dtypes, finite values). Every refusal is an
:class:`ArtifactError` naming the file and the problem."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .nets import NETWORKS

__all__ = ["ArtifactError", "MAX_PARAMETERS", "checked_weights", "read_safetensors"]

#: Largest network (parameters) an artifact may describe.
MAX_PARAMETERS = 200_000_000


class ArtifactError(ValueError):
    """A detector artifact that cannot be loaded; the message names the file and the problem."""


def checked_weights(architecture: str, arch_args: dict, cfg_p: Path, w_p: Path) -> dict[str, torch.Tensor]:
    """``w_p``'s tensors, once they match ``architecture(**arch_args)`` exactly (``cfg_p`` names the config
    in messages about the architecture itself)."""
    try:  # build on the meta device first: an absurd size is refused before anything is allocated
        with torch.device("meta"):
            shape_net = NETWORKS.create(architecture, **arch_args)
        expected = {k: (tuple(v.shape), v.dtype) for k, v in shape_net.state_dict().items()}
        numel = sum(math.prod(shp) for shp, _ in expected.values())
        if numel > MAX_PARAMETERS:
            raise ArtifactError(f"{cfg_p}: architecture {architecture!r} with these arguments has {numel} "
                                f"parameters, over the limit of {MAX_PARAMETERS}")
        expected_bytes = sum(math.prod(shp) * torch.empty((), dtype=dt).element_size()
                             for shp, dt in expected.values())
    except ArtifactError:
        raise
    except Exception as e:  # noqa: BLE001 - a factory may raise anything on odd arguments
        raise ArtifactError(f"{cfg_p}: architecture {architecture!r} rejects its arguments: {e}") from None
    w_size = w_p.stat().st_size
    if w_size > expected_bytes + 16 * 1024 * 1024:
        raise ArtifactError(f"{w_p}: {w_size} bytes, far more than the {expected_bytes} bytes of weights the "
                            f"architecture {architecture!r} holds")
    state = read_safetensors(w_p)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ArtifactError(f"{w_p}: weights do not match architecture {architecture!r}: "
                            f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, (shp, dt) in expected.items():
        if tuple(state[k].shape) != shp:
            raise ArtifactError(f"{w_p}: weights do not match architecture {architecture!r}: "
                                f"{k} has shape {tuple(state[k].shape)}, expected {shp}")
        if state[k].dtype != dt:
            raise ArtifactError(f"{w_p}: tensor {k} has dtype {state[k].dtype}, expected {dt}")
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ArtifactError(f"{w_p}: tensor {k} contains NaN or infinite values")
    return state


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load as st_load

    try:
        data = path.read_bytes()
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read ({e.strerror or e})") from None
    # safetensors starts with its header length (u64, little-endian) then "{": a header of 1408 bytes reads
    # b"\x80\x05" like a pickle's opening, so that byte decides first
    pickle_or_zip = data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or data[:2] == b"PK"
    if pickle_or_zip and data[8:9] != b"{":
        raise ArtifactError(f"{path}: is a pickle/zip file, not safetensors; refusing to load it "
                            "(loading pickles can execute code)")
    try:
        return st_load(data)
    except Exception as e:  # noqa: BLE001 - SafetensorError, ValueError, OverflowError, ... on hostile bytes
        raise ArtifactError(f"{path}: not a valid safetensors file ({str(e)[:200]})") from None
