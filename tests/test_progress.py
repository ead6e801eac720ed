"""Progress output that fits where it is read: live bars on a terminal, a few plain lines in a log,
nothing under --quiet; --json prints one JSON object on stdout; results and progress never mix."""
from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from detector import progress
from detector.imageio import save_png
from detector.progress import Progress, track
from unmask.cli import main


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _auto_mode(monkeypatch):
    monkeypatch.delenv("UNMASK_PROGRESS", raising=False)


def test_a_log_gets_a_start_line_quarters_and_an_end_line(monkeypatch):
    monkeypatch.setattr(progress, "MIN_INTERVAL", 0.0)
    log = io.StringIO()
    with Progress(total=1000, desc="harden", unit="step", stream=log) as bar:
        for i in range(1000):
            bar.update(1)
            if i == 500:
                bar.set_postfix(loss="0.1234")
                bar.write("note: a health warning")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0] == "harden: 0/1000 step"
    quarters = [ln for ln in lines if "%)" in ln]
    assert [q.split("(")[1].split(")")[0] for q in quarters] == ["25%", "50%", "75%"]
    assert "note: a health warning" in lines
    assert lines[-1].startswith("harden: 1000/1000 step done in ") and lines[-1].endswith("[loss=0.1234]")
    assert len(lines) == 6


def test_a_log_line_count_does_not_grow_with_the_work_and_quick_tasks_are_two_lines():
    log = io.StringIO()
    for _ in track(range(100_000), desc="scan", unit="file", stream=log):
        pass
    lines = log.getvalue().splitlines()
    assert len(lines) <= 5 and lines[0] == "scan: 0/100000 file" and "done in" in lines[-1]
    log = io.StringIO()
    with Progress(desc="frames", unit="frame", stream=log) as bar:  # no total: start and end
        bar.update(7)
    assert len(log.getvalue().splitlines()) == 2
    assert log.getvalue().startswith("frames: 0 frame\nframes: 7 frame done in ")


def test_a_stopped_task_says_so_and_a_resumed_one_starts_where_it_was():
    log = io.StringIO()
    bar = Progress(total=10, initial=4, desc="gan", unit="step", stream=log)
    bar.update(2)
    bar.close()
    bar.close()  # idempotent
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and lines[0] == "gan: 4/10 step (resuming at 4)"
    assert lines[1].startswith("gan: 6/10 step stopped in ")


def test_a_terminal_gets_a_live_bar():
    tty = _Terminal()
    for _ in track(range(50), desc="scan", unit="file", stream=tty):
        pass
    assert "\r" in tty.getvalue() and "50/50" in tty.getvalue()


def test_quiet_and_disabled_tasks_print_nothing_but_messages(monkeypatch):
    for stream in (io.StringIO(), _Terminal()):
        with progress.quiet():
            assert progress.is_quiet()
            with Progress(total=5, desc="x", stream=stream) as bar:
                bar.update(5)
                bar.write("warning: kept")
        assert not progress.is_quiet()
        assert stream.getvalue() == "warning: kept\n"
    log = io.StringIO()
    assert list(track(range(3), enabled=False, stream=log)) == [0, 1, 2] and log.getvalue() == ""
    monkeypatch.setenv("UNMASK_PROGRESS", "log")
    tty = _Terminal()
    list(track(range(3), desc="forced", stream=tty))
    assert "\r" not in tty.getvalue() and tty.getvalue().startswith("forced: 0/3 it\n")


def test_no_library_module_uses_tqdm_directly():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    users = [str(p.relative_to(root)) for pkg in ("detector", "gan", "eval", "unmask")
             for p in sorted((root / pkg).rglob("*.py")) if "tqdm" in p.read_text()]
    assert users == ["detector/progress.py"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, real_images):
    root = tmp_path_factory.mktemp("progress_scan")
    for i in range(150):
        save_png(real_images[i], root / f"{i:03d}.png")
    (root / "broken.png").write_bytes(b"")
    return root


def test_scan_in_a_log_has_line_based_progress_on_stderr_and_results_on_stdout(folder, tiny_detector, tmp_path):
    res = CliRunner().invoke(main, ["scan", str(folder), "--detector", str(tiny_detector), "--out",
                                    str(tmp_path / "r.csv"), "--workers", "0", "--batch-size", "16"])
    assert res.exit_code == 1, res.output               # one unreadable file
    assert "\r" not in res.output
    err = res.stderr.splitlines()
    assert err[0] == "scan: 0/151 file" and err[-1].startswith("scan: 151/151 file done in ") and len(err) <= 5
    assert "scan:" not in res.stdout and "files: 151 (151 scanned now" in res.stdout


def test_scan_json_prints_one_object_and_quiet_prints_no_progress(folder, tiny_detector, tmp_path):
    res = CliRunner().invoke(main, ["scan", str(folder), "--detector", str(tiny_detector), "--out",
                                    str(tmp_path / "r.jsonl"), "--workers", "0", "--json", "--quiet"])
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)                     # the whole of stdout is one JSON object
    assert summary["command"] == "scan" and summary["ok"] is True
    assert (summary["files"], summary["errors"], summary["fake"] + summary["real"]) == (151, 1, 150)
    assert summary["results"] == str(tmp_path / "r.jsonl") and len(summary["top"]) == 10
    assert "files: 151" in res.stderr and "scan:" not in res.stderr   # result lines on stderr, no progress


def test_gan_train_json_summary(tmp_path):
    import torch

    g = torch.Generator().manual_seed(0)
    for i in range(8):
        save_png(torch.rand(1, 16, 16, generator=g), tmp_path / "photos" / f"p{i}.png")
    res = CliRunner().invoke(main, ["gan", "train", "--data", str(tmp_path / "photos"), "--image-size", "16",
                                    "--width", "4", "--d-width", "4", "--z-dim", "4", "--batch-size", "4",
                                    "--steps", "3", "--health-every", "2", "--out", str(tmp_path / "run"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["command"] == "gan train" and summary["steps"] == 3 and summary["zoo"]
    assert "trained 3 steps" in res.stderr and "\r" not in res.output
