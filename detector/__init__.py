"""unmask's detector: a real-vs-fake classifier that stands alone.

``import detector; d = detector.load(DIR); d.score_image(img)`` is the runtime: the network, the
artifact, decoding, preprocessing, the one folder walker and the one scoring engine. It imports
neither ``gan`` nor ``eval``, and loads neither OpenCV, scikit-learn, matplotlib nor the training
stack (``detector.train``); ``detector.scan``, ``detector.video``, ``detector.data`` and
``detector.export`` are imported when used (the names below that live there load them lazily).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"  # before the submodules: artifact.py stamps it into detector.json

from .artifact import AGGREGATES, ArtifactError, Detector, DetectorSpec, aggregate, load
from .decode import IMAGE_EXTENSIONS, UnreadableImage, decode_bytes, display_path, read_image, to_channels
from .device import resolve_device
from .files import FAKE_DIRS, REAL_DIRS, VIDEO_EXTENSIONS, folder_label, list_files
from .nets import NETWORKS, ConvDiscriminator, create_network
from .preprocess import POLICIES, fit, model_inputs, normalize, tiles
from .registry import Registry
from .scoring import ImageScore, Scorer, score_images

__all__ = [
    "__version__",
    "AGGREGATES",
    "ArtifactError",
    "Detector",
    "DetectorSpec",
    "aggregate",
    "load",
    "IMAGE_EXTENSIONS",
    "UnreadableImage",
    "decode_bytes",
    "display_path",
    "read_image",
    "to_channels",
    "resolve_device",
    "FAKE_DIRS",
    "REAL_DIRS",
    "VIDEO_EXTENSIONS",
    "folder_label",
    "list_files",
    "NETWORKS",
    "ConvDiscriminator",
    "create_network",
    "POLICIES",
    "fit",
    "model_inputs",
    "normalize",
    "tiles",
    "Registry",
    "ImageScore",
    "Scorer",
    "score_images",
]

# Old top-level names whose modules are not part of the runtime: imported on first use.
_LAZY = {
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
