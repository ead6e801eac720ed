"""The shippable detector: ``model.safetensors`` beside a self-describing ``detector.json``.

Loading rebuilds the network from these two files alone (architecture name and arguments,
preprocessing, threshold, temperature), never unpickles, and refuses anything malformed with a
message naming the file and the field. Habits from timm's ``PretrainedCfg`` and torchvision's
``Weights.meta``.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import nn

from . import __version__
from .device import autocast, resolve_device
from .atomic import save_safetensors, write_json
from .nets import NETWORKS
from .preprocess import POLICIES, model_inputs, normalize
from .weights import MAX_PARAMETERS, ArtifactError, checked_weights, read_safetensors

if TYPE_CHECKING:  # the Python API's types; its modules import this one
    from .inputs import ImageInput
    from .predictions import Prediction, Predictions

__all__ = ["FORMAT_VERSION", "AGGREGATES", "DetectorSpec", "Detector", "ArtifactError", "load", "aggregate",
           "spec_for_network", "MAX_INPUT_SIZE", "MAX_PARAMETERS"]

#: 2 added the ``trust`` section (domain model, aggregate thresholds; :mod:`detector.trust`).
FORMAT_VERSION = 2
WEIGHTS, CONFIG = "model.safetensors", "detector.json"
AGGREGATES = ("max", "mean", "topk_mean")
MAX_INPUT_SIZE = 1024
#: Largest network (parameters + buffers) an artifact may declare; checked before allocating it.
_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _finite(x: Any) -> bool:
    """A real, finite number (not a bool; huge JSON integers count as not finite)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def _short(x: Any, n: int = 40) -> str:
    """``repr`` cut to ``n`` characters: messages stay readable whatever a hostile file holds."""
    r = repr(x)
    return r if len(r) <= n else r[: n - 3] + "..."


