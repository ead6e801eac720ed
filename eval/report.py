"""The evaluation report: ``index.html`` (self-contained: every plot and thumbnail is embedded as a
base64 PNG, no scripts or styles fetched from anywhere) and a short ``summary.md``.

The page shows the headline numbers with their 95% intervals, every plot, one table row per
generator (and per baseline), the robustness matrix, galleries of the most confident false
positives and false negatives, and the files that could not be read.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from detector.atomic import write_text
from detector.decode import UnreadableImage, read_image
from detector.imageio import to_pil

from . import plots
from .metrics import Metrics, pair
from .results import Figure

if TYPE_CHECKING:  # pragma: no cover
    from .results import EvalReport

__all__ = ["write_report", "render_html", "render_summary", "make_plots", "gallery_items", "thumbnail_png",
           "domain_sentence"]

THUMB = 96

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;padding:16px 24px;
color:#1d2330;background:#fff}
h1{margin:.2em 0}h2{border-bottom:1px solid #dde;padding-bottom:4px;margin-top:1.6em}
.muted{color:#667}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid #dde;border-radius:8px;padding:8px 12px;min-width:130px;background:#f8f9fc}
.card .v{font-size:1.5em;font-weight:600}.card .k{font-size:.8em;color:#556}.card .ci{font-size:.75em;color:#667}
table{border-collapse:collapse;margin:8px 0;font-size:.82em;display:block;overflow-x:auto;max-width:100%}th,td{border:1px solid #dde;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#eef1f7}td.l,th.l{text-align:left}tr.base td{color:#445;background:#fbfbf4}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}.plots img{max-width:560px;border:1px solid #eee}
figcaption{font-size:.8em;color:#556;max-width:560px}
.gallery{display:flex;flex-wrap:wrap;gap:8px}.thumb{text-align:center;font-size:.72em;width:104px;overflow:hidden}
.thumb img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;border:1px solid #ccd;background:#eee}
.warn{background:#fff4e0;border:1px solid #f0c070;padding:6px 10px;border-radius:6px}
code{background:#f2f3f6;padding:0 3px;border-radius:3px}
"""

