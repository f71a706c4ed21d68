"""One trainer per run: the run's lock, who holds it, and when a lock left behind may be taken.

`lock_run(run_dir)` holds `<run>/.job.lock` (a `locks.HolderLock`) with its holder written in
that file (host, pid and the pid's start time, job id and scheduler, what it is, since when);
`RunLock.release` empties it again. A second trainer is refused at once with `RunBusy`, one line
naming the holder. The kernel drops a flock when its process dies, but on some shared file
systems a flock is seen by one host only, so a holder's record that was never released is
honoured as well: on this host until its process is gone, on another host until sacct says its
Slurm job has ended, or at once when the job asking is that same job (a requeued job). Once the
lock is held nobody else writes in the run directory: the temporary files of writes killed
midway (`records.remove_temp_files`) are removed then.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

from experiments.runs import records
from experiments.runs.locks import HolderLock, LockBusy, describe
from experiments.runs.scheduler import (
    NOT_KNOWN_ENDED,
    process_alive,
    sacct_states,
    this_process,
)


class RunBusy(OSError):
    """Another trainer holds the run: one line (and the lock file) naming it."""

    def __init__(self, run_dir: Path, holder: dict[str, Any] | None, why: str = "") -> None:
        text = (
            f"{run_dir} is being trained by {describe(holder)}{why}; not starting a second trainer"
        )
        super().__init__(errno.EBUSY, text, str(run_dir / records.LOCK))
        self.holder = holder


class RunLock:
    """A held run lock: `release()` (or leaving its `with`) frees it."""

    def __init__(self, lock: HolderLock) -> None:
        self._lock, self.holder, self.took_over = lock, lock.record, lock.left

    def release(self) -> None:
        """Mark the lock released (an empty file) and drop it."""
        self._lock.release()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def this_job() -> tuple[str | None, str | None]:
    """(job id, scheduler) of this process from Slurm's environment, or (None, None)."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}", "slurm"
    if env.get("SLURM_JOB_ID"):
        return env["SLURM_JOB_ID"], "slurm"
    return None, None


def lock_run(
    run_dir: str | os.PathLike,
    by: str = "roadmap train",
    job_id: str | None = None,
    scheduler: str | None = None,
) -> RunLock:
    """Hold the run's lock for this trainer (refused with `RunBusy` naming the holder).

    `job_id`/`scheduler` default to Slurm's environment. A file-system error (read-only,
    no space) is an OSError naming the lock file; nothing else has been written then.
    """
    run_dir = Path(run_dir)
    if job_id is None:
        job_id, scheduler = this_job()
    path = run_dir / records.LOCK
    me = {**this_process(), "job_id": job_id, "scheduler": scheduler, "by": by,
          "argv": sys.argv[:6], "since": records.now()}  # fmt: skip

    def vet(left: dict[str, Any] | None) -> None:
        why = _why_holder_stands(left, job_id, scheduler, path)
        if why is not None:
            raise RunBusy(run_dir, left, why)

    lock = HolderLock(path, me, vet)
    try:
        lock.acquire(0, str(run_dir))
    except LockBusy as busy:
        raise RunBusy(run_dir, busy.holder) from None
    records.remove_temp_files(run_dir)
    return RunLock(lock)


def _why_holder_stands(
    holder: dict[str, Any] | None,
    job_id: str | None,
    scheduler: str | None,
    path: Path,
) -> str | None:
    """Why a holder's record left in the lock file still stands, or None if it may be taken."""
    if not holder:
        return None
    if job_id and (holder.get("job_id"), holder.get("scheduler")) == (
        job_id,
        scheduler,
    ):
        return None  # an earlier start of this very job (requeued, restarted)
    alive = process_alive(holder.get("pid"), holder.get("start"), holder.get("host"))
    if alive is False:
        return None
    if alive:
        return ""  # alive here: this file system does not share flocks (or a child holds it)
    held = holder.get("job_id")
    if holder.get("scheduler") == "slurm" and held:
        info = sacct_states([str(held)]).get(str(held))
        word = (info or {}).get("State", "").split(" ")[0]
        if info is not None and word not in NOT_KNOWN_ENDED:
            return None  # its job has ended (sacct)
        return f" (Slurm job {held}: {word.lower() or 'not in sacct'})"
    return f" (on another host: if that process is gone, delete {path})"
