"""``unmask serve``: a local detection service (HTTP API + web page) over one detector artifact.

Modules: :mod:`.config` (options, typed refusals, token and folder checks), :mod:`.uploads`
(streamed multipart under limits, decoding), :mod:`.engine` (THE scoring, equal to ``unmask scan``),
:mod:`.batching` (micro-batches), :mod:`.app` (routes), :mod:`.server` (start/stop), the page in
``static/``. Needs the ``serve`` extra (starlette, uvicorn, python-multipart).
"""
from __future__ import annotations

from .config import ServeConfig, ServeError

__all__ = ["ServeConfig", "ServeError"]
