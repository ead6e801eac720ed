"""Run every benchmark, print a table and write bench/results.json.

Usage: python -m bench [--tiny] [--only NAME ...] [--out PATH]

Each benchmark is a module ``bench.<name>`` with ``run(tiny: bool = False) -> dict``; BENCHES names
the headline key of its result. A benchmark whose module does not exist yet is skipped with a
message (and recorded as skipped); every other failure stops the run.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench.common import load_average, machine

# (module, headline figure, target, what it measures)
BENCHES = [
    ("scan_speed", "ratio", ">= 0.7", "folder scan images/s vs decode-only images/s (same files, same loader)"),
    ("model_cost", "speedup_vs_resnet50", "report (expect > 20x)", "per-image time: ResNet-50 @224 / ours @28"),
    ("video_speed", "ratio", ">= 0.7", "video frames/s scored vs frames/s decoded (same file)"),
    ("gan_speed", "ratio", ">= 1.0", "GAN trainer images/s vs a plain reference DCGAN loop"),
    ("memory", "ratio", "<= 1.2", "peak RSS scanning 100,000 vs 10,000 files"),
    ("scale", "ratio", "report", "scan images/s with 2 processes vs 1"),
    ("serve_load", "ratio", ">= 0.7", "unmask serve images/s (200 clients x 20 images) vs unmask scan, same files"),
    ("photo_speed", "ratio", ">= 1.5", "scan images/s vs plain full Pillow decode, 2,000 JPEGs of 1-12 MP"),
    ("footage_speed", "ratio", ">= 0.7", "worst of `video --fps 2` (tiles, faces) vs decoding the same frames, "
                                         "720p/1080p H.264 + HEVC"),
    ("trust_cost", "cost", "<= 0.25", "share of scan files/s the domain guard costs (28-px PNGs, guard on vs off)"),
]

__all__ = ["BENCHES", "met", "run_benchmarks", "table", "main"]


def met(value: float, target: str) -> str:
    """'yes' / 'NO' for a '>= x' or '<= x' target, '-' for a figure that is only reported."""
    for op, ok in ((">=", lambda a, b: a >= b), ("<=", lambda a, b: a <= b)):
        if target.startswith(op):
            return "yes" if ok(value, float(target[len(op):].split()[0])) else "NO"
    return "-"


def run_benchmarks(tiny: bool = False, only: list[str] | None = None, benches=BENCHES, log=None) -> dict:
    """Run the selected benchmarks; returns the results document (also what results.json holds)."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    results: dict = {"machine": machine(), "tiny": tiny, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                     "benchmarks": {}, "skipped": {}}
    unknown = set(only or ()) - {b[0] for b in benches}
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(b[0] for b in benches)}")
    t_all = time.perf_counter()
    for name, key, target, what in benches:
        if only and name not in only:
            continue
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"bench.{name}":
                raise
            log(f"[bench] {name}: SKIPPED, module bench/{name}.py does not exist in this checkout")
            results["skipped"][name] = f"bench/{name}.py not present"
            continue
        log(f"[bench] {name}: {what} ...")
        t0 = time.perf_counter()
        res = dict(mod.run(tiny=tiny))
        res["seconds"] = round(time.perf_counter() - t0, 1)
        value = float(res[key])
        res["headline"] = {"key": key, "value": value, "target": target, "met": met(value, target)}
        results["benchmarks"][name] = res
        log(f"[bench] {name}: {key} = {value:.3g} ({res['seconds']} s)")
    results["seconds"] = round(time.perf_counter() - t_all, 1)
    results["load_average_end"] = load_average()
    return results


def table(results: dict, benches=BENCHES) -> str:
    rows = [("benchmark", "value", "target", "met", "what")]
    for name, key, target, what in benches:
        if name in results["benchmarks"]:
            h = results["benchmarks"][name]["headline"]
            rows.append((name, f"{h['value']:.3g}", target, h["met"], what))
        elif name in results.get("skipped", {}):
            rows.append((name, "skipped", target, "-", results["skipped"][name]))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:<{w[2]}}  {r[3]:<{w[3]}}  {r[4]}" for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--tiny", action="store_true", help="smallest sizes (a smoke run; results.json not written)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these benchmarks")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = ap.parse_args(argv)
    results = run_benchmarks(args.tiny, args.only)
    print(table(results))
    print(f"total {results['seconds']} s", file=sys.stderr)
    if not args.tiny:
        from detector.atomic import write_json

        write_json(args.out, results)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
