"""Run states, one definition: where each run stands, from its records, its lock and its job.

- `done`: result.json says done.
- `failed`: the run itself failed: result.json says failed (non-finite loss, an exception, the
  requeue limit), or the user cancelled its job (`roadmap cancel`, Slurm's CANCELLED).
- `interrupted`: no result, and its job is gone (killed, out of memory, reboot, node failure,
  time limit, Ctrl-C on the local sweep), or its trainer ended without one: it resumes from
  its newest valid checkpoint (`checkpoint`: that optimizer step; None: from the start).
- `running`, `pending`: its job, or a live trainer holding its lock on this host, is at work
  or queued; a job that cannot be checked (another host, no sacct) counts as running.
- `missing`: never started (no job, or queued by a sweep that ended before starting it).
- `unreadable`: config.json, result.json or job.json cannot be parsed or has the wrong shape;
  the detail names the file and the reason. Nothing writes over it.

A run is named by its config (track, step, seed) wherever its folder is; a folder whose config
is unreadable is named from its path (`<track>/<step>/seed<k>`).
Training, the sweep and analysis all ask this module: `done_result`, `write_failure` and
`set_aside_failure`, `failure_reason`, `run_state` / `sweep_states` / `find_runs` (one run, a
root, a track's folders by identity). A done run whose spec its step no longer trains gets a
note (`same_run.spec_change`: analysis leaves it out, the sweep refuses it). It starts nothing.
Analysis reads the records themselves, never these states (analysis/run_rows.py).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.runs import records
from experiments.runs.same_run import spec_change
from experiments.runs.scheduler import (
    SACCT_GRACE_S,
    SACCT_UNAVAILABLE,
    SLURM_CANCELLED,
    SLURM_PENDING,
    SLURM_RUNNING,
    process_alive,
    sacct_states,
)
from roadmap.errors import UserError, describe_error
from roadmap.steps import step_names

STATUSES = (
    "done",
    "running",
    "pending",
    "interrupted",
    "failed",
    "unreadable",
    "missing",
)
ACTIVE = ("running", "pending")  # a job is on it: leave it alone
# The error a job left where its executor keeps its outcome (job.json's fields), if any: the
# sweep hands in submitit's reader (experiments/submitit_private.py); without one, none.
JobError = Callable[[dict[str, Any]], str | None]


def no_job_error(job: dict[str, Any]) -> str | None:
    """The `JobError` of callers that read no executor's outcome files."""
    return None


@dataclass
class RunState:
    """One run as `roadmap status` shows it."""

    run_dir: Path
    track: str
    step: str
    index: int  # the step's position in its track now (0: not a step of the track)
    seed: int
    status: str  # one of STATUSES
    # Top-1 when done, the reason when failed or unreadable, the scheduler's word otherwise.
    detail: str = ""
    job_id: str | None = None
    executor: str | None = None
    top1: float | None = None
    requeues: int = 0
    checkpoint: int | None = None  # optimizer step of the newest usable checkpoint
    resumable: bool = False  # not done, with a checkpoint to resume from
    notes: list[str] = field(default_factory=list)  # lines of its records that were skipped

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        out = dict(self.__dict__)
        out["run_dir"] = str(self.run_dir)
        return out


# ---- the result --------------------------------------------------------------------------------


