"""Import direction: ``detector`` stands alone; it never pulls in ``gan`` or ``eval``, and the runtime
(``import detector``, load, score) never pulls in OpenCV, scikit-learn, matplotlib or the training stack."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys
import detector
after_import = sorted(m for m in sys.modules if m.split('.')[0] in ('gan', 'eval', 'unmask'))
det = detector.load(sys.argv[1])
det.score_image(__import__('torch').rand(1, 40, 40))
after_load = sorted(m for m in sys.modules if m.split('.')[0] in ('gan', 'eval', 'unmask'))
print(json.dumps({"after_import": after_import, "after_load": after_load,
                  "detector": sys.modules['detector'].__file__}))
"""


def _run(script: str, *args) -> dict:
    """Run ``script`` in a fresh interpreter on the package under test; its last stdout line as JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_detector_imports_neither_gan_nor_eval(tiny_detector):
    result = _run(PROBE, tiny_detector)
    assert Path(result["detector"]).resolve().is_relative_to(ROOT)  # the package under test
    assert result["after_import"] == []
    assert result["after_load"] == []


def test_detector_sources_do_not_mention_gan_or_eval_imports():
    offenders = []
    for path in sorted((ROOT / "detector").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            s = line.strip()
            if s.startswith(("import gan", "import eval", "from gan", "from eval", "import unmask", "from unmask")):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {s}")
    assert offenders == []


RUNTIME_PROBE = r"""
import json, sys
import torch
import detector
det = detector.load(sys.argv[1])
img = torch.rand(1, 40, 52)
one = det.score_image(img)
many = detector.score_images(det, [img, torch.rand(1, 20, 30)])
print(json.dumps({"modules": sorted(sys.modules), "one": one, "many": many.tolist()}))
"""
# what a runtime user must not pay for: OpenCV, scikit-learn, matplotlib, the training stack and the
# non-runtime parts of detector (scan, video, datasets, export)
FORBIDDEN = ("cv2", "sklearn", "matplotlib", "gan", "eval", "unmask", "detector.train", "detector.scan",
             "detector.video", "detector.data", "detector.export", "detector.harden", "detector.retrain",
             "detector.augment")


def test_runtime_loads_and_scores_without_training_stack_opencv_or_plots(tiny_detector):
    result = _run(RUNTIME_PROBE, tiny_detector)
    loaded = [m for m in result["modules"] if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert loaded == []
    assert 0.0 <= result["one"] <= 1.0 and abs(result["many"][0] - result["one"]) < 1e-6  # the engine = score_image


def test_old_top_level_names_still_resolve_lazily():
    import detector

    from detector.data import FolderSource
    from detector.scan import ScanConfig

    assert detector.FolderSource is FolderSource and detector.ScanConfig is ScanConfig
    with pytest.raises(AttributeError):
        detector.no_such_name  # noqa: B018


ENV_PROBE = r"""
import json, os
import detector, detector.scan, detector.video, detector.data
print(json.dumps(sorted(k for k in os.environ if k.startswith("OPENCV"))))
"""


def test_importing_detector_packages_sets_no_environment_variables():
    """OpenCV's log levels are set by the command's entry (unmask.cli), never by importing a library."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", ENV_PROBE], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
