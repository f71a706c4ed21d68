"""Run states, one definition: where each run stands, from its records and its job.

A run is `done` or `failed` when its `result.json` says so. Without one, its job decides
(`job.json`, see experiments/records.py): alive (`pending` or `running`), or dead, i.e. failed
with the scheduler's reason (Slurm: `sacct`, which is also how submitit reads job state; local:
the recorded process is gone). A run stopped on purpose is `missing` again (an interrupted local
sweep: the next sweep resumes it) or `failed` (cancelled). A run with no job is `missing`.

Training, the sweep and analysis all ask this module: `done_result` (is it done?),
`write_failure` and `set_aside_failure` (a failed result, kept aside before a rerun), `lock_run`
(one trainer per run), `run_state` / `sweep_states` (one run / a root, as `roadmap status` shows
them) and `collect` (every record under a root as one DataFrame). Nothing here starts a job.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from experiments import records
from experiments.submitit_private import job_error, parse_sacct

STATUSES = ("done", "running", "pending", "failed", "missing")

# sacct states of a job that will run (again); anything else has ended.
SLURM_PENDING = {
    "PENDING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SUSPENDED",
}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"}
SACCT_GRACE_S = 120  # a job this recent may not be in the accounting database yet


@dataclass
class RunState:
    """One run as `roadmap status` shows it."""

    run_dir: Path
    track: str
    step: str
    index: int
    seed: int
    status: str  # one of STATUSES
    # Top-1 when done, the reason when failed, the scheduler's word otherwise.
    detail: str = ""
    job_id: str | None = None
    executor: str | None = None
    top1: float | None = None
    requeues: int = 0
    resumable: bool = False  # failed or missing with a checkpoint to resume from

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        out = dict(self.__dict__)
        out["run_dir"] = str(self.run_dir)
        return out


# ---- the result --------------------------------------------------------------------------------


def done_result(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's result if it says done, else None."""
    result = records.read_json(Path(run_dir) / records.RESULT)
    return result if result is not None and result.get("status") == "done" else None


def write_failure(run_dir: str | os.PathLike, reason: str, **known: Any) -> None:
    """Write a failed result.json (every result key; `known` ones filled) unless one exists."""
    if (Path(run_dir) / records.RESULT).exists():
        return
    result: dict[str, Any] = dict.fromkeys(records.RESULT_KEYS)
    result.update(known, status="failed", reason=reason)
    records.write_result(run_dir, result)


def set_aside_failure(run_dir: str | os.PathLike) -> Path | None:
    """Keep a result as result.failed-<n>.json, so that the run runs again; its new path."""
    run_dir = Path(run_dir)
    result = run_dir / records.RESULT
    if not result.exists():
        return None
    n = 1 + len(list(run_dir.glob("result.failed-*.json")))
    kept = run_dir / f"result.failed-{n}.json"
    result.rename(kept)
    return kept


