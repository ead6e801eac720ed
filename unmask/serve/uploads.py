"""Reading a request's images under the service's limits, without ever holding more than allowed.

The body is parsed as it streams in (python-multipart's incremental parser): a Content-Length over
``max_request_bytes`` is refused before one byte of the body is read, and a body without one
(chunked) is counted as it arrives and refused the moment it crosses the limit; each part is
counted against ``max_image_bytes`` and the number of parts against ``max_images``. Decoding is the
one decoder (:func:`detector.decode.decode_bytes`); a failure is answered 415 when the bytes are not
an image format we read, 422 otherwise (with the decoder's reason), 413/422 naming the limit hit.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import AsyncIterator

from PIL import Image, UnidentifiedImageError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from detector.decode import SUPPORTED_FORMATS, Decoded, UnreadableImage, decode_bytes_full

from .config import ServeConfig, ServeError

__all__ = ["Upload", "ByteBudget", "read_uploads", "read_json", "decode_upload", "status_for_undecodable"]

MAX_JSON_BYTES = 64 * 1024


@dataclass
class Upload:
    """One uploaded file: its (printable) name and bytes."""

    name: str
    data: bytes


class ByteBudget:
    """Upload bytes held by all requests together (``max_inflight_bytes``): past it, a request is
    answered 503 instead of the server growing without bound under many large uploads at once.
    Used from the event loop only, so no lock; each request releases what it took when it ends."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    def take(self, n: int, taken: list[int]) -> None:
        if self.held + n > self.limit:
            raise ServeError(503, f"server busy: uploads in flight exceed the limit max_inflight_bytes={self.limit}; "
                                  "retry shortly", limit="max_inflight_bytes")
        self.held += n
        taken[0] += n

    def release(self, taken: list[int]) -> None:
        self.held -= taken[0]
        taken[0] = 0


@dataclass
class _State:
    parts: list = field(default_factory=list)
    headers: list = field(default_factory=list)
    hname: bytearray = field(default_factory=bytearray)
    hvalue: bytearray = field(default_factory=bytearray)
    current: bytearray | None = None
    is_file: bool = False
    name: str = ""
    done: bool = False


def _limit(status: int, name: str, value: int, what: str) -> ServeError:
    return ServeError(status, f"{what} exceeds the limit {name}={value}", limit=name)


def _callbacks(st: _State, cfg: ServeConfig) -> dict:
    def on_part_begin() -> None:
        st.headers, st.current, st.is_file, st.name = [], None, False, ""

    def on_header_field(data: bytes, start: int, end: int) -> None:
        st.hname += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        st.hvalue += data[start:end]

    def on_header_end() -> None:
        st.headers.append((bytes(st.hname).lower(), bytes(st.hvalue)))
        st.hname.clear()
        st.hvalue.clear()

    def on_headers_finished() -> None:
        disp = dict(st.headers).get(b"content-disposition", b"")
        _, params = parse_options_header(disp)
        if b"filename" in params:  # a file part is an image; plain form fields are ignored
            st.is_file = True
            st.name = params[b"filename"].decode("utf-8", "backslashreplace")[:255] or "upload"
            if len(st.parts) + 1 > cfg.max_images:
                raise _limit(413, "max_images", cfg.max_images, "number of images in the request")
            st.current = bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if st.current is not None:
            if len(st.current) + (end - start) > cfg.max_image_bytes:
                raise _limit(413, "max_image_bytes", cfg.max_image_bytes, f"image {st.name!r:.80} size")
            st.current += data[start:end]

    def on_part_end() -> None:
        if st.current is not None:
            st.parts.append(Upload(st.name, bytes(st.current)))
        st.current = None

    def on_end() -> None:
        st.done = True

    return {"on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
            "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end}


def _boundary(content_type: str | None) -> bytes:
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise ServeError(415, "upload images as multipart/form-data (one file part per image)", limit="content_type")
    return params[b"boundary"]


def _check_length(content_length: str | None, limit: int) -> None:
    """Refuse by the announced length, before any of the body is read."""
    if content_length is None:
        return
    try:
        n = int(content_length)
    except ValueError:
        raise ServeError(400, "Content-Length is not a number") from None
    if n > limit:
        raise _limit(413, "max_request_bytes", limit, f"request body ({n} bytes)")


async def read_uploads(content_type: str | None, content_length: str | None, stream: AsyncIterator[bytes],
                       cfg: ServeConfig, budget: ByteBudget, taken: list[int]) -> list[Upload]:
    """The file parts of a multipart body, streamed and counted (into ``budget``, the bytes recorded
    in ``taken`` for the caller to release); see the module docstring."""
    boundary = _boundary(content_type)
    _check_length(content_length, cfg.max_request_bytes)
    st = _State()
    try:
        parser = MultipartParser(boundary, _callbacks(st, cfg))
    except MultipartParseError as e:
        raise ServeError(400, f"bad multipart boundary: {e}") from None
    total = 0
    try:
        async for chunk in stream:
            total += len(chunk)
            if total > cfg.max_request_bytes:
                raise _limit(413, "max_request_bytes", cfg.max_request_bytes, "request body")
            budget.take(len(chunk), taken)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        raise ServeError(400, f"malformed multipart body: {e}") from None
    if not st.done:
        raise ServeError(400, "malformed multipart body: it ends before the closing boundary")
    if not st.parts:
        raise ServeError(422, "no image in the request (send at least one file part)", limit="max_images")
    return st.parts


async def read_json(content_length: str | None, stream: AsyncIterator[bytes]) -> bytes:
    """A small JSON body (at most 64 KiB), counted as it streams."""
    _check_length(content_length, MAX_JSON_BYTES)
    buf = bytearray()
    async for chunk in stream:
        buf += chunk
        if len(buf) > MAX_JSON_BYTES:
            raise _limit(413, "max_json_bytes", MAX_JSON_BYTES, "JSON body")
    return bytes(buf)


def status_for_undecodable(data: bytes, max_pixels: int) -> tuple[int, str | None]:
    """The HTTP status (and limit) for bytes the decoder refused: 415 when they are not an image
    format we read, 422 with ``max_pixels`` when the header declares too many pixels, else 422."""
    if not data:
        return 422, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                if im.format not in SUPPORTED_FORMATS:
                    return 415, "format"
                return (422, "max_pixels") if im.size[0] * im.size[1] > max_pixels else (422, None)
    except Image.DecompressionBombError:
        return 422, "max_pixels"
    except UnidentifiedImageError:
        return 415, "format"
    except Exception:  # noqa: BLE001 - a hostile header: a recognised format that cannot be read
        return 422, None


def decode_upload(up: Upload, channels: int, max_pixels: int) -> Decoded:
    """The decoded upload (``.image``: ``(channels, H, W)`` in [0, 1]), or a :class:`ServeError` with
    the decoder's reason."""
    try:
        return decode_bytes_full(up.data, channels=channels, max_pixels=max_pixels, name=up.name)
    except UnreadableImage as e:
        status, limit = status_for_undecodable(up.data, max_pixels)
        suffix = f" (limit max_pixels={max_pixels})" if limit == "max_pixels" else ""
        raise ServeError(status, f"{e.reason}{suffix}", limit=limit) from None
