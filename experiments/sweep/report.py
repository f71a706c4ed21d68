"""What `roadmap sweep` and `roadmap status` print: the plan with its estimate, the states."""

from __future__ import annotations

import os
from pathlib import Path

from experiments.runs.runstate import STATUSES, RunState, totals
from experiments.sweep.estimate import Estimate
from experiments.sweep.local import Slot
from experiments.sweep.plan import Plan
from roadmap.table import align_columns


def format_plan(plan: Plan, est: Estimate, slots: list[Slot], verbose: bool = False) -> str:
    """The plan in words: runs, what is skipped, resources per job, the estimate."""
    req, runs = plan.request, plan.runs
    steps = list(dict.fromkeys(r.step.name for r in runs))
    seeds = list(dict.fromkeys(r.seed for r in runs))
    act = {a: sum(r.action == a for r in runs) for a in ("submit", "resume", "retry")}
    skipped = {
        s: sum(r.action == "skip" and r.state.status == s for r in runs)
        for s in ("done", "pending", "running", "failed", "unreadable")
    }
    lines = [
        f"sweep {req.track} / preset {req.preset}: {len(steps)} step(s) x {len(seeds)} seed(s) "
        f"= {len(runs)} runs under {req.root}",
        f"  to submit: {sum(act.values())} ({act['submit']} new, {act['resume']} interrupted "
        f"to resume, {act['retry']} failed to retry); skipped: {skipped['done']} done, "
        f"{skipped['pending'] + skipped['running']} pending/running, {skipped['failed']} failed"
        + (" (rerun with --retry-failed)" if skipped["failed"] else "")
        + (f", {skipped['unreadable']} unreadable" if skipped["unreadable"] else ""),
        _executor_line(plan, slots),
    ]
    lines.extend(f"  {note}" for note in plan.notes)
    lines.extend(
        f"  unreadable, left as it is (fix or remove the file, then run again): {r.state.detail}"
        for r in runs
        if r.state.status == "unreadable"
    )
    if plan.to_run:
        lines.extend(_estimate_lines(plan, est))
    if verbose:
        lines.append("")
        lines.append(f"  {'run':<44} {'state':<11} action")
        for r in runs:
            rel = f"{r.run_dir.parent.name}/{r.run_dir.name}"
            lines.append(f"  {rel:<44} {r.state.status:<11} {r.action}")
    return "\n".join(lines)


def _executor_line(plan: Plan, slots: list[Slot]) -> str:
    """Where the jobs run and with what resources each."""
    executor, n = plan.request.executor, len(plan.to_run)
    if executor == "local":
        gpus = f", GPUs {list(slots[0].gpus)}" if slots and slots[0].gpus else ""
        return (
            f"  executor local (this machine, {os.cpu_count()} cores): {len(slots)} job(s) at "
            f"once, each 1 process with {slots[0].threads} torch thread(s){gpus}"
        )
    if executor == "slurm":
        profile = plan.profile
        at_once = min(n, profile.array_parallelism) if n else profile.array_parallelism
        return (
            f"  executor slurm, profile {profile.path}: 1 job array of {n} task(s), at most "
            f"{at_once} at once; per job: {profile.describe()}; requeued at most "
            f"{profile.max_requeues} time(s)"
        )
    return "  executor debug: one run after another in this process"


def _estimate_lines(plan: Plan, est: Estimate) -> list[str]:
    """The device-hours estimate and where its throughput came from."""
    n, epochs = len(plan.to_run), plan.recipe.epochs
    wall = f", about {_clock(est.wall_hours)} of wall time" if est.wall_hours else ""
    mean = sum(est.img_s.values()) / len(est.img_s) if est.img_s else 0
    return [
        f"  estimate: {_hours(est.hours)} {est.device}-hours{wall} ({n} runs x "
        f"{epochs:g} epochs x {est.images_per_run / epochs:,.0f} "
        f"images at ~{mean:,.1f} img/s per job, {est.devices_per_job} {est.device}(s) per "
        "job; start-up and evaluation not counted)",
        f"  throughput: {est.source}",
    ]


def _hours(hours: float) -> str:
    """Hours as 1,234 (from 100 h), 12.3 or 0.25."""
    if hours >= 100:
        return f"{hours:,.0f}"
    return f"{hours:.1f}" if hours >= 10 else f"{hours:.2g}"


def _clock(hours: float) -> str:
    """Hours as 3h05m or 12m."""
    minutes = max(1, int(round(hours * 60)))
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def format_status(states: list[RunState], root: Path) -> str:
    """One table per track: a row per step, a column per seed; reasons as footnotes."""
    out, notes = [], []
    for track in dict.fromkeys(s.track for s in states):
        rows = [s for s in states if s.track == track]
        seeds = sorted({s.seed for s in rows})
        steps = list(dict.fromkeys((s.index, s.step) for s in rows))
        cell = {(s.step, s.seed): _cell(s, notes) for s in rows}
        head = ["#", "step", *[f"seed{k}" for k in seeds]]
        body = [
            [
                f"{i:02d}" if i else "--",
                name,
                *[cell.get((name, k), "-") for k in seeds],
            ]
            for i, name in steps
        ]
        out.append(f"{track} under {root}")
        out.extend(align_columns(head, body).splitlines())
        out.append("")
    count = totals(states)
    out.append(f"{len(states)} runs: " + ", ".join(f"{count[k]} {k}" for k in STATUSES))
    requeues = sum(s.requeues for s in states)
    arrays = sorted({s.job_id.split("_")[0] for s in states if s.executor == "slurm" and s.job_id})
    extra = [f"requeues: {requeues}"] if requeues else []
    extra += [f"Slurm jobs: {', '.join(arrays)}"] if arrays else []
    if extra:
        out.append("; ".join(extra))
    if notes:
        out.append("")
        out.extend(f"[{i}] {note}" for i, note in enumerate(notes, 1))
    out.append(
        "cells: done <top-1> (job id); interrupted @N: resumes from optimizer step N (@0: "
        "from the start); rN: requeued N times; [n]: reason below"
    )
    return "\n".join(out)


def _cell(s: RunState, notes: list[str]) -> str:
    """A run's table cell; its reason and record problems go to `notes` as footnotes."""
    text = s.status
    if s.status == "done" and s.detail:
        text += f" {s.detail}"
    if s.status == "interrupted":
        text += f" @{s.checkpoint or 0}"
    name = f"{s.run_dir.parent.name}/{s.run_dir.name}"
    said = s.status in ("failed", "interrupted", "unreadable", "missing")
    for note in ([s.detail] if said and s.detail else []) + s.notes:
        notes.append(f"{name}: {note}")
        text += f" [{len(notes)}]"
    if s.job_id and s.executor != "debug":
        text += f" ({s.job_id})"
    if s.requeues:
        text += f" r{s.requeues}"
    return text
