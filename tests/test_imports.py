"""Import direction: ``detector`` stands alone; it never pulls in ``gan`` or ``eval``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_detector_imports_neither_gan_nor_eval(tiny_detector):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tiny_detector)], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
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
