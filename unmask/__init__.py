"""unmask: deepfake detection built on a hardened GAN discriminator."""
from __future__ import annotations

from detector import __version__

__all__ = ["__version__"]
