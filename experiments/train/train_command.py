"""`roadmap train`: check a run and write its config, then train it (argparse only)."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from pathlib import Path

from experiments.recipe import PRESETS
from experiments.runs import records, runstate
from roadmap.errors import UserError
from roadmap.steps import DEFAULT_TRACK, TRACKS

SHOWN_LEFT_OUT = 3  # files left out by recipe.skip_bad_images named when a run starts


def add_recipe_overrides(parser: argparse.ArgumentParser) -> None:
    """The `--set recipe.FIELD=VALUE` option (train and sweep)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="recipe.FIELD=VALUE",
        help="override a recipe field (repeatable), e.g. --set recipe.epochs=5",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    p = sub.add_parser(
        "train",
        help="train one roadmap step with a recipe preset and write its run record",
        description="Train one step and write <out>/config.json, log.jsonl and result.json. "
        "Running the same command again resumes from the newest checkpoint (or returns at "
        "once if the run is done).",
    )
    p.add_argument("--step", required=True, help="step name (see `roadmap steps`)")
    p.add_argument("--track", default=DEFAULT_TRACK, choices=list(TRACKS))
    p.add_argument("--preset", default="smoke", choices=list(PRESETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument(
        "--data",
        default=None,
        help="ImageFolder root with train/ and val/ (default: the built-in Shapes dataset)",
    )
    add_recipe_overrides(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Prepare the run, train it; 0 when done, 1 when failed, 75 when checkpointed on a signal.

    Problems found before any work (arguments, data, a read-only or full `--out`, another
    trainer on the run) raise, and `roadmap` prints them as one line with exit status 2.
    """
    # Here, not at the top: `roadmap --help` and the other commands import no torch.
    from experiments.train.command_life import EXIT_PREEMPTED, RunFailed, run
    from experiments.train.config import prepare_run
    from experiments.train.distributed import launch_rank
    from experiments.train.run_output import pct
    from experiments.train.signals import StopRequested

    run_dir = prepare_run(
        args.track,
        args.step,
        args.seed,
        args.preset,
        args.out,
        args.data,
        args.overrides,
        write=launch_rank() == 0,  # under torchrun rank 0 alone writes the run's files
    )
    if launch_rank() == 0:
        _say_left_out(run_dir)
    done = runstate.done_result(run_dir)
    if done is not None:
        print(f"{run_dir} is already done: top-1 {pct(done['top1'])} ({records.RESULT})")
        return 0
    try:
        result = run(run_dir, checkpoint_signals=(signal.SIGUSR2, signal.SIGTERM))
    except StopRequested as stop:
        print(f"stopped by {stop}; run the same command to resume", file=sys.stderr)
        return EXIT_PREEMPTED
    except RunFailed as failed:
        cause = failed.__cause__
        if cause is not None and not isinstance(cause, OSError | UserError):
            traceback.print_exception(cause, file=sys.stderr)  # a bug: show where
        return _failed(str(failed))
    return 0 if result["status"] == "done" else _failed(result["reason"])


def _say_left_out(run_dir: Path) -> None:
    """Print the files `recipe.skip_bad_images` leaves out of the run (its config lists them)."""
    left = (records.read_config(run_dir) or {}).get("excluded_images") or []
    if left:
        shown = ", ".join(e["problem"] for e in left[:SHOWN_LEFT_OUT])
        more = f" and {len(left) - SHOWN_LEFT_OUT} more" if len(left) > SHOWN_LEFT_OUT else ""
        print(
            f"recipe.skip_bad_images: {len(left)} bad file(s) or folder(s) left out "
            f"({records.CONFIG} lists them): {shown}{more}",
            flush=True,
        )


def _failed(reason: str) -> int:
    """Say that the run failed, in one line; exit status 1."""
    print(f"roadmap train: run failed: {reason}", file=sys.stderr, flush=True)
    return 1
