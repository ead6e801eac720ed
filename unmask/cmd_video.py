"""``unmask video``: per-frame and per-video verdicts for video files."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import AMP_HELP, EXIT_OUT_OF_DOMAIN, OOD_SENTENCE, device_option, out_of_domain_option
from .output import Report, jsonable, long_work


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--detector", "detector_dir", required=True, type=click.Path(path_type=Path),
              help="Detector artifact directory (detector.json + model.safetensors).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: frames.csv, videos.csv, timelines/, heatmaps/, peaks/, annotated/.")
@click.option("--every", type=click.IntRange(1), default=None, help="Score every N-th frame.")
@click.option("--fps", "rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Score about R frames per second of video.")
@click.option("--frames", type=click.IntRange(1), default=None,
              help="Score K frames spread uniformly over the video [default when no mode is given: 32].")
@click.option("--faces", is_flag=True, help="Score Haar-cascade face crops instead of tiles of the whole frame.")
@click.option("--margin", type=click.FloatRange(min=1.0), default=1.3, show_default=True,
              help="Face crop: square side = margin x the face box's larger side.")
@click.option("--annotate", is_flag=True, help="Also write annotated/<video>.avi (boxes or heatmap, scores).")
@click.option("--aggregate", type=click.Choice(["topk_mean", "mean", "max", "flagged_fraction"]),
              default="topk_mean", show_default=True,
              help="Per-video score from frame scores (topk_mean: mean of the top 10%, at least 3).")
@click.option("--flagged-min", type=click.FloatRange(0, 1, min_open=True), default=0.1, show_default=True,
              help="With --aggregate flagged_fraction: call a video fake when this fraction of frames is flagged.")
@click.option("--all-tiles", is_flag=True, help="frames.csv gets one row per tile (default: one per frame).")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True,
              help="Regions (tiles or faces) per forward pass.")
@click.option("--max-pixels", type=click.IntRange(1), default=4096 * 4096, show_default=True,
              help="Refuse videos whose frames are larger than this many pixels.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Give up on a video after this many seconds (its row says so) [default: no limit].")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--amp", is_flag=True, help=AMP_HELP)
@out_of_domain_option
@long_work
def video(paths, detector_dir, out_dir, every, rate, frames, faces, margin, annotate, aggregate, flagged_min,
          all_tiles, batch_size, max_pixels, time_limit, device, amp, quiet, report: Report, out_of_domain) -> None:
    """Score video files (or folders of them): per-frame scores, one verdict per video.

    Frames are streamed (never all held). Without --faces every sampled frame is cut into tiles
    at the detector's input size and each tile scored (frame score = the artifact's tile
    aggregate, heatmap = grid of tile scores); with --faces each detected face is cropped with a
    margin and scored. A file that cannot be scored gets an error row in videos.csv and the
    others go on (exit code 1). Frame and video thresholds are the aggregates' own, set so that
    clean frames and clean videos are flagged at the detector's false-positive rate. A video whose
    frames are mostly unlike the detector's training reals gets the verdict out_of_domain
    (exit code 4 when no video failed; --out-of-domain score keeps its real/fake verdict).

    \b
    Example:
      unmask video clip.mp4 --detector runs/det --out runs/video
      unmask video videos/ --detector runs/det --out runs/faces --faces --fps 2 --annotate
    """
    from detector.artifact import ArtifactError, load
    from detector.video import VideoConfig, list_videos

    modes = [n for n, v in (("--every", every), ("--fps", rate), ("--frames", frames)) if v is not None]
    if len(modes) > 1:
        raise click.UsageError(f"choose one sampling mode, not {' and '.join(modes)}")
    from detector.device import amp_enabled

    device = device_option(device)
    try:
        det = load(detector_dir, device=device)
    except ArtifactError as e:
        raise click.BadParameter(str(e), param_hint="--detector") from None
    det.amp = amp_enabled(det.device, amp)
    files = list_videos(paths)
    if not files:
        raise click.UsageError("no video files found in " + ", ".join(map(str, paths)))
    cfg = VideoConfig(every=every, fps=rate, frames=frames, faces=faces, margin=margin, aggregate=aggregate,
                      flagged_min=flagged_min, batch_size=batch_size, annotate=annotate, all_tiles=all_tiles,
                      max_pixels=max_pixels, time_limit=time_limit, progress=not quiet, device=device,
                      out_of_domain=out_of_domain)
    from detector.video import analyze_videos

    def show(r) -> None:
        if r.status == "error":
            line = f"ERROR   {r.video}: {r.error}"
        else:
            score = "" if r.score is None else f" {r.aggregation}={r.score:.3f}"
            line = f"{r.verdict.upper():7s} {r.video}{score} ({r.n_frames} frames scored of {r.n_decoded} decoded)"
            if r.status == "warning":
                line += f"\n        warning: {r.error}"
        report.line(line)

    click.echo(f"{len(files)} video(s), sampling: {cfg.sampling}, scoring: "
               f"{'faces (margin x%g)' % margin if faces else 'tiles of %dpx' % det.spec.input_size}, "
               f"threshold {det.spec.threshold:.3f}", err=True)
    results = analyze_videos(files, det, cfg, out_dir, on_result=show)
    bad = sum(r.status != "ok" for r in results)
    fake = sum(r.verdict == "fake" for r in results)
    ood = sum(r.verdict == "out_of_domain" for r in results)
    click.echo(f"{len(results)} video(s): {fake} fake, {sum(r.verdict == 'real' for r in results)} real, "
               f"{ood} out of domain, {sum(r.status == 'error' for r in results)} error(s), "
               f"{sum(r.status == 'warning' for r in results)} warning(s) -> {out_dir}/videos.csv, frames.csv",
               err=True)
    if ood:
        click.echo(OOD_SENTENCE.format(n=ood), err=True)
    report.done({"command": "video", "out": out_dir, "videos": len(results), "fake": fake,
                 "real": sum(r.verdict == "real" for r in results), "out_of_domain": ood,
                 "errors": sum(r.status == "error" for r in results),
                 "warnings": sum(r.status == "warning" for r in results),
                 "results": [{k: v for k, v in jsonable(r).items() if k != "outputs"} for r in results]})
    if bad:
        sys.exit(1)
    if ood:
        sys.exit(EXIT_OUT_OF_DOMAIN)
