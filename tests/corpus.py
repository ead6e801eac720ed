"""Builders of bad (and good) input files shared by the scan, video and reliability tests.

Everything is generated at test time; no binary test data is committed.
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
from PIL import Image

__all__ = ["bomb_png", "enc", "header_only_avi", "patch_avi_count", "png_bytes", "save_pngs", "write_video",
           "zero_frame_video"]


def enc(img: Image.Image, fmt: str, **kw) -> bytes:
    """``img`` encoded as ``fmt`` (a Pillow format name), in memory."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    return enc(img, "PNG")


def save_pngs(folder: Path, images, name: str = "{i}.png") -> list[Path]:
    """Each ``(C, H, W)`` image in [0, 1] saved as ``folder / name.format(i=i)``; returns the paths."""
    from detector.imageio import save_png

    paths = [Path(folder) / name.format(i=i) for i in range(len(images))]
    for img, p in zip(images, paths):
        save_png(img, p)
    return paths


def bomb_png(w: int = 100_000, h: int = 100_000) -> bytes:
    """A tiny valid-looking PNG whose header claims enormous dimensions."""
    data = bytearray(png_bytes(Image.new("L", (1, 1))))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def write_video(path: Path, frames, fps: float = 10.0, fourcc: str = "MJPG") -> Path:
    """Frames (grey (H, W) or BGR (H, W, 3) uint8) written with OpenCV."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else f)
    vw.release()
    return path


def zero_frame_video(path: Path, w: int = 28, h: int = 28, fps: float = 10.0, fourcc: str = "MJPG") -> Path:
    """A video file OpenCV wrote with no frames at all."""
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h)).release()
    return path


def header_only_avi(src: Path, dst: Path) -> Path:
    """``src`` cut right after its ``movi`` list tag: the header promises frames, none follow."""
    d = Path(src).read_bytes()
    dst.write_bytes(d[: d.find(b"movi") + 4])
    return dst


def patch_avi_count(src: Path, dst: Path, count: int) -> Path:
    """Rewrite the frame count in the AVI main header (avih) and the video stream header (strh)."""
    d = bytearray(Path(src).read_bytes())
    assert d[:4] == b"RIFF" and d[24:28] == b"avih"
    d[48:52] = struct.pack("<I", count)            # avih.dwTotalFrames
    i = d.find(b"strh")
    d[i + 8 + 32:i + 8 + 36] = struct.pack("<I", count)  # strh.dwLength
    dst.write_bytes(bytes(d))
    return dst
