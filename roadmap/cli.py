"""The `roadmap` command: one console script, one subcommand per job.

Each command module exposes `register(subparsers)`, which adds its parsers and sets `func` on
them; `func(args)` returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence

# Modules that add subcommands, in the order `roadmap --help` lists them.
COMMAND_MODULES = (
    "roadmap.commands",
    "experiments.train_cli",
    "experiments.bench_cli",
    "analysis.cli",
    "experiments.sweep_cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command module's subcommands."""
    parser = argparse.ArgumentParser(
        prog="roadmap",
        description="The ResNet -> ConvNeXt modernization roadmap: build, train, sweep, plot.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `roadmap` console script."""
    if hasattr(signal, "SIGPIPE"):  # `roadmap steps | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        print(f"roadmap {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