def done_result(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's result if it says done, else None (an unreadable one raises, naming it)."""
    result = records.read_result(run_dir)
    return result if result is not None and result["status"] == "done" else None


def write_failure(
    run_dir: str | os.PathLike, reason: str, known: dict[str, Any] | None = None
) -> None:
    """Write a failed result.json (every result key; `known` ones filled) unless one exists."""
    if (Path(run_dir) / records.RESULT).exists():
        return
    result: dict[str, Any] = dict.fromkeys(records.RESULT_KEYS)
    result.update(finished=records.now())
    result.update(known or {})
    result.update(status="failed", reason=reason)
    records.write_result(run_dir, result)


def set_aside_failure(run_dir: str | os.PathLike) -> Path | None:
    """Keep a result as result.failed-<n>.json, so that the run runs again; its new path.

    `n` is one above the highest kept, so a kept failure is never overwritten (one deleted
    leaves a gap in the numbers, not a number to reuse).
    """
    run_dir = Path(run_dir)
    result = run_dir / records.RESULT
    if not result.exists():
        return None
    kept = (p.stem.removeprefix("result.failed-") for p in run_dir.glob("result.failed-*.json"))
    n = 1 + max((int(k) for k in kept if k.isdigit()), default=0)
    kept = run_dir / f"result.failed-{n}.json"
    result.rename(kept)
    return kept


def failure_reason(err: BaseException) -> str:
    """One line: `No space left on device (<path>)`, or the type and the message's last line."""
    if isinstance(err, OSError) and err.strerror:
        return describe_error(err)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".rstrip(": ")


# ---- one run ----------------------------------------------------------------------------------


def named_state(run_dir: Path) -> RunState:
    """A `missing` RunState named by the run's config, or by its path (then `unreadable`)."""
    config, problem = records.read_or_reason(records.read_config, run_dir)
    if config is not None:
        track, step, seed = config["track"], config["step"], config["seed"]
    else:
        track = run_dir.parent.parent.name
        step = run_dir.parent.name
        number = run_dir.name.removeprefix("seed")
        seed = int(number) if number.isdigit() else -1
    state = RunState(run_dir, track, step, _index(track, step), seed, "missing")
    if problem:
        state.status, state.detail = "unreadable", problem
    return state


def _known_steps(track: str) -> list[str]:
    """The step names of `track` ([] for an unknown track)."""
    try:
        return step_names(track)
    except ValueError:
        return []


def _index(track: str, step: str) -> int:
    """The step's 1-based position in its track now, 0 if it is not one of its steps."""
    names = _known_steps(track)
    return names.index(step) + 1 if step in names else 0


def run_state(
    run_dir: Path,
    sacct: dict[str, dict[str, str]] | None = None,
    job_error: JobError = no_job_error,
) -> RunState:
    """The state of the run in `run_dir` (sacct: `sacct_states` of its job; None: ask)."""
    state = named_state(run_dir)
    if state.status == "unreadable":
        return state
    job, job_problem = records.read_or_reason(records.read_job, run_dir)
    job = job or {}
    state.job_id = None if job.get("job_id") is None else str(job["job_id"])
    state.executor = job.get("executor")
    events = records.read_events(run_dir, state.notes)
    state.requeues = sum(e.get("event") == "requeue" for e in events)
    result, problem = records.read_or_reason(records.read_result, run_dir)
    if problem:
        state.status, state.detail = "unreadable", problem
        return state
    if result is not None and result["status"] == "done":
        state.status, state.top1 = "done", result.get("top1")
        state.detail = "" if state.top1 is None else f"{state.top1:.2f}"
        stale = spec_change(dict(records.read_config(run_dir) or {}))
        state.notes += [f"stale spec, left out of the staircase: {stale}"] if stale else []
        return state
    state.checkpoint = records.newest_checkpoint_step(run_dir)
    state.resumable = state.checkpoint is not None
    if result is not None:
        state.status = "failed"
        state.detail = str(result.get("reason") or "no reason given")
    elif job_problem:  # whether a job is at work on it cannot be told
        state.status, state.detail = "unreadable", job_problem
    else:
        _job_state(state, job, sacct, job_error)
    return state


def _job_state(
    state: RunState,
    job: dict[str, Any],
    sacct: dict[str, dict[str, str]] | None,
    job_error: JobError,
) -> None:
    """Fill the state of a run without a result from its job, then its lock.

    A live trainer holding the lock on this host (`roadmap train`, a job that the scheduler
    no longer shows) makes the run `running`, whatever its job says.
    """
    holder = records.read_lock(state.run_dir) or {}
    stop = job.get("stopped")
    if not job:
        _not_started(state, "its trainer ended without a result" if holder else "")
    elif stop:  # stopped on purpose: the local sweep was interrupted, or `roadmap cancel`
        state.status = "failed" if stop.get("cancelled") else "interrupted"
        state.detail = stop.get("reason", "stopped")
    elif state.executor == "slurm":
        _slurm_state(state, job, sacct, job_error)
    elif state.executor == "local":
        _local_state(state, job, job_error)
    else:
        _debug_state(state, job)
    alive = process_alive(holder.get("pid"), holder.get("start"), holder.get("host"))
    if alive and state.status not in ACTIVE:
        by = holder.get("by") or "a trainer"
        state.status, state.detail = "running", f"{by}, pid {holder['pid']}"


def _not_started(state: RunState, detail: str) -> None:
    """No job ran it: `interrupted` if it has trained before (a checkpoint), else `missing`."""
    trained = state.resumable or bool(records.read_log(state.run_dir))
    state.status = "interrupted" if trained or detail else "missing"
    state.detail = detail or ("trained before, not finished" if trained else "")


def _slurm_state(
    state: RunState,
    job: dict[str, Any],
    sacct: dict[str, dict[str, str]] | None,
    job_error: JobError,
) -> None:
    """Fill a Slurm run's state from sacct."""
    recent = records.age_s(job.get("submitted")) < SACCT_GRACE_S
    if not state.job_id:
        state.status = "pending" if recent else "missing"
        state.detail = "submitting" if recent else "submission did not complete"
        return
    if sacct is None:
        sacct = sacct_states([state.job_id])
    info = sacct.get(state.job_id)
    if info is None:
        state.status = "pending" if recent else "interrupted"
        state.detail = "not in sacct yet" if recent else "job unknown to sacct"
        return
    slurm_state = info.get("State", "UNKNOWN")
    word = slurm_state.split()[0] if slurm_state else "UNKNOWN"
    if word == SACCT_UNAVAILABLE:
        state.status, state.detail = "running", f"cannot check: {info.get('Reason')}"
    elif word in SLURM_PENDING:
        state.status = "pending"
        reason = info.get("Reason", "")
        state.detail = word.lower() + (f" ({reason})" if reason and reason != "None" else "")
    elif word in SLURM_RUNNING:
        state.status, state.detail = "running", info.get("NodeList", "")
    else:
        state.status = "failed" if word in SLURM_CANCELLED else "interrupted"
        reason = slurm_state if word != "COMPLETED" else "job ended without a result"
        exit_code = info.get("ExitCode", "")
        if exit_code and exit_code != "0:0":
            reason += f", exit {exit_code}"
        error = job_error(job)
        state.detail = f"{reason}: {error}" if error else reason


def _local_state(state: RunState, job: dict[str, Any], job_error: JobError) -> None:
    """Fill a local run's state from its controller process."""
    if not state.job_id:
        queued = job.get("queued_by") or {}
        if process_alive(queued.get("pid"), queued.get("start"), queued.get("host")):
            state.status, state.detail = "pending", "queued by the sweep"
        else:
            _not_started(state, "")
            state.detail = f"queued by a sweep that has ended; {state.detail}".rstrip("; ")
        return
    alive = process_alive(state.job_id, job.get("proc_start"), job.get("host"))
    if alive is None:
        state.status, state.detail = "running", f"on {job.get('host')} (cannot check)"
    elif alive:
        state.status, state.detail = "running", f"pid {state.job_id}"
    else:
        error = job_error(job)
        state.status = "interrupted"
        state.detail = f"process ended without a result: {error or 'killed?'}"


def _debug_state(state: RunState, job: dict[str, Any]) -> None:
    """A debug job runs inside the sweep process: it runs as long as that process does."""
    driver = job.get("driver") or {}
    if process_alive(driver.get("pid"), driver.get("start"), driver.get("host")):
        state.status, state.detail = "running", f"in pid {driver['pid']}"
    else:
        state.status, state.detail = "interrupted", "debug job ended without a result"


# ---- a whole root -----------------------------------------------------------------------------


def find_runs(root: str | os.PathLike, track: str) -> dict[tuple[str, int], Path]:
    """The folder of each (step, seed) of `track` under `root`, by the runs' own identity.

    So a root keeps working whatever its folders are called (steps inserted or moved since);
    two folders of one run are an error naming both.
    """
    found: dict[tuple[str, int], Path] = {}
    for run_dir in records.run_dirs(root):
        state = named_state(run_dir)
        key = (state.step, state.seed)
        if state.track != track:
            continue
        if key in found:
            raise UserError(
                f"two folders hold the run {track}/{state.step} seed {state.seed}: "
                f"{found[key]} and {run_dir}; move one of them out of {root}"
            )
        found[key] = run_dir
    return found


def sweep_states(
    root: str | os.PathLike, track: str | None = None, job_error: JobError = no_job_error
) -> list[RunState]:
    """The state of every run under `root` (one track's, if given), in roadmap order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no sweep under {root}: not a directory")
    dirs = [d for d in records.run_dirs(root) if track is None or named_state(d).track == track]
    jobs = [records.read_or_reason(records.read_job, d)[0] or {} for d in dirs]
    slurm_ids = [str(j["job_id"]) for j in jobs if j.get("executor") == "slurm" and j.get("job_id")]
    sacct = sacct_states(slurm_ids)
    states = [run_state(d, sacct, job_error) for d in dirs]
    return sorted(states, key=lambda s: (s.track, s.index or 1e9, s.step, s.seed))


def totals(states: list[RunState]) -> Counter:
    """How many runs are in each status."""
    return Counter(s.status for s in states)
