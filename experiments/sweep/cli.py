"""`roadmap sweep`, `roadmap status` and `roadmap cancel` (argparse only)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from analysis.pooled import DEFAULT_MARGIN
from analysis.power import ALPHA
from experiments.recipe import PRESETS
from experiments.runs import declared, records
from experiments.runs.code_digest import mixed_code
from experiments.runs.runstate import RunState, sweep_states, totals
from experiments.submitit_private import job_outcome_error
from experiments.sweep import design_plan
from experiments.sweep.estimate import estimate
from experiments.sweep.launch import cancel, launch
from experiments.sweep.local import local_slots
from experiments.sweep.plan import EXECUTORS, Plan, Request, make_plan
from experiments.sweep.report import format_plan, format_status
from experiments.train.train_command import add_recipe_overrides
from roadmap.design_cli import add_design_options
from roadmap.designs import Design
from roadmap.errors import UserError
from roadmap.select import STEPS_HELP, split_words
from roadmap.steps import DEFAULT_TRACK, TRACKS


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `sweep`, `status` and `cancel` subcommands, and `design plan`."""
    _add_sweep(sub)
    design_plan.register(sub)
    p = sub.add_parser("status", help="a sweep's runs, step x seed: done, running, pending, ...")
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--track", default=None, choices=list(TRACKS))
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("cancel", help="stop a sweep's pending and running jobs")
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--track", default=None, choices=list(TRACKS))
    p.add_argument("--now", action="store_true", help="do not ask running jobs to checkpoint first")
    p.set_defaults(func=cmd_cancel)


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    """The `sweep` subcommand and its options."""
    p = sub.add_parser(
        "sweep",
        help=f"train steps x seeds: one run each, through submitit ({', '.join(EXECUTORS)})",
        description="Plan one run per (step, seed) under ROOT/TRACK/STEP/seedK (runs already "
        "under ROOT are found by their config, whatever their folder), validate everything, "
        "write each config, then submit. Done runs are skipped; interrupted ones resume from "
        "their checkpoint; failed ones rerun only with --retry-failed; pending, running and "
        "unreadable ones are left alone.",
    )
    p.add_argument("--track", default=DEFAULT_TRACK, choices=list(TRACKS))
    p.add_argument("--steps", nargs="+", default=["all"], help=STEPS_HELP)
    add_design_options(p)
    _add_declare_options(p)
    p.add_argument("--seeds", default="0,1,2", help="comma list or range (default 0,1,2)")
    p.add_argument("--preset", required=True, help=f"recipe preset: {', '.join(PRESETS)}")
    add_recipe_overrides(p)
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="ImageFolder root (default: the preset's built-in dataset)",
    )
    p.add_argument("--root", required=True, type=Path, help="output root of the sweep")
    _add_executor_options(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan, resources and estimated device-hours; submit nothing",
    )
    p.add_argument("--retry-failed", action="store_true", help="rerun runs that failed")
    p.set_defaults(func=cmd_sweep)


def _add_declare_options(p: argparse.ArgumentParser) -> None:
    """What a --design sweep declares before it runs (`experiments.runs.declared`)."""
    p.add_argument(
        "--declare",
        default=None,
        metavar="NAME",
        help="--design: the name it is declared under in ROOT/TRACK/designs (default: the design)",
    )
    p.add_argument(
        "--interactions",
        action="store_true",
        help="--design factorial: its two-way interactions are in the tested family too",
    )
    p.add_argument("--alpha", type=float, default=ALPHA, help=f"declared alpha (default {ALPHA})")
    p.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"declared equivalence margin, points of top-1 (default {DEFAULT_MARGIN})",
    )


