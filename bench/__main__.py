"""Run every benchmark, print a table and write bench/results.json.

Usage: python -m bench [--tiny] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from bench.common import machine

# (module, headline figure, target, what it measures)
BENCHES = [
    ("scan_speed", "ratio", ">= 0.7", "folder scan images/s vs decode-only images/s (same files, same loader)"),
    ("model_cost", "speedup_vs_resnet50", "report (expect > 20x)", "per-image time: ResNet-50 @224 / ours @28"),
    ("video_speed", "ratio", ">= 0.7", "video frames/s scored vs frames/s decoded (same file)"),
    ("gan_speed", "ratio", ">= 1.0", "GAN trainer images/s vs a plain reference DCGAN loop"),
    ("memory", "ratio", "<= 1.2", "peak RSS scanning 100,000 vs 10,000 files"),
    ("scale", "ratio", "report", "scan images/s with 2 processes vs 1"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--tiny", action="store_true", help="smallest sizes (a smoke run)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these benchmarks")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = ap.parse_args(argv)
    results: dict = {"machine": machine(), "tiny": args.tiny, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "benchmarks": {}}
    rows = []
    for name, key, target, what in BENCHES:
        if args.only and name not in args.only:
            continue
        mod = importlib.import_module(f"bench.{name}")
        print(f"[bench] {name}: {what} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        res = mod.run(tiny=args.tiny)
        res["seconds"] = round(time.perf_counter() - t0, 1)
        results["benchmarks"][name] = res
        rows.append((name, f"{res[key]:.3g}", target, what))
    w = [max(len(r[i]) for r in rows + [("benchmark", "value", "target", "")]) for i in range(3)]
    print(f"{'benchmark':<{w[0]}}  {'value':>{w[1]}}  {'target':<{w[2]}}  what")
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    if not args.tiny:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
