"""`roadmap sweep`, `roadmap status` and `roadmap cancel`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from roadmap.steps import DEFAULT_TRACK, TRACKS
from roadmap.table import align_columns


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `sweep`, `status` and `cancel` subcommands."""
    p = sub.add_parser(
        "sweep",
        help="train steps x seeds: one run each, through submitit (local, slurm or debug)",
        description="Plan one run per (step, seed) under ROOT/TRACK/NN_STEP/seedK, validate "
        "everything, write each config, then submit. Done runs are skipped; failed ones rerun "
        "only with --retry-failed; pending/running ones are left alone.",
    )
    p.add_argument("--track", default=DEFAULT_TRACK, choices=list(TRACKS))
    p.add_argument(
        "--steps", default="all", help="all (default), on-path, or NAME,NAME,..."
    )
    p.add_argument(
        "--seeds", default="0,1,2", help="comma list or range (default 0,1,2)"
    )
    p.add_argument(
        "--preset", required=True, help="recipe preset: paper, original, proxy, smoke"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="recipe.FIELD=VALUE",
        help="override a recipe field (repeatable), e.g. --set recipe.epochs=5",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="ImageFolder root (default: the preset's built-in dataset)",
    )
    p.add_argument("--root", required=True, type=Path, help="output root of the sweep")
    p.add_argument("--executor", default="local", choices=["local", "slurm", "debug"])
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
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan, resources and estimated device-hours; submit nothing",
    )
    p.add_argument("--retry-failed", action="store_true", help="rerun runs that failed")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "status", help="a sweep's runs, step x seed: done, running, pending, ..."
    )
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--track", default=None, choices=list(TRACKS))
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("cancel", help="stop a sweep's pending and running jobs")
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--track", default=None, choices=list(TRACKS))
    p.add_argument(
        "--now", action="store_true", help="do not ask running jobs to checkpoint first"
    )
    p.set_defaults(func=cmd_cancel)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Validate, plan, print; then submit unless --dry-run."""
    from experiments.sweep import Request, estimate, make_plan
    from experiments.sweep_launch import launch
    from experiments.sweep_local import local_slots

    bench = args.bench
    if bench is None and (args.root / "bench.csv").is_file():
        bench = str(args.root / "bench.csv")
    request = Request(
        root=args.root,
        preset=args.preset,
        track=args.track,
        steps=args.steps,
        seeds=args.seeds,
        data=args.data,
        overrides=tuple(args.overrides),
        executor=args.executor,
        profile=args.profile,
        retry_failed=args.retry_failed,
        jobs=args.jobs,
        bench=bench,
        dry_run=args.dry_run,
    )
    plan = make_plan(request)
    slots = local_slots(args.jobs) if args.executor == "local" else []
    threads = slots[0].threads if slots else plan.profile.threads
    est = estimate(plan, train_images(plan), max(1, len(slots)), threads)
    print(format_plan(plan, est, slots, verbose=args.dry_run), flush=True)
    if args.dry_run:
        return 0
    return launch(plan)


def train_images(plan: Any) -> int:
    """Training images of one epoch of the plan's dataset."""
    from experiments.data import dataset_size

    return int(dataset_size(plan.recipe, plan.request.data))


def format_plan(plan: Any, est: Any, slots: list, verbose: bool = False) -> str:
    """The plan in words: runs, what is skipped, resources per job, the estimate."""
    req, runs = plan.request, plan.runs
    steps = list(dict.fromkeys(r.step.name for r in runs))
    seeds = list(dict.fromkeys(r.seed for r in runs))
    act = {a: sum(r.action == a for r in runs) for a in ("submit", "retry", "skip")}
    skipped = {
        s: sum(r.action == "skip" and r.state.status == s for r in runs)
        for s in ("done", "pending", "running", "failed")
    }
    lines = [
        f"sweep {req.track} / preset {req.preset}: {len(steps)} step(s) x {len(seeds)} seed(s) "
        f"= {len(runs)} runs under {req.root}",
        f"  to submit: {act['submit'] + act['retry']} ({act['submit']} new or unfinished, "
        f"{act['retry']} failed to retry); skipped: {skipped['done']} done, "
        f"{skipped['pending'] + skipped['running']} pending/running, {skipped['failed']} failed"
        + (" (rerun with --retry-failed)" if skipped["failed"] else ""),
    ]
    n = len(plan.to_run)
    if req.executor == "local":
        gpus = f", GPUs {list(slots[0].gpus)}" if slots and slots[0].gpus else ""
        lines.append(
            f"  executor local (this machine, {os.cpu_count()} cores): {len(slots)} job(s) at "
            f"once, each 1 process with {slots[0].threads} torch thread(s){gpus}"
        )
    elif req.executor == "slurm":
        p = plan.profile
        lines.append(
            f"  executor slurm, profile {p.path}: 1 job array of {n} task(s), at most "
            f"{min(n, p.array_parallelism) if n else p.array_parallelism} at once; "
            f"per job: {p.describe()}; requeued at most {p.max_requeues} time(s)"
        )
    else:
        lines.append("  executor debug: one run after another in this process")
    lines.extend(f"  {note}" for note in plan.notes)
    if n:
        wall = (
            f", about {_clock(est.wall_hours)} of wall time" if est.wall_hours else ""
        )
        mean = sum(est.img_s.values()) / len(est.img_s) if est.img_s else 0
        lines.append(
            f"  estimate: {_hours(est.hours)} {est.device}-hours{wall} ({n} runs x "
            f"{plan.recipe.epochs:g} epochs x {est.images_per_run / plan.recipe.epochs:,.0f} "
            f"images at ~{mean:,.1f} img/s per job, {est.devices_per_job} {est.device}(s) per "
            "job; start-up and evaluation not counted)"
        )
        lines.append(f"  throughput: {est.source}")
    if verbose:
        lines.append("")
        lines.append(f"  {'run':<44} {'state':<10} action")
        for r in runs:
            rel = f"{r.run_dir.parent.name}/{r.run_dir.name}"
            lines.append(f"  {rel:<44} {r.state.status:<10} {r.action}")
    return "\n".join(lines)


