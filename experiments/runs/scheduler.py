"""What the schedulers say of a job: Slurm through sacct, a local job through its process.

`sacct_states` asks sacct once for many jobs (`parse_sacct` reads its `--parsable2` table); where
sacct cannot be asked every job gets the state `SACCT_UNAVAILABLE`, so that nobody takes a job
it cannot see for a job that has ended; a job that sacct shows as ended but that slurmctld holds
again (requeued) gets the controller's state (`queued_states`, squeue). `process_alive` tells a
live process from a dead or a recycled pid (its start time), on this host only.
runstate.py turns these into run states; runlock.py uses them to tell whether a lock's holder
is gone. `this_process` is the one record of a process (pid, start, host) that locks, job.json
and sweep.json keep.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from typing import Any

import psutil

# sacct states of a job that will run (again), that runs; CANCELLED is the user's decision,
# any other end (TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, FAILED, ...) interrupts the run.
SLURM_PENDING = {
    "PENDING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SUSPENDED",
}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"}
SLURM_ACTIVE = SLURM_PENDING | SLURM_RUNNING  # the job has not ended
SLURM_CANCELLED = {"CANCELLED"}
SACCT_UNAVAILABLE = "UNAVAILABLE"  # our word for "sacct could not be asked"
NOT_KNOWN_ENDED = SLURM_ACTIVE | {SACCT_UNAVAILABLE}  # a job that may still run
SACCT_GRACE_S = 120  # a job this recent may not be in the accounting database yet


def sacct_states(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """Sacct's record of each Slurm job id ("123" or "123_4"): State, ExitCode, Reason.

    One `sacct` call for all arrays, read by `parse_sacct`. Where sacct cannot be
    asked, every id gets State `SACCT_UNAVAILABLE` and the Reason why.
    """
    if not job_ids:
        return {}
    if shutil.which("sacct") is None:
        return dict.fromkeys(job_ids, _unavailable("sacct is not on PATH"))
    mains = sorted({j.split("_")[0] for j in job_ids})
    cmd = ["sacct", "-X", "--parsable2", "-o", "JobID,State,ExitCode,Reason,NodeList"]
    cmd += ["-j", ",".join(mains)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as err:
        return dict.fromkeys(job_ids, _unavailable(f"sacct failed: {err}"))
    states = parse_sacct(out)
    ended = [j for j, info in states.items() if _ended(info.get("State", ""))]
    for job, live in queued_states(ended).items():
        if job in states and live in SLURM_ACTIVE:
            old = states[job].get("State", "")
            states[job] = {
                **states[job],
                "State": live,
                "Reason": f"requeued after {old}",
            }
    return states


def parse_sacct(output: str) -> dict[str, dict[str, str]]:
    """`sacct --parsable2` output as {job id: {column: value}}, array ranges spread out.

    Job steps (`123.batch`) are skipped; `41_[3-4,7]` gives 41_3, 41_4 and 41_7 the same row.
    """
    lines = output.splitlines()
    if len(lines) < 2:
        return {}
    names = lines[0].split("|")
    states: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        row = {k: v.strip() for k, v in zip(names, line.split("|"), strict=False)}
        job = row.get("JobID", "")
        if not job or "." in job:
            continue
        ranges = re.fullmatch(r"(\d+)_\[([\d,-]+)(%\d+)?\]", job)
        if ranges is None:
            states[job] = row
            continue
        for part in ranges.group(2).split(","):
            first, _, last = part.partition("-")
            for index in range(int(first), int(last or first) + 1):
                states[f"{ranges.group(1)}_{index}"] = row
    return states


def _ended(state: str) -> bool:
    """Whether a sacct state word says the job's newest attempt has ended."""
    word = state.split()[0] if state else ""
    return bool(word) and word not in NOT_KNOWN_ENDED


def queued_states(job_ids: list[str]) -> dict[str, str]:
    """The controller's live state of the jobs it still holds (squeue): {job id: state}.

    sacct's newest record of a job that Slurm requeues (a node failure, a preemption) says
    NODE_FAIL or PREEMPTED until the requeued attempt's record reaches the database, seconds
    later; squeue asks slurmctld itself. Jobs it no longer holds, or no answer: left out.
    """
    if not job_ids or shutil.which("squeue") is None:
        return {}
    mains = sorted({j.split("_")[0] for j in job_ids})
    cmd = [
        "squeue",
        "--noheader",
        "--array",
        "--format=%i|%T",
        "--jobs",
        ",".join(mains),
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    live = (line.strip().partition("|") for line in out.splitlines())
    return {job: state for job, _, state in live if state}


def _unavailable(reason: str) -> dict[str, str]:
    return {"State": SACCT_UNAVAILABLE, "Reason": reason}


def process_start(pid: int | str) -> str | None:
    """The start time of process `pid` (psutil, seconds since the epoch), None if not running.

    With the pid, it names a process uniquely: a recycled pid has another start time.
    """
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"{proc.create_time():.2f}"
    except (psutil.Error, ValueError):
        return None


def process_alive(pid: int | str | None, start: str | None, host: str | None) -> bool | None:
    """Whether the recorded process still runs (None: it ran on another host)."""
    if host not in (None, socket.gethostname()):
        return None
    if pid is None or not str(pid).isdigit() or not psutil.pid_exists(int(pid)):
        return False
    current = process_start(pid)
    return current is not None and (start is None or current == str(start))


def this_process() -> dict[str, Any]:
    """The record of this process that locks and manifests keep: {pid, start, host}."""
    pid = os.getpid()
    return {"pid": pid, "start": process_start(pid), "host": socket.gethostname()}
