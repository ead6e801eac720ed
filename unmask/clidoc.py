"""The CLI reference in README.md, generated from ``--help`` (tests/test_readme.py keeps it in sync).

Regenerate with: ``python -m unmask.clidoc --write README.md``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def _walk(cmd: click.Command, path: list[str]):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            yield from _walk(cmd.commands[name], path + [name])


def reference() -> str:
    """Markdown: one ``--help`` block per command, in command-tree order."""
    from unmask.cli import main

    parts = []
    for path, cmd in _walk(main, ["unmask"]):
        ctx = click.Context(cmd, info_name=" ".join(path), terminal_width=100, max_content_width=100,
                            help_option_names=["-h", "--help"])
        text = cmd.get_help(ctx).rstrip()
        parts.append(f"#### `{' '.join(path)}`\n\n```text\n{text}\n```\n")
    return "\n".join(parts)


def splice(readme: str) -> str:
    """Replace what lies between the markers in ``readme`` with the current reference."""
    head, sep, rest = readme.partition(START)
    if not sep or END not in rest:
        raise ValueError(f"README has no {START} ... {END} section")
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{reference()}\n{END}{tail}"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        p = Path(sys.argv[2])
        from detector.atomic import write_text

        write_text(p, splice(p.read_text()))
    else:
        print(reference())
