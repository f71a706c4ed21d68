"""Run jobs through submitit: the preemption-safe job, Slurm and debug submission.

A job is `RunJob(config_path)`: it receives the path of a run's `config.json`, never a pickled
model, builds `experiments.train.Trainer` on the run directory and trains. It is submitit
`Checkpointable`: on USR2 (preemption, or the time limit coming) submitit calls `checkpoint`,
which saves the trainer's state and hands back a fresh `RunJob` on the same config; submitit
requeues it and the requeued job resumes from that checkpoint. `max_requeues` bounds how often.
Cluster specifics come only from a profile (experiments/sweep_profile.py, slurm/*.toml).
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import UncompletedJobError

from experiments import records
from experiments.sweep_profile import Profile
from experiments.sweep_status import (
    append_event,
    now,
    process_start,
    read_events,
    read_job,
    write_job,
)

SLURM_DEFAULTS: dict[str, Any] = {"job_name": "roadmap"}

# ---- the job ---------------------------------------------------------------------------------


def _rank() -> int:
    """Global rank of this task in its submitit job (0 outside one)."""
    try:
        return submitit.JobEnvironment().global_rank
    except RuntimeError:
        return 0


def _job_id() -> str | None:
    """The submitit job id of this process, if it runs in a job."""
    try:
        return submitit.JobEnvironment().job_id
    except RuntimeError:
        return None


class RunJob(submitit.helpers.Checkpointable):
    """Train the run whose config is at `config_path`; checkpoint and requeue on USR2."""

    def __init__(
        self,
        config_path: str,
        threads: int = 0,
        max_requeues: int = 3,
        raise_errors: bool = True,
    ) -> None:
        self.config_path = str(config_path)
        self.threads = threads  # torch threads (0: torch's default)
        self.max_requeues = max_requeues
        # False for the debug executor, which would start pdb on an exception.
        self.raise_errors = raise_errors
        self._trainer: Any = None
        self._lock: Any = None
        self._stopping = False

    @property
    def run_dir(self) -> Path:
        """The run directory (the config's folder)."""
        return Path(self.config_path).parent

    def __getstate__(self) -> dict[str, Any]:
        # Only the path and the settings travel: never the trainer, model or lock.
        return {
            k: v for k, v in self.__dict__.items() if k not in ("_trainer", "_lock")
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._trainer, self._lock = None, None

    def __call__(self) -> dict[str, Any]:
        """Train to the end (resuming from the newest checkpoint) and return the result."""
        run_dir, rank = self.run_dir, _rank()
        done = records.read_json(run_dir / records.RESULT)
        if done is not None and done.get("status") == "done":
            return done
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        if rank == 0:
            self._lock = _lock_run(run_dir)
            append_event(
                run_dir,
                "start",
                job_id=_job_id(),
                restart=int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0),
                requeues=_count(run_dir, "requeue"),
                threads=self.threads,
            )
        from experiments.train import Trainer

        try:
            self._trainer = trainer = Trainer(run_dir)
            if rank == 0 and trainer.resumed_from is not None:
                st = trainer.state
                append_event(
                    run_dir,
                    "resume",
                    checkpoint=str(trainer.resumed_from),
                    global_step=st["global_step"],
                    epoch=st["epoch"],
                    step_in_epoch=st["step_in_epoch"],
                )
            result = trainer.fit()
        except Exception as err:
            if self._stopping:  # stopped on purpose after a checkpoint: not a failure
                raise
            reason = _reason(err)
            if rank == 0:
                if self._trainer is not None:
                    self._trainer.record_failure(reason)
                _record_failure(run_dir, reason)
                append_event(run_dir, "end", status="failed", reason=reason)
            if self.raise_errors:
                raise
            return records.read_json(run_dir / records.RESULT) or {"status": "failed"}
        if rank == 0:
            append_event(
                run_dir, "end", status=result.get("status"), top1=result.get("top1")
            )
        return result

    def checkpoint(
        self, *args: Any, **kwargs: Any
    ) -> submitit.helpers.DelayedSubmission | None:
        """Save the trainer's state; the job to requeue, or None to stop without requeueing."""
        run_dir = self.run_dir
        path = None
        if self._trainer is not None:
            path = self._trainer.save_checkpoint("preempted")
        job_id = _job_id()  # the same across this job's requeues; a new job starts at 0
        requeues = sum(
            e.get("event") == "requeue" and e.get("job_id") == job_id
            for e in read_events(run_dir)
        )
        stop = (read_job(run_dir) or {}).get("stop_requested")
        append_event(
            run_dir,
            "checkpoint",
            path=None if path is None else str(path),
            job_id=job_id,
            stop=stop,
        )
        if stop:
            self._stopping = True
            append_event(run_dir, "stop", reason=stop)
            return None
        if requeues >= self.max_requeues:
            append_event(run_dir, "requeue-limit", limit=self.max_requeues)
            return None  # submitit raises UncompletedJobError: __call__ records the failure
        append_event(run_dir, "requeue", count=requeues + 1, job_id=job_id)
        return submitit.helpers.DelayedSubmission(
            RunJob(self.config_path, self.threads, self.max_requeues, self.raise_errors)
        )


def _count(run_dir: Path, event: str) -> int:
    """How many `event` lines the run's events.jsonl holds."""
    return sum(e.get("event") == event for e in read_events(run_dir))


def _reason(err: BaseException) -> str:
    """A one-line reason for a failure."""
    if isinstance(
        err, UncompletedJobError
    ) and "checkpoint function returned None" in str(err):
        return "requeue limit reached (max_requeues)"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".rstrip(": ")


def _record_failure(run_dir: Path, reason: str) -> None:
    """Write a failed result.json unless the trainer already wrote one."""
    if records.read_json(run_dir / records.RESULT) is not None:
        return
    result: dict[str, Any] = dict.fromkeys(records.RESULT_KEYS)
    result.update(status="failed", reason=reason)
    records.write_result(run_dir, result)


def _lock_run(run_dir: Path) -> Any:
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


# ---- submission -------------------------------------------------------------------------------


def new_job(run_dir: Path, **fields_: Any) -> dict[str, Any]:
    """Write a fresh job manifest for `run_dir`; a previous submitted job moves into history."""
    old = read_job(run_dir) or {}
    history = list(old.pop("history", []))
    if old.get("job_id"):
        history.append(old)
    job = {
        "host": socket.gethostname(),
        "submitted": now(),
        **fields_,
        "history": history,
    }
    write_job(run_dir, job)
    return job


def submit_slurm(
    configs: list[Path], profile: Profile, folder: Path, job_name: str
) -> list[str]:
    """Submit one Slurm job array (one task per config); write each run's job.json; job ids."""
    executor = submitit.SlurmExecutor(
        folder=folder, max_num_timeout=profile.max_requeues
    )
    executor.update_parameters(job_name=job_name, **profile.slurm_parameters())
    jobs = []
    try:
        with executor.batch():
            for config in configs:
                job = RunJob(str(config), profile.threads, profile.max_requeues)
                jobs.append(executor.submit(job))
    except Exception as err:  # sbatch refused: nothing was submitted
        raise ValueError(f"sbatch refused the job array: {_reason(err)}") from err
    for config, job in zip(configs, jobs, strict=True):
        new_job(
            config.parent,
            executor="slurm",
            job_id=str(job.job_id),
            submitit_folder=str(folder),
            profile=profile.path,
        )
    return [str(j.job_id) for j in jobs]


def check_slurm(profile: Profile, tasks: int, folder: Path) -> str:
    """Ask Slurm whether it would accept the job array (`sbatch --test-only`); its answer.

    Catches what only the cluster knows (partition, account, qos, constraint, limits) before
    anything is written or submitted; a refusal is a ValueError with sbatch's message.
    """
    import subprocess
    import tempfile

    from submitit.slurm.slurm import _make_sbatch_string

    params = SLURM_DEFAULTS | profile.slurm_parameters()
    script = _make_sbatch_string(
        command="true", folder=folder, map_count=max(tasks, 1), **params
    )
    with tempfile.NamedTemporaryFile(
        "w", suffix=".sh", prefix="roadmap-test-only-"
    ) as f:
        f.write(script)
        f.flush()
        command = ["sbatch", "--test-only", f.name]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired:
            raise ValueError("sbatch --test-only did not answer within 90 s") from None
    answer = " ".join((proc.stderr + proc.stdout).split())
    if proc.returncode:
        where = f" (profile {profile.path})" if profile.path else ""
        raise ValueError(f"Slurm refuses the job array{where}: {answer}")
    return answer


def run_debug(
    config: Path, folder: Path, threads: int = 0, max_requeues: int = 3
) -> dict:
    """Run one job in this process through submitit's debug executor; its result."""
    executor = submitit.DebugExecutor(folder=folder)
    job = executor.submit(
        RunJob(str(config), threads, max_requeues, raise_errors=False)
    )
    me = {
        "pid": os.getpid(),
        "start": process_start(os.getpid()),
        "host": os.uname()[1],
    }
    new_job(
        config.parent,
        executor="debug",
        job_id=str(job.job_id),
        submitit_folder=str(folder),
        driver=me,
    )
    return job.result()
