"""Where each run of a sweep stands: its records, its job manifest and the scheduler's view.

A run directory holds, besides the run record (`config.json`, `log.jsonl`, `result.json`),
- `job.json`: the job that was last submitted for it (executor, job id, host, submission time,
  submitit folder, attempt) and the earlier ones under `history`; written atomically by the
  submitting process, and by `roadmap cancel`;
- `events.jsonl`: what the job itself did (start, checkpoint, requeue, end), appended by the job.
A run is done or failed when its `result.json` says so. Without one, the job decides: alive
(pending or running), or dead, i.e. failed with the scheduler's reason (Slurm: `sacct`, which
is also how submitit reads job state; local: the recorded process is gone). A run with no job
is missing. Nothing here writes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import records

JOB = "job.json"
EVENTS = "events.jsonl"
STATUSES = ("done", "running", "pending", "failed", "missing")

# sacct states of a job that will not run again; anything else is pending or running.
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


def read_job(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's job manifest, or None if no job was ever submitted for it."""
    return records.read_json(Path(run_dir) / JOB)


def write_job(run_dir: str | os.PathLike, job: dict[str, Any]) -> None:
    """Write the run's job manifest atomically."""
    records.atomic_write_json(Path(run_dir) / JOB, job)


def append_event(run_dir: str | os.PathLike, event: str, **fields: Any) -> None:
    """Append one line to the run's `events.jsonl` (time, host and pid added)."""
    row = {
        "event": event,
        "time": now(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    records.append_jsonl(Path(run_dir) / EVENTS, {**row, **fields})


def read_events(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The run's events, oldest first (a torn last line is ignored)."""
    return records.read_jsonl(Path(run_dir) / EVENTS)


def now() -> str:
    """The current time, ISO 8601 with the local offset, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _age_s(stamp: str | None) -> float:
    """Seconds since an ISO time written by `now()` (infinite if unknown)."""
    if not stamp:
        return float("inf")
    try:
        return time.time() - time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z"))
    except ValueError:
        return float("inf")


# ---- the scheduler's view ---------------------------------------------------------------------


def sacct_states(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """Sacct's record of each Slurm job id ("123" or "123_4"): State, ExitCode, Reason.

    One `sacct` call for all arrays, parsed by submitit's own reader. Empty where sacct is
    unavailable (then every Slurm job reads as unknown).
    """
    if not job_ids or shutil.which("sacct") is None:
        return {}
    from submitit.slurm.slurm import SlurmInfoWatcher

    mains = sorted({j.split("_")[0] for j in job_ids})
    cmd = ["sacct", "-X", "--parsable2", "-o", "JobID,State,ExitCode,Reason,NodeList"]
    cmd += ["-j", ",".join(mains)]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return SlurmInfoWatcher().read_info(out)


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


def submitit_error(job: dict[str, Any]) -> str | None:
    """The last line of the traceback submitit pickled for a failed job, if any."""
    folder, job_id = job.get("submitit_folder"), job.get("job_id")
    if not folder or not job_id:
        return None
    path = Path(folder) / f"{job_id}_0_result.pkl"
    try:
        import pickle

        with open(path, "rb") as f:
            outcome, payload = pickle.load(f)
    except Exception:  # noqa: BLE001 - absent, torn or from another version: no reason
        return None
    if outcome != "error":
        return None
    lines = [x for x in str(payload).strip().splitlines() if x.strip()]
    return lines[-1].strip() if lines else None


# ---- one run ----------------------------------------------------------------------------------


def run_state(
    run_dir: Path, sacct: dict[str, dict[str, str]] | None = None
) -> RunState:
    """The state of the run in `run_dir` (sacct: the output of `sacct_states`)."""
    state = _identify(run_dir)
    job = read_job(run_dir) or {}
    state.job_id, state.executor = job.get("job_id"), job.get("executor")
    state.requeues = sum(e.get("event") == "requeue" for e in read_events(run_dir))
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
    else:  # debug: runs inside the sweep process, so it runs as long as that process does
        driver = job.get("driver") or {}
        if process_alive(driver.get("pid"), driver.get("start"), driver.get("host")):
            state.status, state.detail = "running", f"in pid {driver['pid']}"
        else:
            state.status, state.detail = "failed", "debug job ended without a result"
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
    from experiments.checkpoint import CHECKPOINT_DIR, listing

    return bool(listing(run_dir / CHECKPOINT_DIR))


def _slurm_state(
    state: RunState, job: dict[str, Any], sacct: dict[str, dict[str, str]]
) -> None:
    """Fill a Slurm run's state from sacct."""
    if not state.job_id:
        pending = _age_s(job.get("submitted")) < SACCT_GRACE_S
        state.status = "pending" if pending else "missing"
        state.detail = "submitting" if pending else "submission did not complete"
        return
    info = sacct.get(state.job_id)
    if info is None:
        recent = _age_s(job.get("submitted")) < SACCT_GRACE_S
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
        error = submitit_error(job)
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
        error = submitit_error(job)
        state.status = "failed"
        state.detail = f"process ended without a result: {error or 'killed?'}"


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
    jobs = [read_job(d) or {} for d in dirs]
    slurm_ids = [
        j["job_id"] for j in jobs if j.get("executor") == "slurm" and j.get("job_id")
    ]
    sacct = sacct_states(slurm_ids)
    states = [run_state(d, sacct) for d in dirs]
    return sorted(states, key=lambda s: (s.track, s.index, s.step, s.seed))


def totals(states: list[RunState]) -> Counter:
    """How many runs are in each status."""
    return Counter(s.status for s in states)
