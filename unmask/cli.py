"""The ``unmask`` command line. Each command group lives in its own ``cmd_*`` module.

Exit codes: 0 done; 1 done, but some inputs were unreadable (each has its own error row);
2 usage error (bad option, missing file); 3 failed (the work could not be done).
"""
from __future__ import annotations

import click

from detector import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
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


def _register() -> None:
    from . import cmd_data, cmd_eval

    main.add_command(cmd_data.data)
    main.add_command(cmd_data.demo)
    main.add_command(cmd_eval.eval_cmd)
    main.add_command(cmd_eval.eval_matrix)


_register()