def lock_run(run_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the run for this process's life: one job per run at a time."""
    f = open(run_dir / ".job.lock", "a+")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise RuntimeError(
            f"{run_dir} is being trained by another job; not starting a second"
        ) from None
    return f


# ---- the scheduler's view ---------------------------------------------------------------------


def sacct_states(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """Sacct's record of each Slurm job id ("123" or "123_4"): State, ExitCode, Reason.

    One `sacct` call for all arrays, parsed by submitit's own reader. Empty where sacct is
    unavailable (then every Slurm job reads as unknown).
    """
    if not job_ids or shutil.which("sacct") is None:
        return {}
    mains = sorted({j.split("_")[0] for j in job_ids})
    cmd = ["sacct", "-X", "--parsable2", "-o", "JobID,State,ExitCode,Reason,NodeList"]
    cmd += ["-j", ",".join(mains)]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_sacct(out)


def process_start(pid: int | str) -> str | None:
    """The start time (clock ticks since boot) of process `pid`, None if it is not running.

    With the pid, it names a process uniquely: a recycled pid has another start time.
    """
    try:
        fields = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def process_alive(
    pid: int | str | None, start: str | None, host: str | None
) -> bool | None:
    """Whether the recorded process still runs (None: it ran on another host)."""
    if host not in (None, socket.gethostname()):
        return None
    if pid is None or not str(pid).isdigit():
        return False
    current = process_start(pid)
    return current is not None and (start is None or current == start)


def _job_error(job: dict[str, Any]) -> str | None:
    """The error a job's submitit outcome holds, if any."""
    folder, job_id = job.get("submitit_folder"), job.get("job_id")
    return job_error(folder, job_id) if folder and job_id else None


# ---- one run ----------------------------------------------------------------------------------


def run_state(
    run_dir: Path, sacct: dict[str, dict[str, str]] | None = None
) -> RunState:
    """The state of the run in `run_dir` (sacct: the output of `sacct_states`)."""
    state = _identify(run_dir)
    job = records.read_job(run_dir) or {}
    state.job_id, state.executor = job.get("job_id"), job.get("executor")
    events = records.read_events(run_dir)
    state.requeues = sum(e.get("event") == "requeue" for e in events)
    result = records.read_json(run_dir / records.RESULT)
    if result is not None and result.get("status") == "done":
        state.status, state.top1 = "done", result.get("top1")
        state.detail = "" if state.top1 is None else f"{state.top1:.2f}"
        return state
    state.resumable = _has_checkpoint(run_dir)
    if result is not None:
        state.status = "failed"
        state.detail = str(result.get("reason") or "no reason given")
        return state
    if not job:
        return state
    stop = job.get("stopped")
    if stop:  # stopped on purpose: the local sweep was interrupted, or `roadmap cancel`
        state.status = "failed" if stop.get("cancelled") else "missing"
        state.detail = stop.get("reason", "stopped")
        return state
    executor = job.get("executor")
    if executor == "slurm":
        _slurm_state(state, job, sacct or {})
    elif executor == "local":
        _local_state(state, job)
    else:
        _debug_state(state, job)
    return state


def _identify(run_dir: Path) -> RunState:
    """A missing-state RunState named from the run's config (or, lacking one, its path)."""
    config = records.read_json(run_dir / records.CONFIG) or {}
    index, _, name = run_dir.parent.name.partition("_")
    seed = config.get("seed")
    if seed is None:
        seed = run_dir.name.removeprefix("seed")
    return RunState(
        run_dir=run_dir,
        track=str(config.get("track") or run_dir.parent.parent.name),
        step=str(config.get("step") or name),
        index=int(index) if index.isdigit() else 0,
        seed=int(seed) if str(seed).isdigit() else -1,
        status="missing",
    )


def _has_checkpoint(run_dir: Path) -> bool:
    """Whether the run has a checkpoint file to resume from."""
    return bool(records.list_checkpoints(run_dir / records.CHECKPOINT_DIR))


def _slurm_state(
    state: RunState, job: dict[str, Any], sacct: dict[str, dict[str, str]]
) -> None:
    """Fill a Slurm run's state from sacct."""
    if not state.job_id:
        pending = records.age_s(job.get("submitted")) < SACCT_GRACE_S
        state.status = "pending" if pending else "missing"
        state.detail = "submitting" if pending else "submission did not complete"
        return
    info = sacct.get(state.job_id)
    if info is None:
        recent = records.age_s(job.get("submitted")) < SACCT_GRACE_S
        state.status = "pending" if recent else "failed"
        state.detail = "not in sacct yet" if recent else "job unknown to sacct"
        return
    slurm_state = info.get("State", "UNKNOWN")
    word = slurm_state.split()[0] if slurm_state else "UNKNOWN"
    if word in SLURM_PENDING:
        state.status = "pending"
        reason = info.get("Reason", "")
        state.detail = word.lower() + (
            f" ({reason})" if reason and reason != "None" else ""
        )
    elif word in SLURM_RUNNING:
        state.status, state.detail = "running", info.get("NodeList", "")
    else:
        state.status = "failed"
        reason = slurm_state if word != "COMPLETED" else "job ended without a result"
        exit_code = info.get("ExitCode", "")
        if exit_code and exit_code != "0:0":
            reason += f", exit {exit_code}"
        error = _job_error(job)
        state.detail = f"{reason}: {error}" if error else reason


def _local_state(state: RunState, job: dict[str, Any]) -> None:
    """Fill a local run's state from its controller process."""
    if not state.job_id:
        queued = job.get("queued_by") or {}
        if process_alive(queued.get("pid"), queued.get("start"), queued.get("host")):
            state.status, state.detail = "pending", "queued by the sweep"
        else:
            state.status, state.detail = "missing", "queued by a sweep that has ended"
        return
    alive = process_alive(state.job_id, job.get("proc_start"), job.get("host"))
    if alive is None:
        state.status, state.detail = "running", f"on {job.get('host')} (cannot check)"
    elif alive:
        state.status, state.detail = "running", f"pid {state.job_id}"
    else:
        error = _job_error(job)
        state.status = "failed"
        state.detail = f"process ended without a result: {error or 'killed?'}"


def _debug_state(state: RunState, job: dict[str, Any]) -> None:
    """A debug job runs inside the sweep process: it runs as long as that process does."""
    driver = job.get("driver") or {}
    if process_alive(driver.get("pid"), driver.get("start"), driver.get("host")):
        state.status, state.detail = "running", f"in pid {driver['pid']}"
    else:
        state.status, state.detail = "failed", "debug job ended without a result"


# ---- a whole root -----------------------------------------------------------------------------


def sweep_states(root: str | os.PathLike, track: str | None = None) -> list[RunState]:
    """The state of every run under `root` (one track's, if given), in roadmap order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no sweep under {root}: not a directory")
    dirs = [
        d
        for d in records.run_dirs(root)
        if track is None or d.parent.parent.name == track
    ]
    jobs = [records.read_job(d) or {} for d in dirs]
    slurm_ids = [
        j["job_id"] for j in jobs if j.get("executor") == "slurm" and j.get("job_id")
    ]
    sacct = sacct_states(slurm_ids)
    states = [run_state(d, sacct) for d in dirs]
    return sorted(states, key=lambda s: (s.track, s.index, s.step, s.seed))


def totals(states: list[RunState]) -> Counter:
    """How many runs are in each status."""
    return Counter(s.status for s in states)


def collect(root: str | os.PathLike) -> Any:
    """One pandas DataFrame row per run under `root`: config fields, then result fields.

    Config keys are flattened with dots (`spec.kernel_size`, `recipe.epochs`); result keys keep
    their names. A run with no result yet has status "missing" (or "running" if it has logged
    at least one epoch).
    """
    import pandas as pd

    rows = []
    for run in records.run_dirs(root):
        config = records.read_json(run / records.CONFIG) or {}
        result = records.read_json(run / records.RESULT)
        row: dict[str, Any] = {"run_dir": str(run)}
        row.update(
            pd.json_normalize(config, sep=".").iloc[0].to_dict() if config else {}
        )
        if result is None:
            result = dict.fromkeys(records.RESULT_KEYS)
            result["status"] = "running" if records.read_log(run) else "missing"
        row.update(result)
        rows.append(row)
    return pd.DataFrame(rows)
