"""Draw docs/img/architecture.svg: the data flow from `unmask gan train` to a report, coloured by the
package that owns each step (run: `python scripts/architecture_figure.py`; deterministic output)."""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

COLOURS = {"gan": "#f6d5c8", "detector": "#cfe3f7", "detector.train": "#d9ecd0", "eval": "#efe0f5",
           "files": "#eeeeee"}

# (x, y, w, h, title, lines, package)
BOXES = [
    (0.1, 6.2, 3.0, 1.3, "real images", ["fashion-mnist, folder, video", "detector.data.open_source"], "files"),
    (3.6, 6.0, 3.4, 1.7, "unmask gan train", ["gan.trainer.Trainer", "d_step · g_step · health", "save · load (resume)"],
     "gan"),
    (7.8, 6.0, 3.2, 1.7, "GAN run directory", ["gan.rundir.RunDir: config.json,", "checkpoints, zoo/, final D and G"],
     "files"),
    (11.8, 6.0, 3.4, 1.7, "unmask harden [--rounds]", ["unmask.pipelines.harden_run", "detector.train: harden,",
                                                        "loop, calibration, replay"], "detector.train"),
    (11.8, 3.4, 3.4, 1.6, "detector artifact", ["detector.json + model.safetensors", "detector.load(DIR)"], "files"),
    (7.6, 3.4, 3.6, 1.6, "the scoring engine", ["detector.scoring.Scorer", "Detector.preprocess -> tiles -> logits"],
     "detector"),
    (0.2, 3.4, 3.0, 1.6, "your files", ["detector.files.list_files", "(images, videos)"], "files"),
    (3.7, 3.6, 3.2, 1.3, "decode + walk", ["detector.decode, detector.files,", "detector.video.read"], "detector"),
    (0.2, 0.4, 3.2, 1.6, "unmask scan", ["detector.scan", "-> results.csv / .jsonl"], "detector"),
    (3.9, 0.4, 3.2, 1.6, "unmask video", ["detector.video.analyze", "-> frames.csv, timelines"], "detector"),
    (7.6, 0.4, 3.6, 1.6, "unmask eval / eval-matrix", ["eval.evaluate (metrics, baselines,", "robustness), eval.matrix"],
     "eval"),
    (11.8, 0.4, 3.4, 1.6, "report", ["eval.report + eval.plots", "index.html, metrics.json"], "eval"),
]

ARROWS = [((3.1, 6.85), (3.6, 6.85)), ((7.0, 6.85), (7.8, 6.85)), ((11.0, 6.85), (11.8, 6.85)),
          ((13.5, 6.0), (13.5, 5.0)), ((11.8, 4.2), (11.2, 4.2)), ((3.2, 4.2), (3.7, 4.2)), ((6.9, 4.2), (7.6, 4.2)),
          ((8.4, 3.4), (1.8, 2.0)), ((9.0, 3.4), (5.5, 2.0)), ((9.4, 3.4), (9.4, 2.0)), ((11.2, 1.2), (11.8, 1.2))]
ARROW_LABELS = [((13.6, 5.5), "hardened D"), ((11.3, 4.45), "load")]


def draw(path: Path) -> None:
    plt.rcParams["svg.hashsalt"] = "unmask"  # stable ids: the same SVG on every run
    fig, ax = plt.subplots(figsize=(15.6, 8.2))
    ax.set_xlim(0, 15.4)
    ax.set_ylim(-0.5, 8.2)
    ax.axis("off")
    for x, y, w, h, title, lines, pkg in BOXES:
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05,rounding_size=0.15",
                                    fc=COLOURS[pkg], ec="#556", lw=1.2))
        ax.text(x + w / 2, y + h - 0.3, title, ha="center", va="center", fontsize=11, weight="bold")
        for i, line in enumerate(lines):
            ax.text(x + w / 2, y + h - 0.7 - 0.33 * i, line, ha="center", va="center", fontsize=8.5,
                    family="monospace")
    for a, b in ARROWS:
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, lw=1.3, color="#334"))
    for (x, y), text in ARROW_LABELS:
        ax.text(x, y, text, fontsize=8, style="italic", color="#334")
    for i, (pkg, c) in enumerate(COLOURS.items()):
        ax.add_patch(FancyBboxPatch((0.2 + 2.5 * i, -0.45), 0.35, 0.3, boxstyle="round,pad=0.02", fc=c, ec="#556"))
        ax.text(0.65 + 2.5 * i, -0.3, pkg if pkg != "files" else "files on disk", va="center", fontsize=9)
    ax.text(0.2, 7.95, "unmask: from `gan train` to a report (colour = the package that owns the step)",
            fontsize=13, weight="bold")
    fmt = path.suffix.lstrip(".") or "svg"
    fig.savefig(path, format=fmt, **({"metadata": {"Date": None}} if fmt == "svg" else {"dpi": 70}))
    plt.close(fig)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs/img/architecture.svg"
    draw(out)
    print(out)