def _add_executor_options(p: argparse.ArgumentParser) -> None:
    """Where the sweep's jobs run, and the throughput its estimate uses."""
    p.add_argument("--executor", default=EXECUTORS[0], choices=list(EXECUTORS))
    p.add_argument(
        "--profile",
        default=None,
        metavar="slurm/NAME.toml",
        help="Slurm cluster profile (with --executor slurm)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="local: jobs at once (default: one per GPU, else one per core)",
    )
    p.add_argument(
        "--bench",
        default=None,
        metavar="FILE.csv",
        help="`roadmap bench --out` CSV for the estimate (default ROOT/bench.csv)",
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    """Validate, plan, print; then submit unless --dry-run."""
    if args.design is None and (args.declare or args.interactions):
        raise UserError("--declare and --interactions need --design")
    bench = args.bench
    if bench is None and (args.root / "bench.csv").is_file():
        bench = str(args.root / "bench.csv")
    request = Request(
        root=args.root,
        preset=args.preset,
        track=args.track,
        steps=tuple(args.steps),
        seeds=args.seeds,
        data=args.data,
        overrides=tuple(args.overrides),
        executor=args.executor,
        profile=args.profile,
        retry_failed=args.retry_failed,
        jobs=args.jobs,
        bench=bench,
        dry_run=args.dry_run,
        design=args.design,
        factors=tuple(split_words(args.factors or "")),
        base=args.base,
        fraction=args.fraction,
    )
    plan = make_plan(request)
    slots = local_slots(args.jobs, plan.recipe) if args.executor == "local" else []
    threads = slots[0].threads if slots else plan.recipe.torch_threads(plan.profile.threads)
    est = estimate(plan, plan.data.train_images, max(1, len(slots)), threads)
    print(format_plan(plan, est, slots, verbose=args.dry_run), flush=True)
    if args.dry_run:
        if args.design is not None:
            where = declared.path_of(args.root, args.track, args.declare or args.design)
            print(f"dry run: nothing declared (the sweep declares the design in {where} first)")
        return 0
    for note in _declare(args, plan):  # before anything is submitted
        print(note, flush=True)
    return launch(plan)


def _declare(args: argparse.Namespace, plan: Plan) -> list[str]:
    """Declare the --design (once), then amend declarations whose seeds this sweep extends."""
    notes = []
    if args.design is not None:
        req = plan.request
        design = Design(args.design, req.track, req.factors, req.base, req.fraction)
        seeds = sorted({r.seed for r in plan.runs})
        content = declared.declaration(design, seeds, args.alpha, args.margin, args.interactions)
        notes.append(declared.declare(req.root, req.track, args.declare or args.design, content))
    runs = [(r.step.name, r.seed) for r in plan.to_run]
    return notes + declared.amend(plan.request.root, plan.request.track, runs)


def cmd_status(args: argparse.Namespace) -> int:
    """Print the step x seed table (or JSON) of every track under --root."""
    states = sweep_states(args.root, args.track, job_outcome_error)
    mixed = mixed_code_steps(states)
    if args.format == "json":
        runs = {"runs": [s.as_dict() for s in states], "totals": dict(totals(states))}
        print(json.dumps(runs | {"mixed_code": mixed}, indent=1, default=str))
        return 0
    if not states:
        print(f"no runs under {args.root}")
        return 0
    print(format_status(states, args.root))
    for row in mixed:
        print(f"mixed code: {row['track']}/{row['step']}: {row['detail']}")
    return 0


def mixed_code_steps(states: list[RunState]) -> list[dict[str, str]]:
    """The steps whose done runs trained with different code: track, step, how (`mixed_code`)."""
    codes: dict[tuple[str, str], dict[str, Any]] = {}
    for s in states:
        if s.status == "done":
            result = records.read_or_reason(records.read_result, s.run_dir)[0] or {}
            codes.setdefault((s.track, s.step), {})[f"seed{s.seed}"] = result.get("code")
    found = {key: mixed_code(runs) for key, runs in codes.items()}
    return [{"track": t, "step": s, "detail": d} for (t, s), d in found.items() if d]


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel the sweep's pending and running jobs."""
    if not args.root.is_dir():
        raise FileNotFoundError(f"no sweep under {args.root}: not a directory")
    cancel(args.root, args.track, now_=args.now)
    return 0
