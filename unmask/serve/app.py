"""The ASGI application of ``unmask serve``: routes, per-request limits, auth, logging, metrics.

Starlette routes over one :class:`Service` that owns the detector, the micro-batcher and the
decoding threads. A request's life: token check -> body streamed under the byte limits ->
images decoded and prepared on the decoding threads (never on the event loop) -> scored with
whatever else arrived together (:mod:`unmask.serve.batching`) -> one JSON row per image with a
scan row's fields. The whole request runs under ``time_limit_s`` (408 while the upload is still
arriving, 503 after), so a slow or hostile client holds only its own connection.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import torch
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from detector import __version__
from detector.artifact import Detector
from detector.decode import UnreadableImage, read_image_reduced
from detector.domain import ImageStats

from . import engine
from .batching import MicroBatcher
from .card import detector_card
from .config import ServeConfig, ServeError, check_token, resolve_allowed
from .metrics import Metrics
from .openapi import openapi
from .uploads import ByteBudget, Upload, decode_upload, read_json, read_uploads

__all__ = ["Service", "create_app", "STATIC"]

log = logging.getLogger("unmask.serve")
STATIC = Path(str(resources.files("unmask.serve") / "static"))
_PROTECTED = ("/v1/score", "/v1/score-path", "/v1/detector", "/metrics")


class Service:
    """The detector and everything that scores with it, shared by all requests."""

    def __init__(self, det: Detector, directory: str | Path, cfg: ServeConfig) -> None:
        self.det, self.cfg = det, cfg
        self.card = detector_card(det, directory, cfg.limits())
        self.metrics = Metrics()
        self.batcher = MicroBatcher(lambda items: engine.score_prepared(det, items, cfg.batch_inputs),
                                    cfg.batch_inputs, cfg.batch_wait_ms / 1000.0, self.metrics.batch)
        self.decoders = ThreadPoolExecutor(cfg.decode_workers, thread_name_prefix="unmask-decode")
        self.budget = ByteBudget(cfg.max_inflight_bytes)
        self.ready = False
        self.draining = False

    async def start(self) -> None:
        await self.batcher.start()
        s = self.det.spec
        warm = engine.prepare(self.det, torch.full((s.channels, s.input_size, s.input_size), 0.5), self.cfg.max_tiles)
        await self.batcher.score([warm])  # first forward pass (allocations, oneDNN plans) before ready
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.batcher.stop()
        self.decoders.shutdown(wait=True)

    # ------------------------------------------------------------------ one image
    def prepare_upload(self, up: Upload) -> engine.Prepared:
        """Runs on a decoding thread."""
        d = decode_upload(up, self.det.spec.channels, self.cfg.max_pixels)  # .image: (C, H, W)
        return engine.prepare(self.det, d.image, self.cfg.max_tiles, ImageStats(d.colour, d.width, d.height))

    def prepare_path(self, requested: str) -> engine.Prepared:
        """Runs on a decoding thread; the path was checked against the allowed folders."""
        path, _ = resolve_allowed(self.cfg.allow_dirs, requested)
        try:
            d = read_image_reduced(path, self.det.spec.channels, self.cfg.max_pixels, self.cfg.max_image_bytes)
        except UnreadableImage as e:
            raise ServeError(404 if not Path(path).exists() and not Path(path).is_symlink() else 422,
                             e.reason) from None
        return engine.prepare(self.det, d.image, self.cfg.max_tiles, ImageStats(d.colour, d.width, d.height))

    # ------------------------------------------------------------------ many images
    async def score(self, names: list[str], prepare, arg_of, heatmap: bool) -> tuple[int, dict]:
        """Prepare every image on the decoding threads, score the good ones in one batch, and build
        the rows; returns (HTTP status, body)."""
        loop = asyncio.get_running_loop()
        futs = [loop.run_in_executor(self.decoders, prepare, arg_of(i)) for i in range(len(names))]
        prepared = await asyncio.gather(*futs, return_exceptions=True)
        for i, p in enumerate(prepared):  # a bug must not take the service down: that image's row says so
            if isinstance(p, Exception) and not isinstance(p, ServeError):
                log.error("unexpected error preparing %r: %s: %s", names[i][:200], type(p).__name__, p)
                prepared[i] = ServeError(500, f"unexpected error: {type(p).__name__}: {p}"[:500])
        good = [p for p in prepared if isinstance(p, engine.Prepared)]
        scored = iter(await self.batcher.score(good) if good else [])
        rows = [self._row(n, p, None if isinstance(p, ServeError) else next(scored), heatmap)
                for n, p in zip(names, prepared)]
        for r in rows:
            self.metrics.image(r["label"])
        if good:
            return 200, {"results": rows}
        first = prepared[0]
        return first.status, {**first.body(), "results": rows}

    def _row(self, name: str, p, sc: engine.Scored | None, heatmap: bool) -> dict:
        thr = float(self.det.spec.threshold)
        if sc is None:
            return {"name": name, "score": None, "label": "error", "threshold": thr, "error": p.reason,
                    "status": p.status, "limit": p.limit, "policy": self.det.spec.policy, "n_tiles": 0,
                    "width": None, "height": None, "in_domain": None, "domain_score": None}
        row = {"name": name, "score": sc.score, "label": sc.label, "threshold": sc.threshold, "error": None,
               "status": 200, "limit": None, "policy": p.policy, "n_tiles": sc.n_tiles, "width": p.width,
               "height": p.height, "in_domain": sc.in_domain, "domain_score": sc.domain_score}
        if heatmap:
            row["heatmap"] = _heatmap(p, sc, self.det.spec.input_size, self.cfg.heatmap_max_tiles)
        return row


def _heatmap(p: engine.Prepared, sc: engine.Scored, size: int, max_tiles: int) -> dict:
    """Each tile's box in the decoded image's own pixels ``[x, y, w, h]`` and its score."""
    if p.corners is None or sc.tile_scores is None:
        return {"boxes": [[0, 0, p.width, p.height]], "scores": [sc.score]}
    if len(p.corners) > max_tiles:
        return {"boxes": [], "scores": [], "note": f"{len(p.corners)} tiles (over heatmap_max_tiles={max_tiles})"}
    fx, fy = p.width / p.grid_width, p.height / p.grid_height
    boxes = [[round(x * fx, 2), round(y * fy, 2), round(size * fx, 2), round(size * fy, 2)] for y, x in p.corners]
    return {"boxes": boxes, "scores": sc.tile_scores}


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes", "on")


async def _score_uploads(svc: Service, request: Request, phase: dict) -> tuple[int, dict]:
    ups = await read_uploads(request.headers.get("content-type"), request.headers.get("content-length"),
                             request.stream(), svc.cfg, svc.budget, phase["taken"])
    phase["name"], phase["images"] = "score", len(ups)
    return await svc.score([u.name for u in ups], svc.prepare_upload, lambda i: ups[i], _flag(request, "heatmap"))


async def _score_paths(svc: Service, request: Request, phase: dict) -> tuple[int, dict]:
    raw = await read_json(request.headers.get("content-length"), request.stream())
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ServeError(422, "body must be JSON: {\"paths\": [\"a.png\", ...]}") from None
    paths = body.get("paths") if isinstance(body, dict) else None
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise ServeError(422, "body must be JSON: {\"paths\": [\"a.png\", ...]} with at least one path")
    if len(paths) > svc.cfg.max_images:
        raise ServeError(413, f"{len(paths)} paths exceed the limit max_images={svc.cfg.max_images}",
                         limit="max_images")
    phase["name"], phase["images"] = "score", len(paths)
    return await svc.score(paths, svc.prepare_path, lambda i: paths[i], _flag(request, "heatmap"))


def _scoring_route(svc: Service, handler):
    async def endpoint(request: Request) -> Response:
        if not svc.ready:
            return JSONResponse({"error": "not ready", "status": 503, "limit": None}, 503)
        phase = {"name": "upload", "images": 0, "taken": [0]}
        try:
            status, body = await asyncio.wait_for(handler(svc, request, phase), svc.cfg.time_limit_s)
        except asyncio.TimeoutError:
            what = "upload" if phase["name"] == "upload" else "scoring"
            e = ServeError(408 if what == "upload" else 503,
                           f"{what} took longer than the limit time_limit_s={svc.cfg.time_limit_s}", "time_limit_s")
            status, body = e.status, e.body()
        except ServeError as e:
            status, body = e.status, e.body()
        finally:
            svc.budget.release(phase["taken"])
        request.state.images = phase["images"]
        return JSONResponse(body, status)
    return endpoint


class _Gate:
    """Outermost ASGI layer: bearer token on protected routes, one log line and metrics per request."""

    def __init__(self, app, svc: Service) -> None:
        self.app, self.svc = app, svc

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), [500]
        path = scope.get("path", "")
        scope.setdefault("state", {})

        async def send_(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.svc.metrics.in_flight += 1
        try:
            if path in _PROTECTED and scope.get("method") != "OPTIONS":  # CORS preflights carry no token
                headers = dict(scope.get("headers") or [])
                try:
                    check_token(self.svc.cfg.token, headers.get(b"authorization", b"").decode("latin-1"))
                except ServeError as e:
                    resp = JSONResponse(e.body(), e.status, headers={"WWW-Authenticate": "Bearer"})
                    return await resp(scope, receive, send_)
            await self.app(scope, receive, send_)
        finally:
            self.svc.metrics.in_flight -= 1
            dt = time.perf_counter() - t0
            route = path if path in _PROTECTED or path in ("/", "/healthz", "/readyz", "/v1/openapi.json") else "other"
            self.svc.metrics.request(route, status[0], dt)
            client = (scope.get("client") or ("-", 0))[0]
            images = scope["state"].get("images", 0)
            log.info("%s %s %s %d images=%d %.1fms", client, scope.get("method"), path[:200], status[0], images,
                     dt * 1000)


def create_app(svc: Service) -> Starlette:
    """The Starlette app over ``svc`` (its lifespan starts and stops the batcher)."""
    cfg = svc.cfg
    doc = openapi(__version__, cfg.limits())

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok = svc.ready and not svc.draining
        return JSONResponse({"ready": ok, "draining": svc.draining}, 200 if ok else 503)

    async def card(request: Request) -> Response:
        return JSONResponse(svc.card)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4")

    async def spec(request: Request) -> Response:
        return JSONResponse(doc)

    async def lifespan(app):
        await svc.start()
        yield
        await svc.stop()

    routes = [Route("/", index), Route("/healthz", healthz), Route("/readyz", readyz),
              Route("/metrics", metrics), Route("/v1/openapi.json", spec), Route("/v1/detector", card),
              Route("/v1/score", _scoring_route(svc, _score_uploads), methods=["POST"]),
              Route("/v1/score-path", _scoring_route(svc, _score_paths), methods=["POST"]),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    middleware = [Middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"],
                             allow_headers=["Authorization", "Content-Type"])] if cfg.cors_origins else []
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    return _Gate(app, svc)
