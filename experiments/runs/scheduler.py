"""What the schedulers say of a job: Slurm through sacct, a local job through its process.

`sacct_states` asks sacct once for many jobs (submitit's own parser reads the answer); where
sacct cannot be asked every job gets the state `SACCT_UNAVAILABLE`, so that nobody takes a job
it cannot see for a job that has ended; a job that sacct shows as ended but that slurmctld holds
again (requeued) gets the controller's state (`queued_states`, squeue). `process_alive` tells a
live process from a dead or a recycled pid (its start time), on this host only.
runstate.py turns these into run states; runlock.py uses them to tell whether a lock's holder
is gone.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from experiments.submitit_private import job_error as submitit_error
from experiments.submitit_private import parse_sacct

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

    One `sacct` call for all arrays, parsed by submitit's own reader. Where sacct cannot be
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
    """The start time (clock ticks since boot) of process `pid`, None if it is not running.

    With the pid, it names a process uniquely: a recycled pid has another start time.
    """
    try:
        fields = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def process_alive(pid: int | str | None, start: str | None, host: str | None) -> bool | None:
    """Whether the recorded process still runs (None: it ran on another host)."""
    if host not in (None, socket.gethostname()):
        return None
    if pid is None or not str(pid).isdigit():
        return False
    current = process_start(pid)
    return current is not None and (start is None or current == start)


def job_error(job: dict[str, Any]) -> str | None:
    """The error a job's submitit outcome (job.json's folder and id) holds, if any."""
    folder, job_id = job.get("submitit_folder"), job.get("job_id")
    return submitit_error(folder, job_id) if folder and job_id else None
