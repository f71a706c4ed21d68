"""The preemption-safe job that trains one run of a sweep, whatever executor runs it.

A job is `RunJob(config_path)`: it receives the path of a run's `config.json`, never a pickled
model, builds `experiments.train.Trainer` on the run directory and trains. It is submitit
`Checkpointable`: on USR2 (preemption, or the time limit coming) submitit calls `checkpoint`,
which saves the trainer's state and hands back a fresh `RunJob` on the same config; submitit
requeues it and the requeued job resumes from that checkpoint. `max_requeues` bounds how often.
Each run's job manifest (`job.json`) is written by `new_job` when a job is submitted.

A job of several tasks (DDP ranks) trains one run: rank 0 writes the records and checkpoints.
On USR2 every rank gets the signal; they stop after the same optimizer step (the trainer's
agreed stop), rank 0 through submitit's handler (checkpoint, requeue) and the others quietly.
A rank that loses another (its process or node gone) records no failure of the run: the run
stays without a result, resumable, and the job's error names the job and its nodes.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import submitit
from submitit.core.utils import UncompletedJobError

from experiments.recipe import recipe_from_dict
from experiments.runs import records, runlock, runstate
from experiments.runs.locks import update_job
from experiments.train.run_life import Life, live, record_failure
from experiments.train.signals import StopRequested

if TYPE_CHECKING:  # torch comes with the trainer, in the job
    from experiments.train.trainer import Trainer

EXIT_STOPPED = 75  # rank 0 stopped on a signal without requeueing (EX_TEMPFAIL, as the CLI)

STOP_WAIT_S = 90  # how long a job may take to checkpoint and exit after USR2


@dataclass(frozen=True)
class Task:
    """A task of a submitit job: its rank, the tasks, job id, executor and nodes."""

    rank: int = 0
    tasks: int = 1
    job_id: str | None = None
    cluster: str | None = None  # slurm, local or debug
    hosts: tuple[str, ...] = ()

    def where(self) -> str:
        """Where this task runs, for messages: its rank, the job id, the nodes."""
        if self.job_id is None:
            return f"rank 0 on {socket.gethostname()}"
        return f"rank {self.rank} of {self.tasks} in job {self.job_id} on {', '.join(self.hosts)}"


def this_task() -> Task:
    """The submitit task of this process (the one reader of submitit's job environment)."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:
        return Task()
    return Task(env.global_rank, env.num_tasks, env.job_id, env.cluster, tuple(env.hostnames))


class PeerLost(RuntimeError):
    """Another rank of the job is gone (its process or its node): the run was interrupted."""


def _stop_this_rank(signum: int, frame: FrameType | None) -> None:
    """A non-zero rank's USR2 handler: stop with the others (submitit's only logs)."""
    raise StopRequested(f"{signal.Signals(signum).name} to the job")


class RunJob(submitit.helpers.Checkpointable, Life):
    """Train the run whose config is at `config_path`; checkpoint and requeue on USR2."""

    by = "sweep job"
    set_aside = False  # the sweep sets aside what it retries (`launch.prepare`)

    def __init__(
        self,
        config_path: str,
        threads: int = 0,
        max_requeues: int = 3,
        raise_errors: bool = True,
    ) -> None:
        self.config_path = str(config_path)
        self.threads = threads  # the slot's share of torch threads (Recipe.torch_threads)
        self.max_requeues = max_requeues
        # False for the debug executor, which would start pdb on an exception.
        self.raise_errors = raise_errors
        self._trainer: Trainer | None = None
        self._stopping = False

    @property
    def run_dir(self) -> Path:
        """The run directory (the config's folder)."""
        return Path(self.config_path).parent

    def __getstate__(self) -> dict[str, Any]:
        # Only the path and the settings travel: never the trainer or its model.
        return {k: v for k, v in self.__dict__.items() if k != "_trainer"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._trainer = None

    def __call__(self) -> dict[str, Any]:
        """Train to the end (resuming from the newest checkpoint) and return the result.

        Another trainer at work on the run (its lock) makes the job end at once, writing no
        result: the run is left to it.
        """
        return live(self.run_dir, self)

    # ---- the hooks of the run's life (experiments/train/run_life.py) ----------------------------

    def rank(self) -> int:
        """Global rank of this task in its submitit job (0 outside one)."""
        return this_task().rank

    def job(self) -> tuple[str | None, str | None]:
        """(job id, executor) of this process's submitit job, as the lock records them."""
        task = this_task()
        return task.job_id, task.cluster

    def refused(self, run_dir: Path, busy: runlock.RunBusy) -> dict[str, Any]:
        """Leave the run to the trainer that holds it: an event, no result.

        A job of several tasks fails instead (the error): the other ranks are then ended at
        once by srun's --kill-on-bad-exit, where a rank 0 that returned would leave them
        waiting for it in init_process_group until its timeout.
        """
        print(f"not training: {busy.strerror}", file=sys.stderr, flush=True)
        records.append_event(run_dir, "refused", reason=busy.strerror)
        if this_task().tasks > 1:
            raise busy
        return {"status": "refused", "reason": busy.strerror}

    def started(self, run_dir: Path, rank: int) -> None:
        """The `start` event with the threads the run applies (rank 0); quiet USR2 (others)."""
        if rank:
            signal.signal(signal.SIGUSR2, _stop_this_rank)
            return
        records.append_event(
            run_dir,
            "start",
            job_id=this_task().job_id,
            restart=int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0),
            requeues=_count(run_dir, "requeue"),
            threads=_applied_threads(run_dir, self.threads),
        )

    def fit(self, trainer: Trainer) -> dict[str, Any]:
        """Keep the trainer for `checkpoint`; the `resume` event (rank 0); fit."""
        self._trainer = trainer
        if self.rank() == 0 and trainer.resumed_from is not None:
            _log_resume(trainer)
        return trainer.fit()

    def ended(self, run_dir: Path, result: dict[str, Any], rank: int) -> None:
        """The `end` event (rank 0)."""
        if rank == 0:
            records.append_event(
                run_dir, "end", status=result.get("status"), top1=result.get("top1")
            )

    def stopped(self, run_dir: Path, stop: StopRequested, rank: int) -> None:
        """Leave after a stop the ranks agreed on (rank 0's handler has checkpointed).

        A non-zero rank leaves at once (`os._exit`: it holds no record), before the requeue
        that rank 0 asks for kills the job's tasks; rank 0 leaves as any process does (its
        lock released on the way out).
        """
        print(f"{this_task().where()}: stopped: {stop}", file=sys.stderr, flush=True)
        if rank:
            sys.stdout.flush()
            os._exit(0)
        records.append_event(run_dir, "stop", reason=str(stop))
        sys.exit(EXIT_STOPPED)

    def failed(
        self, run_dir: Path, trainer: Trainer | None, err: Exception, rank: int
    ) -> dict[str, Any]:
        """Record an exception as the run's failure (rank 0); raise it unless told not to.

        Another rank gone is not the run's failure: nothing is recorded but an event, and the
        job ends with `PeerLost`, naming the job and its nodes. A stop on purpose after a
        checkpoint (`stop_requested`) is no failure either.
        """
        if self._stopping:
            raise err
        reason = failure_reason(err)
        task = this_task()
        from experiments.train.distributed import peer_lost

        lost = task.tasks > 1 and peer_lost(err)
        if rank or lost:
            records.append_event(run_dir, "peer-lost" if lost else "rank-failed", rank=rank,
                                 reason=reason)  # fmt: skip
            if lost:
                raise PeerLost(f"{task.where()}: lost another rank: {reason}") from err
            raise err
        try:
            record_failure(run_dir, trainer, reason)
            records.append_event(run_dir, "end", status="failed", reason=reason)
        except OSError as unrecorded:  # a full disk: the run reads as interrupted
            print(f"failure not recorded: {failure_reason(unrecorded)}", file=sys.stderr)
        if self.raise_errors:
            raise err
        result = records.read_or_reason(records.read_result, run_dir)[0]
        return result or {"status": "failed", "reason": reason}

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission | None:
        """Save the trainer's state; the job to requeue, or None to stop without requeueing."""
        run_dir = self.run_dir
        path = None
        if self._trainer is not None:
            path = self._trainer.save_checkpoint("preempted")
        job_id = this_task().job_id  # the same across this job's requeues; a new job starts at 0
        requeues = sum(
            e.get("event") == "requeue" and e.get("job_id") == job_id
            for e in records.read_events(run_dir)
        )
        stop = (records.read_or_reason(records.read_job, run_dir)[0] or {}).get("stop_requested")
        records.append_event(
            run_dir,
            "checkpoint",
            path=None if path is None else str(path),
            job_id=job_id,
            stop=stop,
        )
        if stop:
            self._stopping = True
            records.append_event(run_dir, "stop", reason=stop)
            return None
        if requeues >= self.max_requeues:
            records.append_event(run_dir, "requeue-limit", limit=self.max_requeues)
            return None  # submitit raises UncompletedJobError: __call__ records the failure
        records.append_event(run_dir, "requeue", count=requeues + 1, job_id=job_id)
        return submitit.helpers.DelayedSubmission(
            RunJob(self.config_path, self.threads, self.max_requeues, self.raise_errors)
        )


def _log_resume(trainer: Trainer) -> None:
    """The `resume` event: the checkpoint and the optimizer step the job resumed from."""
    state = trainer.state
    records.append_event(
        trainer.run_dir,
        "resume",
        checkpoint=str(trainer.resumed_from),
        global_step=state["global_step"],
        epoch=state["epoch"],
        step_in_epoch=state["step_in_epoch"],
    )


def _applied_threads(run_dir: Path, share: int) -> int:
    """The torch threads the run applies with the slot's `share` (`Recipe.torch_threads`)."""
    import torch  # here: the job imports torch with the trainer anyway

    recipe = recipe_from_dict((records.read_config(run_dir) or {})["recipe"])
    return recipe.torch_threads(share) or torch.get_num_threads()


def _count(run_dir: Path, event: str) -> int:
    """How many `event` lines the run's events.jsonl holds."""
    return sum(e.get("event") == event for e in records.read_events(run_dir))


def failure_reason(err: BaseException) -> str:
    """A one-line reason for a failure (`runstate.failure_reason`; submitit's requeue limit)."""
    if isinstance(err, UncompletedJobError) and "checkpoint function returned None" in str(err):
        return "requeue limit reached (max_requeues)"
    return runstate.failure_reason(err)


def new_job(run_dir: Path, **fields_: Any) -> dict[str, Any]:
    """Write a fresh job manifest for `run_dir`; a previous submitted job moves into history."""

    def fresh(old: dict[str, Any]) -> dict[str, Any]:
        history = list(old.pop("history", []))
        if old.get("job_id"):
            history.append(dict(old))
        old.clear()
        old.update(host=socket.gethostname(), submitted=records.now(), **fields_, history=history)
        return dict(old)

    return update_job(run_dir, fresh)


def mark_stopped(job: dict[str, Any], reason: str, cancelled: bool) -> None:
    """Record in a job manifest that its job was stopped on purpose (and why)."""
    job.pop("stop_requested", None)
    job["stopped"] = {"time": records.now(), "cancelled": cancelled, "reason": reason}
