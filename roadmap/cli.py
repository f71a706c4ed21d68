"""The `roadmap` command: one console script, one subcommand per job.

Subcommands come from the entry points of group `roadmap.commands` (pyproject.toml), taken in
the order of their names: each names a function `register(subparsers)` that adds its parsers
and sets `func` on them;
`func(args)` returns the exit status. So this package names none of the modules that train,
sweep or plot, and another installed package can add a command the same way.

Two kinds of error (roadmap/errors.py): a `UserError` (a bad option, spec, recipe, config or
record) or an OSError (the environment's: a missing path, a read-only or full disk) is one line,
`roadmap CMD: error: ...`, exit status 2. Any other exception is a bug: its traceback, then one
line `roadmap CMD: internal error: TYPE: ...`, exit status 1. A command that fails later, at
work, says so itself and returns 1 (`roadmap train`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import entry_points

from roadmap.errors import UserError, describe_error

COMMAND_GROUP = "roadmap.commands"


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every installed command's subcommands."""
    parser = argparse.ArgumentParser(
        prog="roadmap",
        description="The ResNet -> ConvNeXt modernization roadmap: build, train, sweep, plot.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = entry_points(group=COMMAND_GROUP)
    if not commands:
        raise SystemExit(
            f"roadmap: no commands are installed (entry points {COMMAND_GROUP!r}); "
            "install the project: pip install -e ."
        )
    for command in sorted(commands, key=lambda c: c.name):
        command.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `roadmap` console script."""
    if hasattr(signal, "SIGPIPE"):  # `roadmap steps | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, OSError) as err:
        print(f"roadmap {args.command}: error: {describe_error(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: keep its traceback, then say what it was in one line
        traceback.print_exc()
        first = (describe_error(err).strip().splitlines() or [""])[0]
        summary = f"{type(err).__name__}: {first}".rstrip(": ")
        print(f"roadmap {args.command}: internal error: {summary}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
