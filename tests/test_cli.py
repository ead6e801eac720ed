"""The command line: help for every command (walked from the click tree), version, exit codes, data commands."""
from __future__ import annotations

import os
import subprocess
from importlib import import_module
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import detector
from unmask.cli import EXIT_FAILED, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[1]


def _walk(cmd: click.Command, path: tuple[str, ...] = ()):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            yield from _walk(cmd.commands[name], (*path, name))


ALL_COMMANDS = [p for p, _ in _walk(main) if p]


def test_top_level_help_lists_every_group_and_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ") and "train a GAN, harden its discriminator" in result.output
    assert "Commands:" in result.output
    for name in main.commands:
        assert f"  {name}" in result.output
    assert {"data", "demo"} <= set(main.commands)


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"unmask, version {detector.__version__}\n"
    assert CliRunner().invoke(main, ["-V"]).output == result.output


def test_python_dash_m_unmask():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "unmask", "--help"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Commands:" in out.stdout and "data" in out.stdout


def test_console_script_is_declared():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"] == {"unmask": "unmask.cli:main"}
    assert meta["project"]["version"] == detector.__version__


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=[" ".join(p) for p in ALL_COMMANDS])
def test_every_command_has_help_with_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`unmask {' '.join(path)} --help` has no Example block"
    example = result.output.split("Example", 1)[1]
    assert f"unmask {path[0]}" in example  # the example shows the command itself


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == EXIT_USAGE and "No such command 'frobnicate'" in result.output


def test_data_info_embedded():
    result = CliRunner().invoke(main, ["data", "info", "--source", "fashion-mnist:embedded"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "train: 10000 images from fashion-mnist:embedded:train"
    assert lines[1].startswith(f"  per class: {[1000] * 10}  checksum: 4cb55b7ea5f8b397")
    assert lines[2] == "test: 2000 images from fashion-mnist:embedded:test"
    assert lines[3].startswith(f"  per class: {[200] * 10}")


def test_data_info_folder_and_bad_source(tmp_path):
    (tmp_path / "real").mkdir()
    Image.new("L", (9, 9)).save(tmp_path / "real" / "a.png")
    result = CliRunner().invoke(main, ["data", "info", "--source", str(tmp_path)])
    assert result.exit_code == 0 and result.output == f"train: 1 images from {tmp_path}\n"
    bad = CliRunner().invoke(main, ["data", "info", "--source", str(tmp_path / "missing")])
    assert bad.exit_code == EXIT_USAGE
    assert "Invalid value for '--source': image source" in bad.output and "no such file or folder" in bad.output


def test_data_export_writes_the_real_images(tmp_path):
    out = tmp_path / "pngs"
    result = CliRunner().invoke(main, ["data", "export", "--split", "test", "--n", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote 5 PNG files to {out}\n"
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"test_{i:05d}.png" for i in range(5)]
    expected = detector.load_fashion_mnist("test", variant="embedded").images[:5]
    for f, exp in zip(files, expected):
        assert np.array_equal(np.asarray(Image.open(f)), exp)  # lossless, pixel-exact


def test_unexpected_error_exits_3_with_one_line(monkeypatch, tmp_path):
    import detector.imageio

    def boom(*a, **k):
        raise OSError("No space left on device")

    monkeypatch.setattr(detector.imageio, "save_png", boom)
    result = CliRunner().invoke(main, ["data", "export", "--n", "1", "--out", str(tmp_path)])
    assert result.exit_code == EXIT_FAILED
    assert "unmask: error: OSError: No space left on device" in result.output  # stderr is mixed in
    assert "Traceback" not in result.output


def test_data_video_bad_source_is_a_usage_error(tmp_path):
    from click.testing import CliRunner

    from unmask.cli import main

    res = CliRunner().invoke(main, ["data", "video", "--source", str(tmp_path / "nope"), "--out",
                                    str(tmp_path / "clip.avi")])
    assert res.exit_code == 2
    assert "--source" in res.output and "no such file or folder" in res.output
    assert not (tmp_path / "clip.avi").exists()


# option -> config field, where the names differ
_GAN_FIELDS = {"width": "g_width"}


def _defaults(cmd: click.Command) -> dict:
    return {p.name: p.default for p in cmd.params
            if isinstance(p, click.Option) and not (p.is_flag or p.multiple or p.required)}


@pytest.mark.parametrize("path, make_config, renamed, skip", [
    (("gan", "train"), lambda: import_module("gan.config").GanConfig(), _GAN_FIELDS, {"steps"}),
    (("eval",), lambda: import_module("eval.evaluate").EvalConfig(detector="", out=""), {}, set()),
    (("eval-matrix",), lambda: import_module("unmask.matrix").MatrixConfig(out=""),
     {"run_dir": "run", "detector_dir": "detector"}, set()),
    (("eval-lofo",), lambda: import_module("unmask.lofo").LofoConfig(out=""), {}, set()),
])
def test_cli_defaults_are_the_config_dataclass_defaults(path, make_config, renamed, skip):
    """Every option that maps onto a config field shows that field's default (one source of truth)."""
    cmd = main
    for name in path:
        cmd = cmd.commands[name]
    config = make_config()
    checked = 0
    for name, default in _defaults(cmd).items():
        field = renamed.get(name, name)
        if field in skip or not hasattr(config, field) or default is None:
            continue
        want = getattr(config, field)
        assert type(want)(default) == want, (path, name, default, want)
        checked += 1
    assert checked >= 3, path
    if path == ("gan", "train"):  # --steps has no click default (a resume keeps the run's); its help names it
        steps = next(p for p in cmd.params if p.name == "steps")
        assert f"[default: {config.steps}]" in steps.help
