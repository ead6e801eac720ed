"""Export a detector to ONNX (dynamic batch) or a ``torch.export`` program (.pt2), with a parity check.

The exported graph contains the normalisation, the network and the calibration, so its contract
is simple and independent of unmask:

* input ``image``: float32 ``(B, C, S, S)`` with values in [0, 1] (C and S from ``detector.json``:
  ``channels`` and ``input_size``; RGB channel order; grey = ITU-R 601 luma), B any size >= 1;
* outputs ``score``: float32 ``(B,)`` calibrated probability of "fake" (compare with the threshold),
  and ``logit``: float32 ``(B,)`` the calibrated logit (raw logit / temperature).

Resizing or tiling an image of another size is *not* in the graph (it depends on the image):
apply the artifact's policy first (``docs/detector.md`` gives the exact recipe). A JSON sidecar
``FILE.json`` beside the export repeats the contract, threshold and policy.
(TorchScript is deprecated in this torch; ``torch.export`` replaces it.)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .artifact import Detector
from .atomic import write_bytes, write_json

__all__ = ["FORMATS", "ExportedDetector", "ExportResult", "export", "parity_inputs", "run_onnx", "run_pt2"]

FORMATS = ("onnx", "pt2")


class ExportedDetector(nn.Module):
    """Normalisation + network + temperature + sigmoid in one module: ``(B, C, S, S)`` [0, 1] -> score, logit."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        s = detector.spec
        self.net = detector.net
        c = s.channels
        mean = torch.as_tensor(s.mean, dtype=torch.float32).reshape(-1).expand(c).clone()
        std = torch.as_tensor(s.std, dtype=torch.float32).reshape(-1).expand(c).clone()
        self.register_buffer("mean", mean.view(1, c, 1, 1))
        self.register_buffer("std", std.view(1, c, 1, 1))
        self.register_buffer("inv_temperature", torch.tensor(1.0 / s.temperature, dtype=torch.float32))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.net((image - self.mean) / self.std) * self.inv_temperature  # (B,)
        return torch.sigmoid(logit), logit


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float       # on the calibrated score, vs the native detector
    max_abs_diff_logit: float
    n_inputs: int


def parity_inputs(detector: Detector, real: torch.Tensor | None = None, n: int = 32, seed: int = 0) -> torch.Tensor:
    """Inputs for the parity check: the given real images (fitted to the model), else the embedded
    Fashion-MNIST held-out images (fitted to the model's size and channels), plus a few random ones."""
    s = detector.spec
    if real is None:
        from .data import TensorSource, load_fashion_mnist

        d = load_fashion_mnist("test", variant="embedded")
        real = TensorSource(d.images[:n], None, s.input_size, s.channels, policy="resize").images
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand((4, s.channels, s.input_size, s.input_size), generator=g)
    return torch.cat([real[:n].float(), noise])


def run_onnx(path: str | os.PathLike, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    score, logit = sess.run(["score", "logit"], {"image": x.numpy().astype("float32")})
    return torch.from_numpy(score), torch.from_numpy(logit)


def run_pt2(path: str | os.PathLike, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    prog = torch.export.load(str(path))
    with torch.no_grad():
        score, logit = prog.module()(x)
    return score, logit


def export(detector: Detector, out: str | os.PathLike, format: str = "onnx", real: torch.Tensor | None = None,
           tolerance: float = 1e-4, opset: int = 18) -> ExportResult:
    """Write ``detector`` to ``out`` as ``format`` and check parity against the native detector on
    real inputs; raises ``RuntimeError`` when the max abs difference exceeds ``tolerance``."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {FORMATS}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    det = Detector(detector.net, detector.spec, "cpu")
    module = ExportedDetector(det).eval()
    s = det.spec
    example = torch.rand(4, s.channels, s.input_size, s.input_size)
    batch = torch.export.Dim("batch", min=1, max=65536)
    tmp = out.with_name(f".{out.stem}.export-tmp{out.suffix}")
    try:
        with torch.no_grad():
            if format == "onnx":
                prog = torch.onnx.export(module, (example,), dynamo=True, input_names=["image"],
                                         output_names=["score", "logit"], dynamic_shapes={"image": {0: batch}},
                                         opset_version=opset, verbose=False)
                prog.optimize()
                prog.save(str(tmp))
                _stamp_onnx(tmp, det)
            else:
                ep = torch.export.export(module, (example,), dynamic_shapes={"image": {0: batch}})
                torch.export.save(ep, str(tmp))
        write_bytes(out, tmp.read_bytes())
    finally:
        if tmp.exists():
            tmp.unlink()
    x = parity_inputs(det, real)
    ref_logit = det.logits(x) / s.temperature
    ref_score = torch.sigmoid(ref_logit)  # = det.score_batch(x), without a second forward pass
    got_score, got_logit = (run_onnx if format == "onnx" else run_pt2)(out, x)
    diff = float((got_score.float() - ref_score.float()).abs().max())
    diff_l = float((got_logit.float() - ref_logit.float()).abs().max())
    write_json(out.with_name(out.name + ".json"), sidecar(det, format, diff, len(x)))
    if not diff <= tolerance:
        raise RuntimeError(f"{out}: exported model disagrees with the native detector: max |score diff| "
                           f"{diff:.3g} > {tolerance:g}")
    return ExportResult(out, format, diff, diff_l, len(x))


def sidecar(det: Detector, format: str, diff: float, n: int) -> dict:
    s = det.spec
    return {
        "format": format,
        "input": {"name": "image", "dtype": "float32", "shape": ["B", s.channels, s.input_size, s.input_size],
                  "range": [0.0, 1.0], "channel_order": "RGB" if s.channels == 3 else "grey (ITU-R 601 luma)",
                  "normalisation_inside_graph": {"mean": s.mean, "std": s.std}},
        "outputs": {"score": "(B,) calibrated probability of fake", "logit": "(B,) raw logit / temperature"},
        "threshold": s.threshold, "threshold_rule": s.threshold_rule, "temperature": s.temperature,
        "policy": s.policy, "tile_aggregate": s.tile_aggregate, "tile_topk": s.tile_topk,
        "architecture": s.architecture, "unmask_version": s.unmask_version,
        "parity": {"max_abs_diff_score": diff, "n_inputs": n},
    }


def _stamp_onnx(path: Path, det: Detector) -> None:
    import json

    import onnx

    model = onnx.load(str(path))
    s = det.spec
    meta = {"unmask.threshold": str(s.threshold), "unmask.policy": s.policy, "unmask.input_size": str(s.input_size),
            "unmask.channels": str(s.channels), "unmask.input_range": "[0, 1]",
            "unmask.temperature": str(s.temperature), "unmask.spec": json.dumps({k: v for k, v in s.to_json().items()
                                                                                 if k != "provenance"})}
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
