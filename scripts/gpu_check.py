"""One-command GPU check: does the CUDA path work, how fast is it, and does it score like the CPU?

    make gpu-check                      # = python scripts/gpu_check.py
    python scripts/gpu_check.py --device cuda:1 --out runs/gpu_check
    python scripts/gpu_check.py --tiny  # seconds-long CPU smoke run (what tests/test_gpu_check.py runs)

Runs the product's own commands (``python -m unmask ...`` subprocesses, so it checks what a user
runs and does not depend on internal module paths), on the GPU with ``--device cuda --amp``
(bfloat16 autocast): a short GAN training, hardening its discriminator, a folder scan and a video
run; then on the CPU for a sample: the same GAN and hardening for fewer steps (speed only: training
is not bit-reproducible across devices) and the same scan and video *with the GPU-trained
detector*, whose scores are compared file by file and region by region. Prints a table (images/s
on each, speed-up, max |score difference| CPU vs GPU, peak GPU memory from ``nvidia-smi``) and exits
1 if a stage fails or a score differs by more than ``--tol`` (1e-3: bfloat16 autocast against
float32). Sized to finish in minutes on one recent GPU; needs no network.

Without a CUDA GPU it says so, runs the CPU path of the check itself at its tiny size (every stage
on the CPU, the comparison CPU vs CPU) and exits 0 if that works.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: (gan steps, harden steps, scan images, video frames) on the device; the CPU sample runs 1/SAMPLE of the training steps
FULL = (1500, 1500, 5000, 600)
TINY = (4, 4, 24, 8)
SAMPLE = 10


@dataclass
class Stage:
    name: str
    unit: str                      # "images/s" or "frames/s"
    dev_rate: float | None = None
    cpu_rate: float | None = None
    max_diff: float | None = None  # max |score(GPU) - score(CPU)| (scan, video)
    peak_mb: float | None = None
    errors: list[str] = field(default_factory=list)


def _cli(args: list[str], log: Path, env: dict) -> tuple[float, str]:
    """Run ``python -m unmask ARGS``; (wall seconds, output). Raises RuntimeError on a non-zero exit."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "unmask", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    out = p.stdout + p.stderr
    with open(log, "a") as f:
        f.write(f"$ unmask {' '.join(args)}\n{out}\n[exit {p.returncode}, {dt:.1f} s]\n\n")
    if p.returncode != 0:
        tail = " | ".join(out.strip().splitlines()[-3:])
        raise RuntimeError(f"`unmask {' '.join(args[:2])}` exited {p.returncode}: {tail}")
    return dt, out


