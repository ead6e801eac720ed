"""What every ``cmd_*`` module shares: the exit codes, :func:`fail`, the --device/--amp help and the
--device resolver.

Kept apart from :mod:`unmask.cli` (which imports every ``cmd_*`` module) so that importing a
``cmd_*`` module on its own does not go round in a circle.
"""
from __future__ import annotations

import sys
from typing import NoReturn

import click

__all__ = ["EXIT_OK", "EXIT_UNREADABLE", "EXIT_USAGE", "EXIT_FAILED", "EXIT_OUT_OF_DOMAIN", "fail", "DEVICE_HELP",
           "AMP_HELP", "device_option", "cap_threads", "out_of_domain_option", "OOD_SENTENCE", "OOD_EXIT_SHARE"]

EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
#: Done, but many inputs lie outside the detector's domain (their verdicts say so, not real/fake).
EXIT_OUT_OF_DOMAIN = 4
#: scan exits 4 when more than this share of files is out of domain: the domain threshold passes 99%
#: of in-domain images, so a few per hundred are expected in any large scan of familiar images.
OOD_EXIT_SHARE = 0.05
OOD_SENTENCE = ("out of domain: {n} input(s) are unlike the real images this detector was trained on (colour, size "
                "or content), so its score says nothing reliable about them; they are not counted as real or fake")


def out_of_domain_option(f):
    """``--out-of-domain flag|score|skip``, shared by scan, video and eval."""
    return click.option("--out-of-domain", "out_of_domain", type=click.Choice(["flag", "score", "skip"]),
                        default="flag", show_default=True,
                        help="Inputs outside the detector's domain: label them out_of_domain (flag), keep their "
                             "real/fake label (score), or leave them out (skip).")(f)
DEVICE_HELP = "auto, cpu, cuda or cuda:N (under torchrun, auto/cuda = this rank's GPU)."
AMP_HELP = "Mixed precision (bfloat16 autocast) on CUDA; ignored with a note on CPU."


def fail(msg: str) -> NoReturn:
    """``error: MSG`` on stderr and exit code 3 (the work could not be done)."""
    click.echo(f"error: {msg}", err=True)
    sys.exit(EXIT_FAILED)


def device_option(spec: str) -> str:
    """The ``--device`` value resolved (``auto`` -> a concrete device); a bad one is a usage error naming it."""
    from detector.device import resolve_device

    try:
        return str(resolve_device(spec))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--device") from None


def cap_threads(limit: int) -> None:
    """Lower torch's CPU thread count to at most ``limit`` (never below 1)."""
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), limit)))
