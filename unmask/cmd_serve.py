"""``unmask serve``: score images over HTTP (API + web page) with one detector artifact."""
from __future__ import annotations

from pathlib import Path

import click

from .options import EXIT_USAGE, cap_threads

_MB = 1024 * 1024


@click.command()
@click.option("--detector", "detector_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="Detector directory (detector.json + model.safetensors).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs --token or --insecure-no-token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--token", envvar="UNMASK_SERVE_TOKEN", default=None,
              help="Bearer token required on /v1/* and /metrics (or set UNMASK_SERVE_TOKEN).")
@click.option("--insecure-no-token", is_flag=True, help="Allow binding off loopback without a token.")
@click.option("--allow-dir", "allow_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folder whose images POST /v1/score-path may read (repeatable; nothing outside it).")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="Origin allowed to call the API from a browser (repeatable; CORS is off by default).")
@click.option("--max-request-mb", type=click.FloatRange(0, min_open=True), default=32, show_default=True)
@click.option("--max-image-mb", type=click.FloatRange(0, min_open=True), default=16, show_default=True)
@click.option("--max-pixels", type=click.IntRange(1), default=40_000_000, show_default=True)
@click.option("--max-images", type=click.IntRange(1), default=32, show_default=True, help="Images per request.")
@click.option("--max-inflight-mb", type=click.FloatRange(0, min_open=True), default=512, show_default=True,
              help="Upload bytes held by all requests together; past it a request gets 503 (memory bound).")
@click.option("--time-limit", "time_limit_s", type=click.FloatRange(0, min_open=True), default=30.0,
              show_default=True, help="Seconds per request, upload included.")
@click.option("--batch-wait-ms", type=click.FloatRange(0), default=5.0, show_default=True,
              help="How long a request waits for others to share its forward pass.")
@click.option("--decode-workers", type=click.IntRange(1), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None, help="Torch CPU threads (default: all cores).")
def serve(detector_dir: Path, host: str, port: int, token: str | None, insecure_no_token: bool, allow_dirs,
          cors_origins, max_request_mb: float, max_image_mb: float, max_pixels: int, max_images: int,
          max_inflight_mb: float, time_limit_s: float, batch_wait_ms: float, decode_workers: int,
          threads: int | None) -> None:
    """Serve a detector over HTTP: an API (/v1/, OpenAPI at /v1/openapi.json) and a web page at /.

    Scores equal `unmask scan` on the same files. Logs one line per request; SIGTERM stops
    taking requests, lets in-flight ones finish, then exits.

    \b
    Example:
      unmask serve --detector runs/demo/detector
      curl -F image=@photo.jpg http://127.0.0.1:8765/v1/score
    """
    import os

    from detector.artifact import ArtifactError, load

    try:
        from unmask.serve import ServeConfig
        from unmask.serve.server import serve as run_server
    except ModuleNotFoundError as e:
        raise click.UsageError(f"unmask serve needs the 'serve' extra ({e.name} is missing): "
                               "pip install 'unmask[serve]'") from None
    try:
        cfg = ServeConfig(host=host, port=port, token=token or None, insecure_no_token=insecure_no_token,
                          allow_dirs=tuple(os.path.abspath(d) for d in allow_dirs), cors_origins=tuple(cors_origins),
                          max_request_bytes=int(max_request_mb * _MB), max_image_bytes=int(max_image_mb * _MB),
                          max_pixels=max_pixels, max_images=max_images, time_limit_s=time_limit_s,
                          max_inflight_bytes=int(max_inflight_mb * _MB),
                          batch_wait_ms=batch_wait_ms, decode_workers=decode_workers)
    except ValueError as e:  # an unsafe or impossible combination of options
        click.echo(f"error: {e}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    cap_threads(threads or os.cpu_count() or 1)
    try:
        det = load(detector_dir)
    except ArtifactError as e:
        raise click.BadParameter(str(e), param_hint="--detector") from None
    run_server(det, detector_dir, cfg, echo=lambda m: click.echo(m, err=True))
