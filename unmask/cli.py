"""The ``unmask`` command line. Each command group lives in its own ``cmd_*`` module.

Exit codes: 0 done; 1 done, but some inputs were unreadable (each has its own error row);
2 usage error (bad option, missing file); 3 failed (the work could not be done).
"""
from __future__ import annotations

import os
import sys

import click

from detector import __version__

from .options import EXIT_FAILED, EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE

__all__ = ["main", "EXIT_OK", "EXIT_UNREADABLE", "EXIT_USAGE", "EXIT_FAILED"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class UnmaskGroup(click.Group):
    """A click group that turns an unexpected exception into a one-line error and exit code 3.

    Without this, a traceback would exit with 1, which here means "done, some inputs unreadable".
    Set ``UNMASK_DEBUG=1`` to get the traceback instead.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit,
                KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - the last line of defence of the CLI
            if os.environ.get("UNMASK_DEBUG"):
                raise
            click.echo(f"unmask: error: {type(e).__name__}: {e}", err=True)
            sys.stderr.flush()
            ctx.exit(EXIT_FAILED)


@click.group(cls=UnmaskGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="unmask")
def main() -> None:
    """unmask: train a GAN, harden its discriminator into a deepfake detector, and use it.

    \b
    Typical flow:
      unmask gan train --out runs/gan           # the adversary
      unmask harden runs/gan --out runs/det     # the detector artifact
      unmask scan photos/ --detector runs/det --out results.csv
      unmask video clip.mp4 --detector runs/det --out runs/video
      unmask eval --detector runs/det --real real/ --fake fake/ --out runs/report
    """
    from detector.video.read import quiet_native_logs

    quiet_native_logs()  # before any command touches OpenCV: every video problem gets a row instead


def _register() -> None:
    from . import cmd_data, cmd_demo, cmd_detector, cmd_eval, cmd_gan, cmd_scan, cmd_video

    main.add_command(cmd_data.data)
    main.add_command(cmd_demo.demo)
    main.add_command(cmd_gan.gan)
    main.add_command(cmd_video.video)
    for cmd in (cmd_detector.harden, cmd_scan.export, cmd_scan.scan, cmd_detector.retrain):
        main.add_command(cmd)
    main.add_command(cmd_eval.eval_cmd)
    main.add_command(cmd_eval.eval_matrix)
    main.add_command(cmd_eval.eval_lofo)
    from .cmd_serve import serve  # the server stack (serve extra) is imported only when it runs
    main.add_command(serve)


_register()
