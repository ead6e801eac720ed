"""unmask's detector: a real-vs-fake classifier that stands alone.

``import detector; det = detector.load(DIR); det.score(x)`` is the runtime: ``x`` is a path, a
folder, a PIL image, a NumPy array, a torch tensor, a batch or a list of them, and the result is one
typed :class:`Prediction` per image (docs/python.md). ``__all__`` is that runtime: loading, scoring
and its results, decoding, the folder walker and the scoring engine (export: ``detector.export.export``,
imported on first use, like ``detector.ExportResult``). Training
lives in its own namespace, ``detector.train`` (hardening, retraining, calibration); ``detector.scan``,
``detector.video``, ``detector.data`` and ``detector.export`` are imported when used.

The runtime imports neither ``gan`` nor ``eval``, and loads neither OpenCV, scikit-learn, matplotlib
nor the training stack. Names that used to be re-exported here (the network registry, the
preprocessing functions, the dataset helpers) still resolve, for existing code, but are not part of
the public surface.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"  # before the submodules: artifact.py stamps it into detector.json

from .artifact import ArtifactError, Detector, DetectorSpec, load
from .decode import IMAGE_EXTENSIONS, UnreadableImage, decode_bytes, from_pil, read_image
from .device import resolve_device
from .files import list_files
from .predictions import Prediction, Predictions
from .scoring import ImageScore, Scorer, score_images

__all__ = [
    "__version__",
    # load and score (docs/python.md)
    "load",
    "Detector",
    "DetectorSpec",
    "ArtifactError",
    "Prediction",
    "Predictions",
    # decoding
    "read_image",
    "decode_bytes",
    "from_pil",
    "UnreadableImage",
    "IMAGE_EXTENSIONS",
    # folders, devices, the scoring engine
    "list_files",
    "resolve_device",
    "Scorer",
    "ImageScore",
    "score_images",
]

# Names outside the public surface that older code imports from here: resolved on first use.
_LAZY = {
    # runtime helpers (their modules are loaded already)
    "AGGREGATES": "artifact", "aggregate": "artifact", "display_path": "decode", "to_channels": "decode",
    "FAKE_DIRS": "files", "REAL_DIRS": "files", "VIDEO_EXTENSIONS": "files", "folder_label": "files",
    "NETWORKS": "nets", "ConvDiscriminator": "nets", "create_network": "nets", "POLICIES": "preprocess",
    "fit": "preprocess", "model_inputs": "preprocess", "normalize": "preprocess", "tiles": "preprocess",
    "Registry": "registry",
    # modules that are not part of the runtime
    "FASHION_MNIST_CLASSES": "data", "FolderSource": "data", "ImageSource": "data", "LabelledImages": "data",
    "TensorSource": "data", "list_images": "data", "load_fashion_mnist": "data", "open_source": "data",
    "ExportResult": "export", "ScanConfig": "scan", "ScanResult": "scan",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'detector' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
