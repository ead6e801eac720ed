"""What ``unmask serve`` is allowed to do: one frozen config, the typed refusal, and the checks
(bearer token, allowed folders, loopback) that the app applies before any work is done.

Every refusal is a :class:`ServeError` carrying the HTTP status and, where a limit was hit, the
limit's name and value, so a client reads *which* limit it crossed ("max_request_bytes=...") and
tests assert on ``status``/``limit``, never on message text.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass

__all__ = ["ServeConfig", "ServeError", "is_loopback", "check_token", "resolve_allowed"]


@dataclass(frozen=True)
class ServeConfig:
    """Options of ``unmask serve`` (each CLI option maps onto one field)."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None                 # bearer token required on /v1/* and /metrics
    insecure_no_token: bool = False          # allow binding off loopback without a token
    allow_dirs: tuple[str, ...] = ()         # folders whose images /v1/score-path may read
    cors_origins: tuple[str, ...] = ()       # CORS off unless origins are named
    max_request_bytes: int = 32 * 1024 * 1024
    max_image_bytes: int = 16 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_images: int = 32                     # images per request
    max_tiles: int = 1024                    # as `unmask scan`: huge images scale down to fit
    max_inflight_bytes: int = 512 * 1024 * 1024  # upload bytes held by all requests together (else 503)
    time_limit_s: float = 30.0               # per request, upload included
    batch_wait_ms: float = 5.0               # how long the first request of a batch waits for company
    batch_inputs: int = 2048                 # model inputs per forward pass (scan's forward_chunk)
    decode_workers: int = 2                  # threads decoding uploads off the event loop
    heatmap_max_tiles: int = 4096            # per-tile scores are returned up to this many tiles

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_image_bytes", "max_pixels", "max_images", "max_tiles",
                     "max_inflight_bytes", "batch_inputs", "decode_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not self.time_limit_s > 0 or self.batch_wait_ms < 0:
            raise ValueError("time_limit_s must be > 0 and batch_wait_ms >= 0")
        if not is_loopback(self.host) and not self.token and not self.insecure_no_token:
            raise ValueError(f"binding to {self.host} (not loopback) needs --token, or --insecure-no-token to "
                             "serve without one")

    def limits(self) -> dict:
        """The limits a client may hit, as the page, the card and the start banner show them."""
        return {k: getattr(self, k) for k in ("max_request_bytes", "max_image_bytes", "max_pixels", "max_images",
                                              "max_tiles", "max_inflight_bytes", "time_limit_s")}


class ServeError(Exception):
    """A request the service refuses: HTTP ``status``, a ``reason`` for the client, the ``limit`` hit."""

    def __init__(self, status: int, reason: str, limit: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.limit = status, reason, limit

    def body(self) -> dict:
        return {"error": self.reason, "status": self.status, "limit": self.limit}


def is_loopback(host: str) -> bool:
    """``localhost`` or an address in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(expected: str | None, authorization: str | None) -> None:
    """Refuse (401) unless ``Authorization: Bearer <expected>``; compared in constant time."""
    if not expected:
        return
    given = b""
    if authorization and authorization[:7].lower() == "bearer ":
        given = authorization[7:].strip().encode("utf-8", "surrogateescape")
    # compare_digest's time does not depend on where the bytes differ (nor on the secret's content)
    if not hmac.compare_digest(given, expected.encode("utf-8")):
        raise ServeError(401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')", limit="token")


def resolve_allowed(allow_dirs: tuple[str, ...], requested: str) -> tuple[str, str]:
    """``requested`` (absolute, or relative to the first allowed folder) -> ``(path to read, shown name)``.

    The fully resolved path (every symbolic link followed, ``..`` collapsed) must lie inside one of
    the allowed folders' resolved paths, otherwise 403: neither ``..`` nor a symbolic link pointing
    outside escapes. A link that leads nowhere (dangling, a loop) is returned as given, so the
    decoder names the problem without reading anything."""
    if not allow_dirs:
        raise ServeError(403, "reading files on the server is off (start with --allow-dir DIR)", limit="allow_dir")
    if not isinstance(requested, str) or not requested or "\x00" in requested or len(requested) > 4096:
        raise ServeError(422, "path must be a non-empty string without NUL characters (at most 4096)")
    roots = [os.path.realpath(d) for d in allow_dirs]
    p = requested if os.path.isabs(requested) else os.path.join(roots[0], requested)
    real = os.path.realpath(p)
    if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        raise ServeError(403, f"path {requested!r:.200} is outside the allowed folder(s)", limit="allow_dir")
    if os.path.islink(p) and not os.path.exists(p):  # dangling or a loop: let the decoder say which
        return p, requested
    return real, requested

