"""docs/python.md: every ```python block runs, in order, against a small detector and photo folder."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

import detector
from detector.imageio import save_png

ROOT = Path(__file__).resolve().parents[1]


def test_python_page_examples_run(tiny_detector, real_images, fake_images, tmp_path, monkeypatch, capsys):
    det_dir = tmp_path / "runs" / "demo" / "detector"
    detector.load(tiny_detector).with_spec(policy="resize").save(det_dir)   # the page tiles on purpose
    photos = tmp_path / "photos"
    save_png(real_images[0], photos / "cat.png")
    rgb = (np.random.default_rng(1).random((50, 70, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(photos / "dog.jpg", quality=90)
    for i in range(2):
        save_png(real_images[1 + i], photos / f"real_{i}.png")
        save_png(fake_images[i], photos / f"fake_{i}.png")
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "python.md").read_text(), re.S)
    assert len(blocks) >= 7
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/python.md, python block {i + 1}", "exec"), ns)  # noqa: S102 - our own docs
    out = capsys.readouterr().out
    assert "Predictions(6 images:" in out and "error file not found" in out and "12 (3, 4)" in out
    assert "cannot score input of type builtins.int; accepted: a path" in out
