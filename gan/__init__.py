"""unmask's adversary: generators, losses, the GAN trainer and its health monitor."""
from __future__ import annotations

__all__: list[str] = []
