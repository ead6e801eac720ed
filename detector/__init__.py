"""unmask's detector: a real-vs-fake classifier that stands alone.

Imports neither ``gan`` nor ``eval``: an exported detector loads with this package alone.
"""
from __future__ import annotations

__version__ = "0.1.0"  # before the submodules: artifact.py stamps it into detector.json

from .artifact import AGGREGATES, ArtifactError, Detector, DetectorSpec, aggregate, load
from .device import resolve_device
from .data import (
    FASHION_MNIST_CLASSES,
    FolderSource,
    ImageSource,
    LabelledImages,
    TensorSource,
    list_images,
    load_fashion_mnist,
    open_source,
)
from .decode import IMAGE_EXTENSIONS, UnreadableImage, decode_bytes, display_path, read_image, to_channels
from .nets import NETWORKS, ConvDiscriminator, create_network
from .preprocess import POLICIES, fit, normalize, tiles
from .registry import Registry



__all__ = [
    "__version__",
    "AGGREGATES",
    "ArtifactError",
    "Detector",
    "DetectorSpec",
    "aggregate",
    "load",
    "resolve_device",
    "FASHION_MNIST_CLASSES",
    "FolderSource",
    "ImageSource",
    "LabelledImages",
    "TensorSource",
    "list_images",
    "load_fashion_mnist",
    "open_source",
    "IMAGE_EXTENSIONS",
    "UnreadableImage",
    "decode_bytes",
    "display_path",
    "read_image",
    "to_channels",
    "NETWORKS",
    "ConvDiscriminator",
    "create_network",
    "POLICIES",
    "fit",
    "normalize",
    "tiles",
    "Registry",
]

# scanning and export (the detector issue). Only the classes: the functions share their modules'
# names (detector.scan.scan, ...), which stay modules. The training stack (detector.train) is not
# imported here: loading and running an artifact does not need it.
from .export import ExportResult  # noqa: E402
from .scan import ScanConfig, ScanResult  # noqa: E402

__all__ += ["ExportResult", "ScanConfig", "ScanResult"]
