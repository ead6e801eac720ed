"""Pictures of a video's verdict: the score timeline (matplotlib) and a frame with its regions drawn (OpenCV)."""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from .score import FrameResult

__all__ = ["plot_timeline", "draw_frame"]


def plot_timeline(times: Sequence[float], scores: Sequence[float], threshold: float, path: str | os.PathLike,
                  title: str = "", no_face_times: Sequence[float] = ()) -> None:
    """Score against time with the threshold line; flagged frames in red (PNG, written atomically)."""
    from ..figures import figure_png, pyplot

    t, s = np.asarray(times, float), np.asarray(scores, float)
    fig, ax = pyplot().subplots(figsize=(8, 3), dpi=100)
    if len(t):
        ax.plot(t, s, "-", color="0.6", lw=1, zorder=1)
        flag = s >= threshold
        ax.scatter(t[~flag], s[~flag], s=14, color="tab:blue", label="real", zorder=2)
        ax.scatter(t[flag], s[flag], s=14, color="tab:red", label="flagged fake", zorder=3)
    if len(no_face_times):
        ax.scatter(no_face_times, np.zeros(len(no_face_times)) - 0.04, marker="|", color="0.3", s=40,
                   label="no face", zorder=2)
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set_ylim(-0.08, 1.3)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(fake)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7, ncol=4, framealpha=0.8)
    ax.grid(alpha=0.3)
    figure_png(fig, path)


def draw_frame(bgr: np.ndarray, result: FrameResult, threshold: float, faces: bool, min_side: int = 240) -> np.ndarray:
    """A copy of the frame with face boxes (or the tile heatmap) and scores drawn on it.

    Frames smaller than ``min_side`` are enlarged (nearest neighbour, integer factor) so the text
    stays legible."""
    import cv2

    h, w = bgr.shape[:2]
    up = max(1, math.ceil(min_side / max(1, min(h, w))))
    img = cv2.resize(bgr, (w * up, h * up), interpolation=cv2.INTER_NEAREST) if up > 1 else bgr.copy()
    red, green = (0, 0, 255), (0, 200, 0)
    if not faces and result.heatmap is not None:
        heat = np.zeros((h * up, w * up), np.float32)
        for r in result.regions:  # paint each tile (overlaps keep the larger score)
            y, x, th, tw = (v * up for v in r.box)
            heat[y:y + th, x:x + tw] = np.maximum(heat[y:y + th, x:x + tw], r.score)
        colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
        img = cv2.addWeighted(img, 0.65, colour, 0.35, 0)
        if result.hot is not None and result.score is not None and result.score >= threshold:
            y, x, th, tw = (v * up for v in result.hot)
            cv2.rectangle(img, (x, y), (x + tw - 1, y + th - 1), red, 2)
    H, W = img.shape[:2]
    for r in result.regions:
        if r.kind == "face":
            y, x, s, _ = (v * up for v in r.box)
            c = red if r.score >= threshold else green
            cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), c, max(1, s // 80))
            cv2.putText(img, f"{r.score:.2f}", (x + 2, max(12, y - 4) if y > 14 else y + 14),
                        cv2.FONT_HERSHEY_SIMPLEX, max(0.4, s / 300), c, 1, cv2.LINE_AA)
    text = "no face" if result.score is None else (
        f"{'FAKE' if result.score >= threshold else 'real'} {result.score:.2f}")
    scale = max(0.4, min(H, W) / 500)
    org = (4, int(16 * scale / 0.4))
    label = f"#{result.index} {result.time:.2f}s {text}"
    cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img