@dataclass(frozen=True)
class DetectorSpec:
    """Everything needed to rebuild and use a detector; serialised as ``detector.json``."""

    architecture: str
    arch_args: dict
    input_size: int
    channels: int
    mean: list
    std: list
    policy: str = "resize"           # how images of other sizes are fitted: resize | crop | tile
    tile_aggregate: str = "max"      # how tile scores make an image score (policy == tile)
    tile_topk: int = 3
    threshold: float = 0.5           # on the calibrated probability of "fake"
    threshold_rule: str = "default 0.5 (not chosen on data)"
    temperature: float = 1.0         # logits are divided by this before the sigmoid
    provenance: dict = field(default_factory=dict)
    trust: dict | None = None        # the domain model and aggregate thresholds' section (format 2)
    format_version: int = FORMAT_VERSION
    unmask_version: str = __version__

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any, where: str = CONFIG) -> "DetectorSpec":
        if not isinstance(obj, dict):
            raise ArtifactError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        known = {f.name: f for f in fields(cls)}
        extra = sorted(set(obj) - set(known))
        if extra:
            raise ArtifactError(f"{where}: unknown field(s) {', '.join(extra)}")
        version = obj.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ArtifactError(f"{where}: field 'format_version' is missing or not an integer")
        if version > FORMAT_VERSION:
            raise ArtifactError(f"{where}: format version {version} is newer than this unmask supports "
                                f"({FORMAT_VERSION}); upgrade unmask")
        if version < 1:
            raise ArtifactError(f"{where}: invalid format version {version}")
        types = {"architecture": str, "arch_args": dict, "input_size": int, "channels": int, "mean": list,
                 "std": list, "policy": str, "tile_aggregate": str, "tile_topk": int, "threshold": (int, float),
                 "threshold_rule": str, "temperature": (int, float), "provenance": dict, "unmask_version": str,
                 "trust": dict}
        required = {"architecture", "arch_args", "input_size", "channels", "mean", "std"}
        for name, typ in types.items():
            if name not in obj:
                if name in required:
                    raise ArtifactError(f"{where}: required field {name!r} is missing")
                continue
            v = obj[name]
            if name == "trust" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, typ):
                want = typ.__name__ if isinstance(typ, type) else "number"
                raise ArtifactError(f"{where}: field {name!r} must be {want}, got {type(v).__name__} {v!r:.40}")
        spec = cls(**obj)
        spec.validate(where)
        return spec

    def validate(self, where: str = CONFIG) -> None:
        def bad(msg: str) -> ArtifactError:
            return ArtifactError(f"{where}: {msg}")

        if self.architecture not in NETWORKS:
            raise bad(f"unknown architecture {self.architecture[:80]!r}; known: {', '.join(NETWORKS.names())}")
        if not isinstance(self.input_size, int) or not 8 <= self.input_size <= MAX_INPUT_SIZE:
            raise bad(f"input_size {_short(self.input_size)} outside the supported range [8, {MAX_INPUT_SIZE}]")
        if self.channels not in (1, 3):
            raise bad(f"channels must be 1 or 3, not {_short(self.channels)}")
        for name in ("mean", "std"):
            v = getattr(self, name)
            if len(v) not in (1, self.channels) or not all(
                    _finite(x) for x in v):
                raise bad(f"{name} must be 1 or {self.channels} finite numbers, got {v!r:.60}")
        if any(s <= 0 for s in self.std):
            raise bad("std values must be positive")
        if self.policy not in POLICIES:
            raise bad(f"policy {_short(self.policy)} not one of {POLICIES}")
        if self.tile_aggregate not in AGGREGATES:
            raise bad(f"tile_aggregate {_short(self.tile_aggregate)} not one of {AGGREGATES}")
        if not 1 <= self.tile_topk <= 10_000:
            raise bad(f"tile_topk {_short(self.tile_topk)} out of range")
        if not (_finite(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise bad(f"threshold {_short(self.threshold)} must be a probability in [0, 1]")
        if not (_finite(self.temperature) and 1e-3 <= self.temperature <= 1e3):
            raise bad(f"temperature {_short(self.temperature)} must be in [0.001, 1000]")
        for k, v in self.arch_args.items():
            if not isinstance(k, str) or not _ARG_NAME.match(k):
                raise bad(f"arch_args key {str(k)[:40]!r} is not a valid argument name")
            if not isinstance(v, (int, float, str, bool)) or (isinstance(v, str) and len(v) > 64):
                raise bad(f"arch_args[{k!r}] must be a short scalar, got {type(v).__name__}")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not _finite(v):
                raise bad(f"arch_args[{k!r}] must be a finite number")
        for arg, field_name in (("in_channels", "channels"), ("image_size", "input_size")):
            if arg in self.arch_args and self.arch_args[arg] != getattr(self, field_name):
                raise bad(f"arch_args[{arg!r}] = {self.arch_args[arg]!r} contradicts {field_name} = "
                          f"{getattr(self, field_name)}")


def aggregate(scores: torch.Tensor, how: str = "max", topk: int = 3) -> float:
    """Combine ``(N,)`` tile/region/frame scores into one score."""
    if scores.numel() == 0:
        raise ValueError("no scores to aggregate")
    if how == "max":
        return float(scores.max())
    if how == "mean":
        return float(scores.mean())
    if how == "topk_mean":
        return float(scores.topk(min(topk, scores.numel())).values.mean())
    raise ValueError(f"unknown aggregate {how!r}; choose one of {AGGREGATES}")


class Detector:
    """A network plus the spec that says how to feed it and read its output.

    :meth:`score` takes what people hold (paths, folders, PIL images, arrays, tensors, lists) and
    returns typed predictions; the lower-level ``score_*`` methods return the calibrated probability
    that an already decoded image is fake.

    >>> det = detector.load("runs/demo/detector")          # doctest: +SKIP
    >>> det.score("photo.jpg")[0].label                     # doctest: +SKIP
    'real'
    """

    def __init__(self, net: nn.Module, spec: DetectorSpec, device: str | torch.device = "cpu") -> None:
        spec.validate("spec")
        self.net, self.spec = net, spec
        self.device = resolve_device(device)
        self.net.to(self.device).eval()
        if self.device.type == "cuda":
            self.net.to(memory_format=torch.channels_last)
        self.amp = False  # set True for bfloat16 autocast on CUDA (see detector.device.amp_enabled)
        self.trust = None  # detector.trust.Trust: domain model + aggregate thresholds (None: unknown)

    # ------------------------------------------------------------ construction / persistence
    @classmethod
    def from_spec(cls, spec: DetectorSpec, device: str | torch.device = "cpu") -> "Detector":
        spec.validate("spec")
        return cls(NETWORKS.create(spec.architecture, **spec.arch_args), spec, device)

    def with_spec(self, **changes: Any) -> "Detector":
        d = Detector(self.net, replace(self.spec, **changes), self.device)
        d.amp, d.trust = self.amp, self.trust
        return d

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` then ``detector.json`` (each atomically) into ``directory``.

        The config is written last and is what makes the directory loadable, so an interrupted save
        never leaves an artifact that loads with mismatched parts."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        # Overwriting: remove the old config first, so a crash between the two writes leaves a
        # directory that refuses to load (no detector.json), never new weights under an old spec.
        (d / CONFIG).unlink(missing_ok=True)
        save_safetensors(self.net.state_dict(), d / WEIGHTS, metadata={"format": "unmask-detector"})
        spec = replace(self.spec, trust=None if self.trust is None else self.trust.section())
        if self.trust is not None:
            self.trust.save(d)
        write_json(d / CONFIG, spec.to_json())
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> "Detector":
        return load(directory, device)

    # ------------------------------------------------------------ the Python API (detector.api)
    def score(self, x: "ImageInput", *, batch_size: int = 64, out_of_domain: str = "flag") -> "Predictions":
        """Score a path, folder, PIL image, array, tensor, batch, or a list of these: one
        :class:`~detector.predictions.Prediction` per image, in order (see :mod:`detector.api`).

        >>> det.score(["a.png", Image.open("b.png"), np.zeros((28, 28), np.uint8)]).labels  # doctest: +SKIP
        ['real', 'fake', 'real']
        """
        from .api import score

        return score(self, x, batch_size=batch_size, out_of_domain=out_of_domain)

    def iter_scores(self, x: "ImageInput", *, batch_size: int = 64,
                    out_of_domain: str = "flag") -> Iterator["Prediction"]:
        """:meth:`score` as a stream: predictions come as each batch is scored; memory stays flat.

        >>> flagged = [p.source for p in det.iter_scores("photos/") if p.label == "fake"]  # doctest: +SKIP
        """
        from .api import iter_scores

        return iter_scores(self, x, batch_size=batch_size, out_of_domain=out_of_domain)

    # ------------------------------------------------------------ inference
    def preprocess(self, img: torch.Tensor, max_tiles: int | None = None
                   ) -> tuple[torch.Tensor, list[tuple[int, int]] | None]:
        """``(C, H, W)`` in [0, 1] -> model inputs ``(N, C, S, S)`` in [0, 1] (N = 1 unless tiling) and
        the tile corners (None unless tiling); see :func:`detector.preprocess.model_inputs`."""
        s = self.spec
        batch, corners, _ = model_inputs(img, s.input_size, s.channels, s.policy, max_tiles)
        return batch, corners

    def _inference_net(self) -> nn.Module:
        """The network to run inference with: on CPU, an eval-mode channels-last copy of ``self.net``
        (on CUDA the constructor already converts ``self.net`` itself to channels-last).

        oneDNN's CPU convolutions are ~1.5-3x faster with channels-last weights and activations
        (bench/NOTES-detector.md; logits agree with the plain network to ~1e-7, tested in
        tests/test_artifact.py). The copy is rebuilt whenever ``self.net`` is replaced or any of its
        parameters or buffers changes (tensor version counters), and ``self.net`` itself is never
        modified, so its ``state_dict`` and saving are unaffected. A net in training mode is used as is.
        """
        net = self.net
        if self.device.type != "cpu" or net.training:
            return net
        key = (id(net),) + tuple(t._version for t in net.parameters()) + tuple(t._version for t in net.buffers())
        cached = getattr(self, "_fast_net", None)
        if cached is None or cached[0] != key:
            import copy

            fast = copy.deepcopy(net).eval().to(memory_format=torch.channels_last)
            self._fast_net = cached = (key, fast)
        return cached[1]

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` in [0, 1] -> raw logits ``(B,)`` (before temperature)."""
        return self._run(x, False)

    @torch.inference_mode()
    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`logits` and the pooled penultimate features ``(B, D)`` of the same forward pass (None
        when the network cannot give them), what the domain guard measures."""
        return self._run(x, True)

    def _run(self, x: torch.Tensor, features: bool):
        x = normalize(x.to(self.device, torch.float32), self.spec.mean, self.spec.std)
        net = self._inference_net()
        if x.dim() == 4 and (net is not self.net or self.device.type == "cuda"):
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp):
            if not features:
                return net(x).float().cpu()
            if not hasattr(net, "forward_with_features"):
                return net(x).float().cpu(), None
            z, f = net.forward_with_features(x)
            return z.float().cpu(), f.float().cpu()

    def threshold_for(self, n: int, how: str | None = None) -> float:
        """The threshold on an image's aggregate score when it was cut into ``n`` tiles (aggregated by
        ``how``, default the artifact's): the artifact's for one input, else the aggregate's own at the
        same false-positive rate (:mod:`detector.tails`)."""
        tails = self.trust.tails if self.trust is not None else None
        if n <= 1 or tails is None:
            return float(self.spec.threshold)
        return tails.tiles(n, how or self.spec.tile_aggregate, self.spec.tile_topk)

    def score_batch(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` in [0, 1] -> calibrated probabilities of "fake" ``(B,)``."""
        return torch.sigmoid(self.logits(x) / self.spec.temperature)

    def score_image(self, img: torch.Tensor) -> float:
        """One decoded image of any size -> one calibrated score (tiles aggregated per the spec)."""
        batch, _ = self.preprocess(img)
        return self.aggregate(self.score_batch(batch))

    def aggregate(self, scores: torch.Tensor) -> float:
        return aggregate(scores, self.spec.tile_aggregate, self.spec.tile_topk)

    def label(self, score: float) -> str:
        return "fake" if score >= self.spec.threshold else "real"


def load(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Detector:
    """Rebuild a :class:`Detector` from ``directory``; raise :class:`ArtifactError` on any problem.

    >>> det = detector.load("runs/demo/detector")   # doctest: +SKIP
    >>> det.spec.threshold, det.spec.policy          # doctest: +SKIP
    (0.0383, 'resize')
    """
    d = Path(directory)
    if not d.is_dir():
        raise ArtifactError(f"{d}: not a detector directory (expected {CONFIG} and {WEIGHTS} inside)")
    cfg_p, w_p = d / CONFIG, d / WEIGHTS
    for p in (cfg_p, w_p):
        if not p.is_file():
            raise ArtifactError(f"{p}: missing file; a detector directory holds {CONFIG} and {WEIGHTS}")
    if cfg_p.stat().st_size > 1_000_000:
        raise ArtifactError(f"{cfg_p}: too large to be a detector config (over 1 MB)")
    try:
        obj = json.loads(cfg_p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ArtifactError(f"{cfg_p}: not valid JSON ({e})") from None
    except OSError as e:
        raise ArtifactError(f"{cfg_p}: cannot read ({e.strerror or e})") from None
    spec = DetectorSpec.from_json(obj, str(cfg_p))
    state = checked_weights(spec.architecture, spec.arch_args, cfg_p, w_p)
    net = NETWORKS.create(spec.architecture, **spec.arch_args)
    net.load_state_dict(state, strict=True)
    det = Detector(net, spec, device)
    from .trust import load_trust

    try:
        det.trust = load_trust(d, spec.trust, spec.temperature, read_safetensors)
    except ValueError as e:
        raise ArtifactError(str(e)) from None
    return det


def spec_for_network(net_name: str, arch_args: dict, input_size: int, channels: int,
                     mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.5,), **kw: Any) -> DetectorSpec:
    """Convenience constructor used by hardening and tests."""
    return DetectorSpec(architecture=net_name, arch_args=dict(arch_args), input_size=input_size, channels=channels,
                        mean=list(mean), std=list(std), **kw)