def _hours(hours: float) -> str:
    """Hours as 1,234 (from 100 h), 12.3 or 0.25."""
    if hours >= 100:
        return f"{hours:,.0f}"
    return f"{hours:.1f}" if hours >= 10 else f"{hours:.2g}"


def _clock(hours: float) -> str:
    """Hours as 3h05m or 12m."""
    minutes = max(1, int(round(hours * 60)))
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def cmd_status(args: argparse.Namespace) -> int:
    """Print the step x seed table (or JSON) of every track under --root."""
    from experiments.sweep_status import sweep_states, totals

    states = sweep_states(args.root, args.track)
    if args.format == "json":
        print(
            json.dumps(
                {"runs": [s.as_dict() for s in states], "totals": dict(totals(states))},
                indent=1,
                default=str,
            )
        )
        return 0
    if not states:
        print(f"no runs under {args.root}")
        return 0
    print(format_status(states, args.root))
    return 0


def format_status(states: list, root: Path) -> str:
    """One table per track: a row per step, a column per seed; reasons as footnotes."""
    from experiments.sweep_status import STATUSES, totals

    out, notes = [], []
    for track in dict.fromkeys(s.track for s in states):
        rows = [s for s in states if s.track == track]
        seeds = sorted({s.seed for s in rows})
        steps = list(dict.fromkeys((s.index, s.step) for s in rows))
        cell = {}
        for s in rows:
            text = s.status + (
                f" {s.detail}" if s.status == "done" and s.detail else ""
            )
            if s.status == "failed" or (s.status == "missing" and s.detail):
                notes.append(f"{s.run_dir.parent.name}/{s.run_dir.name}: {s.detail}")
                text += f" [{len(notes)}]"
            if s.job_id and s.executor != "debug":
                text += f" ({s.job_id})"
            if s.requeues:
                text += f" r{s.requeues}"
            cell[(s.step, s.seed)] = text
        head = ["#", "step", *[f"seed{k}" for k in seeds]]
        body = [
            [f"{i:02d}", name, *[cell.get((name, k), "-") for k in seeds]]
            for i, name in steps
        ]
        out.append(f"{track} under {root}")
        out.extend(align_columns(head, body).splitlines())
        out.append("")
    count = totals(states)
    out.append(f"{len(states)} runs: " + ", ".join(f"{count[k]} {k}" for k in STATUSES))
    requeues = sum(s.requeues for s in states)
    arrays = sorted(
        {s.job_id.split("_")[0] for s in states if s.executor == "slurm" and s.job_id}
    )
    extra = [f"requeues: {requeues}"] if requeues else []
    extra += [f"Slurm jobs: {', '.join(arrays)}"] if arrays else []
    if extra:
        out.append("; ".join(extra))
    if notes:
        out.append("")
        out.extend(f"[{i}] {note}" for i, note in enumerate(notes, 1))
    out.append("cells: done <top-1> (job id); rN: requeued N times; [n]: reason below")
    return "\n".join(out)


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel the sweep's pending and running jobs."""
    from experiments.sweep_launch import cancel

    if not args.root.is_dir():
        raise FileNotFoundError(f"no sweep under {args.root}: not a directory")
    cancel(args.root, args.track, now_=args.now)
    return 0
