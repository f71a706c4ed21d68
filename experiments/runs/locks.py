"""Locks whose file names their holder: the one lock helper of the project (on `filelock`).

`HolderLock(path, record)` is an exclusive `filelock.UnixFileLock` on `path`; once taken, the
file holds the holder's record as one JSON line (by default `this_process()`: pid, start,
host, and since when), so that whoever waits or is refused is told who holds it. A wait has a
timeout (`acquire(timeout, what)`); one that runs out raises `LockBusy`, one line naming the
holder and the lock file. `vet` sees the record a previous holder left (a process that died
holding the lock, on a file system whose flocks one host sees) and may refuse by raising. The
run lock (runlock.py), job.json updates (`locked_update`), the sweep's launch lock and the data
check's cache lock are all this.
"""

from __future__ import annotations

import errno
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock

from experiments.runs import records
from experiments.runs.files import named_error, parse_holder, read_holder
from experiments.runs.scheduler import this_process

Holder = dict[str, Any]
if "on_acquired" not in inspect.signature(filelock.UnixFileLock.__init__).parameters:
    # Older filelock drops the keywords its lock does not take: no holder would be recorded.
    raise ImportError(f"filelock {filelock.__version__}: the locks need filelock >= 3.30")
UPDATE_WAIT_S = 30.0  # a read-modify-write holds its lock for milliseconds


def describe(holder: Holder | None) -> str:
    """`host h, pid 12, job 345 (slurm), roadmap train, since ...`, from a holder record."""
    if not holder:
        return "another process (it has not recorded itself yet)"
    parts = [f"host {holder.get('host')}", f"pid {holder.get('pid')}"]
    if holder.get("job_id"):
        parts.append(f"job {holder['job_id']} ({holder.get('scheduler') or '?'})")
    if holder.get("by"):
        parts.append(str(holder["by"]))
    parts.append(f"since {holder.get('since')}")
    return ", ".join(parts)


class LockBusy(OSError):
    """A lock that another process holds: one line naming the holder and the lock file."""

    def __init__(self, path: Path, holder: Holder | None, text: str) -> None:
        super().__init__(errno.EBUSY, text, str(path))
        self.holder = holder


class HolderLock:
    """An exclusive lock on `path` whose file names its holder while it is held."""

    def __init__(
        self,
        path: str | os.PathLike,
        record: Holder | None = None,
        vet: Callable[[Holder | None], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.record = record or {**this_process(), "since": records.now()}
        self.left: Holder | None = None  # what the previous holder left in the file
        self._vet = vet
        self._lock = filelock.UnixFileLock(
            self.path, on_acquired=self._took, preserve_lock_file=True, thread_local=False
        )

    def _took(self, fd: int) -> None:
        """Under the flock: vet the record left behind, then write ours."""
        self.left = parse_holder(os.pread(fd, 1 << 16, 0))
        if self._vet is not None:
            self._vet(self.left)
        data = (json.dumps(self.record, sort_keys=True, default=str) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    def acquire(
        self, timeout: float, what: str, waiting: Callable[[str], None] | None = None
    ) -> HolderLock:
        """Take the lock, waiting at most `timeout` s (`waiting` is told whom it waits for).

        A busy lock after the wait is `LockBusy` ("<what> is held by <holder>"); a file-system
        error (read-only, no space) an OSError naming the lock file.
        """
        try:  # filelock reports an unopenable file as a busy one: open it here first
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666))
            if waiting is None or timeout <= 0:
                self._lock.acquire(timeout=max(timeout, 0))
                return self
            try:
                self._lock.acquire(timeout=0)
            except filelock.Timeout:
                waiting(f"waiting up to {timeout:g} s for {what}, held by {self._busy_holder()}")
                self._lock.acquire(timeout=timeout)
        except filelock.Timeout:
            holder = read_holder(self.path)
            waited = f" (waited {timeout:g} s)" if timeout > 0 else ""
            raise LockBusy(self.path, holder, f"{what} is held by {describe(holder)}{waited}")  # noqa: B904
        except OSError as err:
            raise named_error(err, self.path) from None
        return self

    def _busy_holder(self) -> str:
        return describe(read_holder(self.path))

    def release(self) -> None:
        """Empty the file (nobody holds it) and drop the lock."""
        if not self._lock.is_locked:
            return
        try:
            os.truncate(self.path, 0)
        except OSError:
            pass  # the flock goes anyway; a record left behind names a process that is gone
        self._lock.release(force=True)

    def __enter__(self) -> HolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def update_job(run_dir: str | os.PathLike, change: Callable[[dict[str, Any]], Any]) -> Any:
    """Read the run's job.json ({} if none or unreadable), let `change` edit it, write it back.

    Under the lock `.job.json.lock` beside it, so that two writers (the driver, a cancel, a
    new submission) never lose each other's fields. `change`'s value is returned.
    """
    path = Path(run_dir) / records.JOB
    with HolderLock(path.with_name(f".{records.JOB}.lock")).acquire(
        UPDATE_WAIT_S, f"the lock on {path}"
    ):
        job = records.read_or_reason(records.read_job, run_dir)[0] or {}
        value = change(job)
        records.write_job(run_dir, job)
    return value