# Marks the page once every embedded image has decoded (the browser test reads these attributes).
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-images-loaded', String(ok));
  document.body.setAttribute('data-tables', String(document.querySelectorAll('table tbody tr').length));
});
"""


def _f(x: float | None, nd: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _ci(ci, pct: bool = False) -> str:
    if not ci:
        return ""
    lo, hi = ci
    return f"[{_pct(lo)}, {_pct(hi)}]" if pct else f"[{lo:.3f}, {hi:.3f}]"


def _score(x: float) -> str:
    return f"{x:.3f}" if 0.001 <= x <= 0.999 or x in (0.0, 1.0) else f"{x:.2e}"


def _b64(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def thumbnail_png(img, size: int = THUMB) -> bytes:
    """``(C, H, W)`` in [0, 1] -> PNG bytes no larger than ``size`` (small images are not up-scaled;
    the page enlarges them with nearest-neighbour rendering)."""
    pil = to_pil(img)
    if max(pil.size) > size:
        pil.thumbnail((size, size), Image.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def gallery_items(rep: "EvalReport", k: int) -> tuple[list, list]:
    """Most confident mistakes at the detector's threshold: (false positives, false negatives), each a
    list of ``(file, set name, score, image)``; FPs by descending score, FNs by ascending score."""
    thr = rep.threshold
    fps = [(f, "real", float(s), im) for f, s, im in zip(rep.real.files, rep.real.scores, rep.real.images)
           if s >= thr] if rep.real.scores is not None else []
    fns = [(f, st.name, float(s), im) for st in rep.fakes for f, s, im in zip(st.files, st.scores, st.images)
           if s < thr]
    fps.sort(key=lambda t: -t[2])
    fns.sort(key=lambda t: t[2])
    return fps[:k], fns[:k]


def make_plots(rep: "EvalReport", out: Path | None) -> dict[str, Figure]:
    """name -> :class:`Figure`; also written to ``out/plots/NAME.png`` when ``out`` is given."""
    d = None if out is None else out / "plots"
    if d is not None:
        d.mkdir(parents=True, exist_ok=True)
    p = (lambda n: None) if d is None else (lambda n: d / f"{n}.png")
    res: dict[str, Figure] = {}
    real = rep.real.scores if rep.real.scores is not None else np.zeros(0)
    fakes = {s.name: s.scores for s in rep.fakes}
    res["histogram"] = Figure("Score distributions: real against each fake set; the dashed line is the detector's "
                        "threshold.", plots.histogram_plot(real, fakes, rep.threshold, p("histogram")))
    if rep.overall is None:
        return res
    curves = [(f"detector, all fakes (AUC {rep.overall.auc:.3f})",
               *pair(real, np.concatenate(list(fakes.values()))), False)]
    if len(fakes) > 1:
        curves += [(f"detector, {k} (AUC {rep.per_fake_set[k].auc:.3f})", *pair(real, v), False)
                   for k, v in fakes.items()]
    for b in rep.baselines:
        curves.append((f"{b.name}, all fakes (AUC {b.overall.auc:.3f})",
                       *pair(b.real_scores, np.concatenate(list(b.fake_scores.values()))), True))
    res["roc"] = Figure("ROC curves. Dashed: spectral baselines.", plots.roc_plot(curves, p("roc")))
    res["roc_log"] = Figure("ROC with a logarithmic false-positive axis: the region where a deployed detector lives "
                      "(dotted lines at 1% and 0.1% FPR).", plots.roc_plot(curves, p("roc_log"), log_fpr=True))
    res["pr"] = Figure("Precision-recall (fake is the positive class).", plots.pr_plot(curves, p("pr")))
    res["det"] = Figure("Detection error trade-off on normal-deviate axes.", plots.det_plot(curves, p("det")))
    if rep.calibration is not None:
        res["reliability"] = Figure("Reliability diagram: observed fraction of fakes per bin of predicted P(fake); "
                              "bars on the diagonal mean calibrated scores.",
                              plots.reliability_plot(rep.calibration, p("reliability")))
    if rep.robustness is not None:
        rows = rep.robustness.rows
        cols = [s.name for s in rep.fakes] + ["all fakes"]
        vals = [[r.auc_per_set[c] for c in cols[:-1]] + [r.auc] for r in rows]
        res["robustness"] = Figure("Robustness: AUC after each perturbation (applied to real and fake alike).",
                             plots.heatmap_plot(vals, [r.perturbation for r in rows], cols, p("robustness"),
                                                title="AUC under perturbation", xlabel="fake set",
                                                ylabel="perturbation"))
    return res


def _metric_row(model: str, test: str, m: Metrics, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return (f"<tr{c}><td class=l>{html.escape(model)}</td><td class=l>{html.escape(test)}</td>"
            f"<td>{_f(m.auc)} <span class=muted>{_ci(m.auc_ci)}</span></td><td>{_f(m.ap)}</td><td>{_pct(m.eer)}</td>"
            f"<td>{_pct(m.accuracy)} <span class=muted>{_ci(m.accuracy_ci, True)}</span></td>"
            f"<td>{_pct(m.real_accuracy)}</td><td>{_pct(m.fake_accuracy)}</td><td>{_pct(m.tpr_at_fpr_1pct)}</td>"
            f"<td>{_pct(m.tpr_at_fpr_01pct)}</td><td>{m.n_real}</td><td>{m.n_fake}</td></tr>")


METRIC_HEAD = ("<thead><tr><th class=l>model</th><th class=l>fake set</th><th>AUC [95% CI]</th><th>AP</th><th>EER</th>"
               "<th>accuracy [95% CI]</th><th>real acc.</th><th>fake acc.</th><th>TPR@1%FPR</th>"
               "<th>TPR@0.1%FPR</th><th>n real</th><th>n fake</th></tr></thead>")


def _gallery(items: list, empty: str, channels: int = 3) -> str:
    if not items:
        return f"<p class=muted>{html.escape(empty)}</p>"
    out = ["<div class=gallery>"]
    for f, setname, score, im in items:
        if im is None:  # not kept in memory: read the file again
            try:
                im = read_image(f, channels=channels)
            except UnreadableImage:
                continue
        name = Path(f).name
        out.append(f'<div class=thumb title="{html.escape(f)}"><img alt="{html.escape(name)}" '
                   f'src="{_b64(thumbnail_png(im))}"><br><b>{_score(score)}</b><br>{html.escape(setname)}<br>'
                   f'{html.escape(name[:18])}</div>')
    out.append("</div>")
    return "".join(out)


def _cards(rep: "EvalReport") -> list[tuple[str, str, str]]:
    """The headline cards: (name, value, interval or note)."""
    o = rep.overall
    if o is not None:
        cards = [("ROC AUC", _f(o.auc), _ci(o.auc_ci)), ("average precision", _f(o.ap), ""),
                 ("equal error rate", _pct(o.eer), f"at score {o.eer_threshold:.3g}"),
                 ("accuracy at threshold", _pct(o.accuracy), _ci(o.accuracy_ci, True)),
                 ("real called real", _pct(o.real_accuracy), f"{o.confusion['tn']}/{o.n_real}"),
                 ("fake caught", _pct(o.fake_accuracy), f"{o.confusion['tp']}/{o.n_fake}"),
                 ("TPR at 1% FPR", _pct(o.tpr_at_fpr_1pct), "" if o.low_fpr_resolution.get("1pct") else
                  "under 100 reals: this is TPR at 0 FP"),
                 ("TPR at 0.1% FPR", _pct(o.tpr_at_fpr_01pct), "" if o.low_fpr_resolution.get("01pct") else
                  "under 1000 reals: this is TPR at 0 FP")]
        if rep.calibration is not None:
            cards.append(("calibration error (ECE)", _f(rep.calibration.ece), "10 bins"))
    else:
        cards = []
    if rep.audit is not None:
        a = rep.audit
        cards.append(("false-positive rate (real called fake)", _pct(a.fpr),
                      f"{a.n_flagged}/{a.n_real}, 95% Wilson [{_pct(a.ci_low)}, {_pct(a.ci_high)}]"))
    return cards


def _robustness_html(rep: "EvalReport", fig: Figure) -> str:
    """The robustness table and heatmap."""
    e = html.escape
    rr = rep.robustness.rows
    cols = [s.name for s in rep.fakes]
    head = ("<thead><tr><th class=l>perturbation</th><th>AUC</th><th>ΔAUC</th><th>accuracy</th>"
            "<th>verdict flips</th><th>flips (real)</th><th>flips (fake)</th>"
            + "".join(f"<th>AUC {e(c)}</th>" for c in cols) + "</tr></thead>")
    base = rr[0].auc
    body = "".join(
        f"<tr><td class=l>{e(r.perturbation)}</td><td>{_f(r.auc)}</td><td>{r.auc - base:+.3f}</td>"
        f"<td>{_pct(r.accuracy)}</td><td>{_pct(r.flip_rate)}</td><td>{_pct(r.flip_rate_real)}</td>"
        f"<td>{_pct(r.flip_rate_fake)}</td>" + "".join(f"<td>{_f(r.auc_per_set[c])}</td>" for c in cols)
        + "</tr>" for r in rr)
    cap, png = fig.caption, fig.png
    return ("<h2>Robustness</h2><table id=robustness>" + head + "<tbody>" + body + "</tbody></table>"
            "<p class=muted>Each perturbation is applied to real and fake images alike at native "
            "resolution, before the detector's own preprocessing. A flip is an image whose verdict at "
            "the threshold differs from its clean verdict.</p>"
            f"<div class=plots><figure id=plot-robustness><img alt=robustness src='{_b64(png)}'>"
            f"<figcaption>{e(cap)}</figcaption></figure></div>")


def domain_sentence(rep: "EvalReport") -> str | None:
    """One sentence on the images outside the detector's domain and what the metrics did with them
    (None when there are none, or the artifact has no domain model)."""
    d = rep.domain
    if d is None or not d.total:
        return None
    per = ", ".join(f"{k} {n}" for k, n in d.counts.items() if n)
    if d.excluded:
        return (f"{d.total} image(s) lie outside the detector's domain ({per}): they are unlike the real images it "
                "was trained on (colour, size or content), so its score says nothing reliable about them; they are "
                "left out of every metric here (--out-of-domain score measures them anyway).")
    return (f"{d.total} image(s) lie outside the detector's domain ({per}); with --out-of-domain score they are "
            "measured like the others, so these metrics include scores the detector cannot vouch for.")


def _domain_html(rep: "EvalReport") -> str:
    d, e = rep.domain, html.escape
    text = domain_sentence(rep)
    if d is None or not d.checked:
        return ("<p class=muted>This detector has no domain model (an artifact from before the domain guard): no "
                "image could be checked against what it was trained on.</p>") if d is not None else ""
    if text is None:
        return "<p class=muted>Every image lies within the detector's domain.</p>"
    rows = "".join(f"<tr><td class=l>{e(st)}</td><td class=l>{e(f)}</td><td>{_score(sc)}</td><td>{ds:.2f}</td></tr>"
                   for st, f, sc, ds in d.files[:500])
    table = ("<table id=out-of-domain><thead><tr><th class=l>set</th><th class=l>file</th><th>score</th>"
             f"<th>domain score</th></tr></thead><tbody>{rows}</tbody></table>") if rows else ""
    return f"<h2>Out of domain ({d.total})</h2><p class=warn>{e(text)}</p>{table}"


def render_html(rep: "EvalReport", figures: dict[str, Figure]) -> str:
    spec = rep.spec
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>unmask evaluation</title>"
             f"<meta name=viewport content='width=device-width, initial-scale=1'><style>{CSS}</style></head><body>",
             "<h1>unmask evaluation report</h1>",
             f"<p class=muted>{e(rep.created)} · detector <code>{e(rep.config.detector)}</code> · "
             f"{e(spec['architecture'])} {spec['input_size']}px × {spec['channels']} ch, policy {e(spec['policy'])} · "
             f"threshold <b>{rep.threshold:.4g}</b> ({e(spec['threshold_rule'])}) · "
             f"temperature {spec['temperature']:.3g} · {rep.seconds:.1f} s</p>"]
    o = rep.overall
    cards = _cards(rep)
    parts.append("<h2>Headline</h2><div class=cards>" + "".join(
        f"<div class=card><div class=k>{e(k)}</div><div class=v>{v}</div><div class=ci>{e(c)}</div></div>"
        for k, v, c in cards) + "</div>")
    if o is None:
        parts.append("<p class=warn>Real images only: this is a false-positive audit (how often real images are "
                     "called fake at the detector's threshold). ROC, AUC and EER need fake images too.</p>")
    if o is not None:
        n_b = o.bootstrap
        rows = [_metric_row("detector", "all fakes", o)]
        rows += [_metric_row("detector", k, m) for k, m in rep.per_fake_set.items()]
        for b in rep.baselines:
            rows.append(_metric_row(b.name, "all fakes", b.overall, "base"))
            rows += [_metric_row(b.name, k, m, "base") for k, m in b.per_fake_set.items()]
        parts.append("<h2>Per generator</h2><table id=per-generator>" + METRIC_HEAD + "<tbody>" + "".join(rows)
                     + "</tbody></table>"
                     + f"<p class=muted>Every fake set is tested against the same {o.n_real} real images. "
                     f"Intervals: {n_b} stratified bootstrap resamples (seed {rep.config.seed})"
                     + ("" if n_b else " (disabled)") + ". Accuracy uses the detector's own threshold "
                     "(baselines: 0.5 on their logistic-regression probability); nothing is tuned on these "
                     "test images.</p>")
        if rep.baselines:
            parts.append("<h3>Baselines</h3><ul>" + "".join(
                f"<li><b>{e(b.name)}</b>: {e(b.paper)}. Training: {e(b.training)}.</li>" for b in rep.baselines)
                + "</ul>")
    parts.append("<h2>Plots</h2><div class=plots>" + "".join(
        f"<figure id=plot-{k}><img alt='{k}' src='{_b64(f.png)}'><figcaption>{e(f.caption)}</figcaption></figure>"
        for k, f in figures.items() if k != "robustness") + "</div>")
    if rep.robustness is not None:
        parts.append(_robustness_html(rep, figures["robustness"]))
    fps, fns = gallery_items(rep, rep.config.gallery)
    parts.append("<h2>Most confident mistakes</h2>"
                 f"<h3>False positives: real images scored highest (threshold {rep.threshold:.3g})</h3>"
                 + _gallery(fps, "None: no real image was called fake.", spec["channels"]))
    if rep.fakes:
        parts.append("<h3>False negatives: fake images scored lowest</h3>"
                     + _gallery(fns, "None: every fake image was caught.", spec["channels"]))
    parts.append(_domain_html(rep))
    if rep.unreadable:
        parts.append(f"<h2>Unreadable files ({len(rep.unreadable)})</h2><table id=unreadable><thead><tr>"
                     "<th class=l>file</th><th class=l>reason</th></tr></thead><tbody>" + "".join(
                         f"<tr><td class=l>{e(u.path)}</td><td class=l>{e(u.reason)}</td></tr>"
                         for u in rep.unreadable[:500]) + "</tbody></table>")
    parts.append("<h2>Detector</h2><details><summary>detector.json</summary><pre>"
                 + e(json.dumps(spec, indent=2)) + "</pre></details>")
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)


def render_summary(rep: "EvalReport") -> str:
    lines = ["# unmask evaluation summary", "",
             f"Detector `{rep.config.detector}` ({rep.spec['architecture']}, threshold {rep.threshold:.4g}: "
             f"{rep.spec['threshold_rule']}). {rep.created}.", ""]
    o = rep.overall
    if o is not None:
        lines += [f"**Overall** (real vs all fakes): AUC {o.auc:.3f} {_ci(o.auc_ci)}, AP {o.ap:.3f}, "
                  f"EER {_pct(o.eer)}, accuracy {_pct(o.accuracy)} {_ci(o.accuracy_ci, True)}, "
                  f"TPR@1%FPR {_pct(o.tpr_at_fpr_1pct)}.", "",
                  "| model | fake set | AUC | AP | EER | accuracy | real acc. | fake acc. | TPR@1%FPR | n real | n fake |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]

        def row(model: str, name: str, m: Metrics) -> str:
            return (f"| {model} | {name} | {m.auc:.3f} | {m.ap:.3f} | {_pct(m.eer)} | {_pct(m.accuracy)} | "
                    f"{_pct(m.real_accuracy)} | {_pct(m.fake_accuracy)} | {_pct(m.tpr_at_fpr_1pct)} | "
                    f"{m.n_real} | {m.n_fake} |")
        lines.append(row("detector", "all fakes", o))
        lines += [row("detector", k, m) for k, m in rep.per_fake_set.items()]
        for b in rep.baselines:
            lines.append(row(b.name, "all fakes", b.overall))
            lines += [row(b.name, k, m) for k, m in b.per_fake_set.items()]
        if rep.baselines:
            lines += [""] + [f"- {b.name}: {b.training}." for b in rep.baselines]
    if rep.audit is not None:
        a = rep.audit
        lines += ["", f"**False-positive audit**: {a.n_flagged} of {a.n_real} real images called fake "
                      f"(FPR {_pct(a.fpr)}, 95% Wilson interval [{_pct(a.ci_low)}, {_pct(a.ci_high)}])."]
    if rep.robustness is not None:
        lines += ["", "| perturbation | AUC | accuracy | verdict flips |", "|---|---|---|---|"]
        lines += [f"| {r.perturbation} | {r.auc:.3f} | {_pct(r.accuracy)} | {_pct(r.flip_rate)} |"
                  for r in rep.robustness.rows]
    if domain_sentence(rep):
        lines += ["", f"**Out of domain**: {domain_sentence(rep)}"]
    if rep.unreadable:
        lines += ["", f"{len(rep.unreadable)} unreadable file(s); see metrics.json."]
    lines += ["", "Full report: index.html (plots, galleries); numbers: metrics.json.", ""]
    return "\n".join(lines)


def write_report(rep: "EvalReport", out: str | Path) -> Path:
    """Write ``index.html``, ``summary.md`` and ``plots/*.png`` into ``out``; return the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = make_plots(rep, out)
    write_text(out / "index.html", render_html(rep, figures))
    write_text(out / "summary.md", render_summary(rep))
    return out / "index.html"

