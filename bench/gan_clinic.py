"""The GAN clinic: deliberately broken training runs, each without and with ``--auto-remedy``,
next to a healthy reference run, all on the embedded Fashion-MNIST for the same number of steps.

Broken on purpose (each a failure the health monitor of :mod:`gan.health` names):

* ``d_lr``       - D overpowering G by learning rate (lr_d 100x lr_g);
* ``d_capacity`` - D overpowering G by capacity (a 2x wider D that also updates 3 times per G step);
* ``collapse``   - a generator that collapses (both learning rates 10x, Adam beta1 0.9);
* ``minimax``    - the saturating minimax loss of Goodfellow et al. (2014), which stalls once D wins;
* ``g_lr``       - G's learning rate 60x D's: G chases D's weak spot and drops modes.

A broken run counts as *rescued* when, with auto-remedy, it ends within 1.5x of the healthy run's
FD-FMNIST with at least 90% class coverage; *not worse* when its FD-FMNIST is at most the same run's
without remedies. Writes ``docs/img/gan_clinic.png`` (health curves side by side), the table
(markdown, stdout) and ``bench/results-gan_clinic.json``. Runs go two at a time, one thread each.

    PYTHONPATH=. python -m bench.gan_clinic            # the full clinic (about 10 min on 2 cores)
    PYTHONPATH=. python -m bench.gan_clinic --tiny     # seconds: a smoke run of the same code
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

__all__ = ["CASES", "clinic_configs", "run_one", "run_clinic", "verdicts", "markdown_table", "plot_clinic", "run"]

ROOT = Path(__file__).resolve().parent.parent
HEALTHY = "healthy"
CASES = {  # name -> (what is broken, GanConfig overrides)
    HEALTHY: ("nothing (the reference)", {}),
    "d_lr": ("D overpowers G by learning rate: lr_d 100x lr_g", {"lr_d": 2e-3, "lr_g": 2e-5}),
    "d_capacity": ("D overpowers G by capacity: D 2x wider, 3 D steps per G step", {"d_width": 64, "d_steps": 3}),
    "collapse": ("G collapses: both learning rates 10x, Adam beta1 0.9", {"lr_d": 2e-3, "lr_g": 2e-3, "beta1": 0.9}),
    "minimax": ("saturating minimax G loss (stalls when D wins)", {"loss": "minimax"}),
    "g_lr": ("G's learning rate 60x D's: partial mode dropping", {"lr_g": 6e-3, "lr_d": 1e-4}),
}
FULL = {"steps": 800, "quality_every": -1, "health_every": 25}
TINY = {"steps": 12, "batch_size": 8, "z_dim": 8, "g_width": 8, "d_width": 8, "health_every": 2, "health_window": 2,
        "quality_every": -1, "quality_samples": 64, "quality_ref": 128, "zoo_fractions": (1.0,)}


def clinic_configs(tiny: bool = False) -> list[tuple[str, bool, dict]]:
    """``(case, auto_remedy, GanConfig keyword arguments)`` of every run: healthy once, each broken case twice."""
    base = dict(data="fashion-mnist:embedded", progress=False, checkpoint_every=100_000, health_plot=False,
                **(TINY if tiny else FULL))
    out = []
    for name, (_, over) in CASES.items():
        over = dict(over)
        if tiny and "d_width" in over:
            over["d_width"] = 2 * base["d_width"]
        for auto in ((False,) if name == HEALTHY else (False, True)):
            out.append((name, auto, {**base, **over, "auto_remedy": auto}))
    return out


def run_one(args: tuple[str, bool, dict, str]) -> dict:
    """Train one clinic run into ``out``; its final quality, seconds and health records."""
    import torch

    from gan.config import GanConfig
    from gan.trainer import train

    name, auto, kw, out = args
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    res = train(GanConfig(**kw), out)
    q = res.quality
    recs = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return {"case": name, "auto_remedy": auto, "steps": res.steps, "seconds": round(time.perf_counter() - t0, 1),
            "fd": q.fd, "precision": q.precision, "recall": q.recall, "coverage": q.coverage,
            "warnings": [f"{w.step} {w.symptom}" for w in res.warnings],
            "remedies": [f"{r['step']} {r['action']}" for r in recs if r.get("type") == "remedy"],
            "records": [r for r in recs if r.get("type") in ("train", "warning", "remedy")]}


def verdicts(runs: list[dict], fd_factor: float = 1.5, min_coverage: float = 0.9) -> dict:
    """Per broken case: rescued (auto within ``fd_factor`` x healthy FD and >= ``min_coverage``) and
    not worse (auto FD <= plain FD); plus the counts."""
    by = {(r["case"], r["auto_remedy"]): r for r in runs}
    healthy = by[(HEALTHY, False)]["fd"]
    out = {}
    for name in CASES:
        if name == HEALTHY:
            continue
        plain, auto = by[(name, False)], by[(name, True)]
        out[name] = {"rescued": auto["fd"] <= fd_factor * healthy and auto["coverage"] >= min_coverage,
                     "not_worse": auto["fd"] <= plain["fd"]}
    return {"cases": out, "rescued": sum(v["rescued"] for v in out.values()),
            "not_worse": sum(v["not_worse"] for v in out.values()), "broken": len(out), "healthy_fd": healthy}


def markdown_table(runs: list[dict], v: dict) -> str:
    rows = ["| case | what is broken | auto-remedy | FD-FMNIST | precision | recall | class coverage | verdict |",
            "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        verdict = ""
        if r["auto_remedy"]:
            c = v["cases"][r["case"]]
            verdict = ("rescued" if c["rescued"] else "not rescued") + ("" if c["not_worse"] else ", WORSE")
        rows.append(f"| {r['case']} | {CASES[r['case']][0]} | {'yes' if r['auto_remedy'] else 'no'} | {r['fd']:.1f} | "
                    f"{r['precision']:.2f} | {r['recall']:.2f} | {r['coverage']:.0%} | {verdict} |")
    return "\n".join(rows)


def plot_clinic(runs: list[dict], path) -> None:
    """One column per broken case: D(fake), G's minimax gradient and batch recall over the steps,
    without (dashed) and with auto-remedy (solid; dotted lines: remedies), healthy run in grey."""
    from detector.figures import figure_png, pyplot

    plt = pyplot()
    broken = [n for n in CASES if n != HEALTHY]
    by = {(r["case"], r["auto_remedy"]): r for r in runs}
    rows = [("d_fake", "mean D(G(z))", False), ("grad_g_minimax", "|grad G| (minimax)", True),
            ("recall", "batch recall", False)]
    fig, axes = plt.subplots(len(rows), len(broken), figsize=(3.2 * len(broken), 7), squeeze=False)
    for j, name in enumerate(broken):
        for i, (key, label, log) in enumerate(rows):
            ax = axes[i, j]
            for (case, auto), style, color in (((HEALTHY, False), "-", "0.6"), ((name, False), "--", "tab:red"),
                                               ((name, True), "-", "tab:blue")):
                train = [r for r in by[(case, auto)]["records"] if r["type"] == "train" and r.get(key) is not None]
                lab = "healthy" if case == HEALTHY else ("auto-remedy" if auto else "no remedy")
                ax.plot([r["step"] for r in train], [r[key] for r in train], style, color=color, lw=1.2, label=lab)
            for r in by[(name, True)]["records"]:
                if r["type"] == "remedy" and r.get("verdict") == "on trial" and r.get("rung"):
                    ax.axvline(r["step"], color="tab:green", ls=":", lw=1)
            if log:
                ax.set_yscale("log")
            if i == 0:
                ax.set_title(name)
            if j == 0:
                ax.set_ylabel(label)
            if i == len(rows) - 1:
                ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("GAN clinic: broken runs without (red dashed) and with auto-remedy (blue; green dotted: "
                 "a remedy applied), healthy run in grey")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.9, wspace=0.3, hspace=0.3)
    figure_png(fig, path, dpi=70, tight=False)


class _InProcess:
    """``workers=1``: run here, one after the other (no process start-up: what the tiny test uses)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    @staticmethod
    def map(fn, jobs):
        return map(fn, jobs)