class _GpuMemory:
    """Peak device memory in use while a stage runs, polled from ``nvidia-smi`` (MiB; None without it)."""

    def __init__(self, index: int | None) -> None:
        self.index, self.peak, self._stop = index, None, threading.Event()
        self.cmd = shutil.which("nvidia-smi") if index is not None else None

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run([self.cmd, "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                      f"--id={self.index}"], capture_output=True, text=True, timeout=5).stdout
                self.peak = max(self.peak or 0.0, float(out.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(0.25)

    def __enter__(self):
        if self.cmd:
            self._t = threading.Thread(target=self._poll, daemon=True)
            self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.cmd:
            self._t.join()


def _rate(out: str, n: float, seconds: float) -> float:
    """The command's own 'N real images/s' when it prints one (excludes start-up), else n / wall time."""
    m = re.search(r"\(([\d.]+) real images/s\)", out)
    return float(m.group(1)) if m else n / seconds


def _scan_scores(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        return {Path(r["path"]).name: float(r["score"]) for r in csv.DictReader(f) if r["score"]}


def _video_scores(folder: Path) -> dict[tuple, float]:
    with open(folder / "frames.csv", newline="") as f:
        return {(r["frame"], r["region"]): float(r["score"]) for r in csv.DictReader(f) if r["score"]}


def _max_diff(a: dict, b: dict) -> float:
    if set(a) != set(b) or not a:
        raise RuntimeError(f"CPU and GPU scored different items ({len(a)} vs {len(b)})")
    return max(abs(a[k] - b[k]) for k in a)


def _rate_of(out: str, n: float, seconds: float) -> float:
    m = re.search(r"([\d.]+) files/s", out)
    return float(m.group(1)) if m else _rate(out, n, seconds)


def run_check(work: Path, device: str, amp: bool, sizes: tuple[int, int, int, int], env: dict,
              log: Path) -> list[Stage]:
    """Every stage on ``device`` then the CPU sample; failures are recorded on their stage, never raised."""
    gan_steps, harden_steps, n_imgs, n_frames = sizes
    dev = ["--device", device] + (["--amp"] if amp else [])
    cpu = ["--device", "cpu"]
    gpu = int(device.split(":")[1]) if device.startswith("cuda:") else 0
    st = {s.name: s for s in (Stage("gan train", "images/s"), Stage("harden", "images/s"),
                             Stage("scan", "images/s"), Stage("video", "frames/s"))}
    d, c = work / "device", work / "cpu"
    d.mkdir(parents=True, exist_ok=True)
    c.mkdir(parents=True, exist_ok=True)

    def stage(name: str, fn) -> None:
        try:
            fn()
        except (RuntimeError, OSError, ValueError, KeyError) as e:
            st[name].errors.append(str(e))

    def gan(where: Path, flags: list[str], steps: int, key: str, mem: bool) -> None:
        with _GpuMemory(gpu if mem else None) as m:
            t, out = _cli(["gan", "train", "--steps", str(steps), "--health-every", str(max(1, steps // 4)),
                           "--seed", "0", "--quiet", "--out", str(where / "gan"), *flags], log, env)
        setattr(st["gan train"], key, _rate(out, steps * 64, t))
        st["gan train"].peak_mb = m.peak if mem else st["gan train"].peak_mb

    def harden(where: Path, flags: list[str], steps: int, key: str, mem: bool) -> None:
        with _GpuMemory(gpu if mem else None) as m:
            t, _ = _cli(["harden", str(d / "gan"), "--out", str(where / "det"), "--steps", str(steps),
                         "--n-fakes", str(32 if steps < 100 else 256), *flags], log, env)
        setattr(st["harden"], key, steps * 64 / t)  # wall time: sampling, calibration and start-up included
        st["harden"].peak_mb = m.peak if mem else st["harden"].peak_mb

    def scan(where: Path, flags: list[str], key: str, mem: bool) -> None:
        with _GpuMemory(gpu if mem else None) as m:
            t, out = _cli(["scan", str(work / "imgs"), "--detector", str(d / "det"), "--out", str(where / "scan.csv"),
                           "--quiet", *flags], log, env)
        setattr(st["scan"], key, _rate_of(out, n_imgs, t))
        st["scan"].peak_mb = m.peak if mem else st["scan"].peak_mb

    def video(where: Path, flags: list[str], key: str, mem: bool) -> None:
        with _GpuMemory(gpu if mem else None) as m:
            t, _ = _cli(["video", str(work / "clip.avi"), "--detector", str(d / "det"), "--out", str(where / "video"),
                         "--every", "1", "--quiet", *flags], log, env)
        setattr(st["video"], key, n_frames / t)  # wall time, start-up included
        st["video"].peak_mb = m.peak if mem else st["video"].peak_mb

    _cli(["data", "export", "--n", str(n_imgs), "--out", str(work / "imgs")], log, env)
    _cli(["data", "video", "--out", str(work / "clip.avi"), "--frames", str(n_frames)], log, env)
    on_gpu = device != "cpu"
    stage("gan train", lambda: gan(d, dev, gan_steps, "dev_rate", on_gpu))
    stage("harden", lambda: harden(d, dev, harden_steps, "dev_rate", on_gpu))
    stage("scan", lambda: scan(d, dev, "dev_rate", on_gpu))
    stage("video", lambda: video(d, dev, "dev_rate", on_gpu))
    if on_gpu:  # training speed on the CPU, for a sample of the steps
        stage("gan train", lambda: gan(c, cpu, max(2, gan_steps // SAMPLE), "cpu_rate", False))
        if (d / "gan").is_dir():
            stage("harden", lambda: harden(c, cpu, max(2, harden_steps // SAMPLE), "cpu_rate", False))
    else:  # the device is the CPU: its training rates are the CPU's
        for name in ("gan train", "harden"):
            st[name].cpu_rate = st[name].dev_rate
    if (d / "det").is_dir():
        stage("scan", lambda: scan(c, cpu, "cpu_rate", False))
        stage("video", lambda: video(c, cpu, "cpu_rate", False))
        stage("scan", lambda: setattr(st["scan"], "max_diff", _max_diff(_scan_scores(d / "scan.csv"),
                                                                        _scan_scores(c / "scan.csv"))))
        stage("video", lambda: setattr(st["video"], "max_diff", _max_diff(_video_scores(d / "video"),
                                                                          _video_scores(c / "video"))))
    return list(st.values())


def table(stages: list[Stage], device: str) -> str:
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    rows = [("stage", f"{device}", "cpu", "speed-up", "max |diff|", "peak GPU MiB", "status")]
    for s in stages:
        up = s.dev_rate / s.cpu_rate if s.dev_rate and s.cpu_rate else None
        rows.append((s.name, f(s.dev_rate, ".1f") + f" {s.unit}", f(s.cpu_rate, ".1f") + f" {s.unit}",
                     f(up, ".2f") + ("x" if up else ""), f(s.max_diff, ".2e"), f(s.peak_mb, ".0f"),
                     "FAILED: " + "; ".join(s.errors) if s.errors else "ok"))
    w = [max(len(r[i]) for r in rows) for i in range(6)]
    return "\n".join("  ".join(r[i].ljust(w[i]) for i in range(6)) + "  " + r[6] for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="the accelerator to check [cuda]")
    ap.add_argument("--out", default=None, help="keep the work folder here (default: a temporary one)")
    ap.add_argument("--tiny", action="store_true", help="smallest sizes (a smoke run)")
    ap.add_argument("--tol", type=float, default=1e-3, help="largest accepted |score difference| [1e-3]")
    a = ap.parse_args(argv)
    import torch  # only to ask whether there is a GPU; the work runs in `unmask` subprocesses

    device, tiny = a.device, a.tiny
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("No CUDA GPU is visible here (torch.cuda.is_available() is False): nothing is measured on a GPU.\n"
              "Running the CPU path of this check instead (tiny sizes, every stage on the CPU, CPU vs CPU).")
        device, tiny = "cpu", True
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    if device == "cpu":
        env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.out) if a.out else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        log = work / "gpu_check.log"
        t0 = time.perf_counter()
        stages = run_check(work, device, device.startswith("cuda"), TINY if tiny else FULL, env, log)
        print(table(stages, device))
        print(f"{time.perf_counter() - t0:.0f} s; commands and their output: {log if a.out else '(pass --out to keep)'}")
        if any(s.errors for s in stages):
            print("FAILED: a stage did not complete (see its status)")
            return 1
        bad = [s.name for s in stages if s.max_diff is not None and s.max_diff > a.tol]
        if bad:
            print(f"FAILED: scores differ by more than {a.tol:g} between {device} and the CPU in: {', '.join(bad)}")
            return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
