"""unmask's detector: a real-vs-fake classifier that stands alone.

Imports neither ``gan`` nor ``eval``: an exported detector loads with this package alone.
"""
from __future__ import annotations

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
from .decode import IMAGE_EXTENSIONS, UnreadableImage, decode_bytes, read_image, to_channels
from .nets import NETWORKS, ConvDiscriminator, create_network
from .preprocess import POLICIES, fit, normalize, tiles
from .registry import Registry

__version__ = "0.1.0"

__all__ = [
    "__version__",
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
