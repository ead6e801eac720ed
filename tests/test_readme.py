"""README.md stays true: the CLI reference matches ``--help``, and every shell block marked
``<!-- runnable -->`` runs verbatim, in order, in a fresh folder, with size options shrunk to
tiny values (``--steps 2000`` becomes ``--steps 30``, etc.) so the suite stays fast."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from unmask.clidoc import splice

README = Path(__file__).resolve().parents[1] / "README.md"
# option -> tiny value used in the test (documented in the module docstring)
TINY = {"--steps": "30", "--gan-steps": "10", "--n": "24", "--n-fakes": "200", "--frames": "12",
        "--bootstrap": "20", "--per-family": "40"}


def runnable_commands(text: str) -> list[str]:
    cmds = []
    for block in re.findall(r"<!-- runnable -->\s*```(?:bash|sh)\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


def shrink(cmd: str) -> list[str]:
    args = shlex.split(cmd)
    for i, a in enumerate(args[:-1]):
        if a in TINY:
            args[i + 1] = TINY[a]
    return args


def test_cli_reference_in_sync():
    text = README.read_text()
    assert splice(text) == text, "README's CLI reference is stale: run `python -m unmask.clidoc --write README.md`"


def test_readme_has_runnable_quickstarts():
    cmds = runnable_commands(README.read_text())
    used = {shlex.split(c)[1] for c in cmds if c.startswith("unmask ")}
    # one quick-start per user job
    assert {"gan", "harden", "scan", "video", "eval", "export", "retrain"} <= used, used


@pytest.mark.e2e
@pytest.mark.slow
def test_readme_runnable_blocks_run(tmp_path, monkeypatch):
    """In this process (the CLI's own entry point; `python -m unmask` is tested in test_cli.py), so
    eleven commands do not pay eleven interpreter and torch start-ups."""
    from click.testing import CliRunner

    from unmask.cli import main

    monkeypatch.chdir(tmp_path)
    for cmd in runnable_commands(README.read_text()):
        args = shrink(cmd)
        assert args[0] == "unmask", f"runnable blocks hold unmask commands only: {cmd}"
        res = CliRunner().invoke(main, args[1:], catch_exceptions=False)
        assert res.exit_code == 0, f"`{cmd}` failed ({res.exit_code}):\n{res.output[-3000:]}"
