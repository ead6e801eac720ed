"""``unmask scan | export``: use a detector artifact on files, or ship it as ONNX / torch.export."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .cmd_detector import _amp, _load_detector, _threads
from .options import (AMP_HELP, DEVICE_HELP, EXIT_OK, EXIT_OUT_OF_DOMAIN, EXIT_UNREADABLE, OOD_EXIT_SHARE,
                      OOD_SENTENCE, fail, out_of_domain_option)
from .output import Report, long_work

__all__ = ["scan", "export"]


# ---------------------------------------------------------------------------- scan


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--detector", "detector_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="Detector directory (from `unmask harden`).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="results.csv or results.jsonl; one row per file, written as it goes.")
@click.option("--workers", type=click.IntRange(0), default=2, show_default=True, help="Decoding processes.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True, help="Files per batch.")
@click.option("--resume", is_flag=True, help="Continue an interrupted scan into the same --out.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--top", type=click.IntRange(0), default=10, show_default=True,
              help="Show the N most suspicious files at the end.")
@click.option("--all-files", is_flag=True, help="Scan every file, not only image extensions.")
@click.option("--device", default="cpu", show_default=True, help=DEVICE_HELP)
@click.option("--amp", is_flag=True, help=AMP_HELP)
@out_of_domain_option
@long_work
def scan(paths, detector_dir: Path, out: Path, workers: int, batch_size: int, resume: bool, overwrite: bool,
         top: int, all_files: bool, device: str, amp: bool, quiet: bool, report: Report, out_of_domain: str) -> None:
    """Scan image files and folders (recursively) and write one row per file.

    Columns: path, score (calibrated probability of fake), label (real | fake | out_of_domain |
    error), threshold (the file's own: a tiled image's is its aggregate's, at the same false-positive
    rate), error (the reason a file could not be read), policy (resize / crop / tile as applied),
    n_tiles, width, height, in_domain, domain_score (above 1: unlike the detector's training reals).
    Unreadable files get label=error and the scan goes on; out-of-domain files keep their score but
    are labelled out_of_domain and left out of --top (see --out-of-domain).

    \b
    Exit codes:
      0  done, every file scored
      1  done, but some files were unreadable (see their error rows)
      2  usage error (bad option, missing path, invalid detector, output exists without --resume)
      3  failed (the scan could not be carried out)
      4  done, every file read, but over 5% of them lie outside the detector's domain
         (about 1% of images like its training reals fall outside by construction)

    \b
    Example:
      unmask scan photos/ --detector runs/det --out results.csv
      unmask scan a.jpg b/ --detector runs/det --out results.jsonl --workers 4 --top 20
      unmask scan photos/ --detector runs/det --out results.csv --resume   # after an interruption
      torchrun --nproc_per_node 4 -m unmask scan photos/ --detector runs/det --out results.csv --device auto

    Under torchrun the files are shared round-robin over the processes; each writes a part file
    beside --out and rank 0 merges them into --out (every file exactly once); --resume continues
    every shard, under any number of processes.
    """
    from detector import distributed
    from detector.scan import ScanConfig, ScanOutputError, scan as do_scan

    _threads()
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise click.BadParameter(f"no such file or folder: {missing[0]}", param_hint="PATHS")
    det = _load_detector(detector_dir, device)
    det.amp = _amp(det.device, amp)
    distributed.init(det.device)
    try:
        cfg = ScanConfig(batch_size=batch_size, workers=workers, resume=resume, overwrite=overwrite, top=top,
                         extensions=None if all_files else ScanConfig().extensions, progress=not quiet,
                         device=str(det.device), amp=det.amp, out_of_domain=out_of_domain)
        r = do_scan(list(paths), det, out, cfg, log=lambda m: click.echo(m, err=True))
    except (ScanOutputError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    except OSError as e:
        fail(f"scan failed: {e}")
    finally:
        main_rank = distributed.is_main()
        distributed.cleanup()
    if not main_rank:
        return
    rate = f", {r.files_per_s:.0f} files/s" if r.n_new else ""
    ood = f"out of domain: {r.n_ood}  " if det.trust is not None and det.trust.domain is not None else ""
    report.line(f"files: {r.n_files} ({r.n_new} scanned now, {r.n_resumed} from before)  flagged fake: {r.n_fake}  "
                f"{ood}errors: {r.n_errors}  threshold: {det.spec.threshold:.4f}  [{r.seconds:.1f}s{rate}]")
    if r.n_ood:
        report.line(OOD_SENTENCE.format(n=r.n_ood) if out_of_domain != "score" else
                    f"note: {r.n_ood} file(s) lie outside the detector's domain; their real/fake labels are kept "
                    "(--out-of-domain score) but say little")
    if r.top:
        report.line(f"top {len(r.top)} most suspicious{' in-domain' if r.n_ood and out_of_domain != 'score' else ''}:")
        for s, p in r.top:
            report.line(f"  {s:.4f}  {p}")
    report.line(f"results: {out}")
    report.done({"command": "scan", "results": out, "files": r.n_files, "scanned": r.n_new, "resumed": r.n_resumed,
                 "fake": r.n_fake, "real": r.n_real, "out_of_domain": r.n_ood, "errors": r.n_errors,
                 "threshold": det.spec.threshold, "seconds": r.seconds,
                 "files_per_s": r.files_per_s if r.n_new else None,
                 "top": [{"score": s, "path": p} for s, p in r.top]})
    ood_exit = r.n_ood > OOD_EXIT_SHARE * r.n_files and out_of_domain != "score"
    sys.exit(EXIT_UNREADABLE if r.n_errors else EXIT_OUT_OF_DOMAIN if ood_exit else EXIT_OK)


# ---------------------------------------------------------------------------- export


@click.command()
@click.argument("detector_dir", metavar="DETECTOR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["onnx", "pt2"]), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--real", "real_source", default=None,
              help="Real images for the parity check (a folder); default: embedded held-out images.")
def export(detector_dir: Path, fmt: str, out: Path, real_source: str | None) -> None:
    """Export the detector to ONNX (dynamic batch) or a torch.export program (.pt2).

    The graph takes float32 (B, C, S, S) images in [0, 1] and returns `score` (calibrated
    probability of fake) and `logit`; normalisation and temperature are inside. Parity with the
    native detector is checked on real images (max abs difference <= 1e-4, printed); a
    FILE.json sidecar records the contract, threshold and resize/tiling policy.

    \b
    Example:
      unmask export runs/det --format onnx --out det.onnx
      unmask export runs/det --format pt2 --out det.pt2
    """
    from detector.export import export as do_export

    _threads()
    det = _load_detector(detector_dir)
    real = None
    if real_source:
        from detector.data import load_folder_images

        s = det.spec
        real, _ = load_folder_images([real_source], s.input_size, s.channels, s.policy, limit=64)
    try:
        r = do_export(det, out, fmt, real=real)
    except RuntimeError as e:
        fail(str(e))
    click.echo(f"wrote {r.path} ({fmt}); parity vs native on {r.n_inputs} inputs: max |score diff| "
               f"{r.max_abs_diff:.3g}, max |logit diff| {r.max_abs_diff_logit:.3g} (tolerance 1e-4)")
