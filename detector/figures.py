"""THE one figure-to-PNG helper: every plot unmask writes (evaluation plots, the GAN health curves,
hardening score histograms, video timelines) ends here, so PNG bytes, DPI handling, closing the
figure and the atomic write are decided once.

A leaf: importing it imports neither matplotlib nor anything else heavy; :func:`pyplot` loads
matplotlib with the non-interactive Agg backend when a plot is actually drawn, so ``import
detector`` stays free of matplotlib.
"""
from __future__ import annotations

import io
import os

__all__ = ["pyplot", "figure_png"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed; safe in workers and servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, path: str | os.PathLike | None = None, *, dpi: float | None = None,
               tight: bool = True) -> bytes:
    """Render ``fig`` as PNG bytes, close it, and, given ``path``, also write the bytes atomically.

    ``dpi`` None: matplotlib's ``savefig.dpi`` default. ``tight``: apply ``fig.tight_layout()`` first
    (leave False when the caller placed the axes itself, e.g. with ``subplots_adjust``)."""
    from .atomic import write_bytes

    if tight:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **({} if dpi is None else {"dpi": dpi}))
    pyplot().close(fig)
    data = buf.getvalue()
    if path is not None:
        write_bytes(path, data)
    return data
