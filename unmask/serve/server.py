"""Starting and stopping the service: load the detector, print what is served, run uvicorn.

uvicorn's own SIGTERM/SIGINT handling stops accepting connections and lets in-flight requests
finish (bounded by ``timeout_graceful_shutdown``); before that, ``/readyz`` turns 503 so a load
balancer stops sending work, and after it the batcher finishes what is queued.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path

from detector.artifact import Detector

from .app import Service, create_app
from .config import ServeConfig, is_loopback

__all__ = ["serve", "banner"]


def banner(svc: Service, cfg: ServeConfig, url: str) -> str:
    c = svc.card
    lines = [f"unmask serve: {url}  (API {url}v1/  OpenAPI {url}v1/openapi.json)",
             f"  detector: {c['name']} ({c['architecture']}, {c['input_size']}px x{c['channels']}, policy "
             f"{c['policy']}, threshold {c['threshold']:.6g}; weights sha256 "
             f"{str(c['sha256']['model.safetensors'])[:12]})",
             "  limits: " + ", ".join(f"{k}={v}" for k, v in cfg.limits().items()),
             f"  token: {'required' if cfg.token else 'none'}; CORS: {', '.join(cfg.cors_origins) or 'off'}; "
             f"allowed folders: {', '.join(cfg.allow_dirs) or 'none'}"]
    if not cfg.token and not is_loopback(cfg.host):
        lines.append("  WARNING: listening off loopback without a token (--insecure-no-token)")
    return "\n".join(lines)


def serve(det: Detector, directory: str | Path, cfg: ServeConfig, echo=print) -> None:
    """Run the service until SIGTERM/SIGINT; returns after a clean shutdown."""
    import uvicorn

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    log = logging.getLogger("unmask.serve")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False

    svc = Service(det, directory, cfg)
    app = create_app(svc)

    class _Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:  # readiness drops the moment shutdown begins
            svc.draining = True
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            """uvicorn's, minus re-raising the signal afterwards: a clean shutdown exits 0."""
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            old = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in old.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=int(cfg.time_limit_s) + 5, server_header=False,
                            limit_concurrency=None, timeout_keep_alive=5)
    server = _Server(config)
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    echo(banner(svc, cfg, f"http://{host}:{cfg.port}/"))
    server.run()
    echo("unmask serve: stopped")