def run_clinic(out_dir, tiny: bool = False, workers: int = 2, log=None) -> dict:
    """Every clinic run (``workers`` at a time), their verdicts and the table."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    jobs = [(n, a, kw, str(Path(out_dir) / f"{n}{'_auto' if a else ''}")) for n, a, kw in clinic_configs(tiny)]
    t0 = time.perf_counter()
    runs = []
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _InProcess() as pool:
        for r in pool.map(run_one, jobs):
            log(f"[clinic] {r['case']}{' +auto-remedy' if r['auto_remedy'] else ''}: FD-FMNIST {r['fd']:.1f} "
                f"precision {r['precision']:.2f} recall {r['recall']:.2f} coverage {r['coverage']:.0%} "
                f"({r['seconds']} s)" + "".join(f"\n    {x}" for x in r["remedies"]))
            runs.append(r)
    v = verdicts(runs)
    return {"runs": runs, "verdicts": v, "table": markdown_table(runs, v),
            "seconds": round(time.perf_counter() - t0, 1)}


def run(tiny: bool = False, out_dir=None, picture=None, workers: int = 2) -> dict:
    """The clinic (a temporary folder for the runs unless ``out_dir``); the picture to ``picture``."""
    with tempfile.TemporaryDirectory() as tmp:
        res = run_clinic(out_dir or tmp, tiny=tiny, workers=workers)
        if picture:
            plot_clinic(res["runs"], picture)
    return res


def main(argv: list[str] | None = None) -> int:
    from bench.common import machine
    from detector.atomic import write_json

    ap = argparse.ArgumentParser(prog="python -m bench.gan_clinic")
    ap.add_argument("--tiny", action="store_true", help="tiny runs (a smoke test; writes nothing under docs/)")
    ap.add_argument("--workers", type=int, default=2, help="runs at a time (one thread each)")
    ap.add_argument("--out", default=None, help="keep the run directories here")
    args = ap.parse_args(argv)
    picture = None if args.tiny else ROOT / "docs" / "img" / "gan_clinic.png"
    res = run(args.tiny, args.out, picture, args.workers)
    print(res["table"])
    v = res["verdicts"]
    print(f"\nrescued {v['rescued']}/{v['broken']}, not worse {v['not_worse']}/{v['broken']}; "
          f"{res['seconds']} s, {args.workers} runs at a time", file=sys.stderr)
    if not args.tiny:
        slim = {**res, "runs": [{k: x for k, x in r.items() if k != "records"} for r in res["runs"]]}
        write_json(ROOT / "bench" / "results-gan_clinic.json", {"machine": machine(), **slim})
    return 0 if args.tiny or v["rescued"] >= 4 else 1


if __name__ == "__main__":
    sys.exit(main())
