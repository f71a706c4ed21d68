"""One run's life, for `roadmap train` and the sweep's job alike: done, lock, train, failure.

`live(run_dir, life)`: a done run is returned as it is. Rank 0 takes the run's lock
(experiments/runs/runlock.py; `RunBusy` goes to `life.refused`), looks again whether another
trainer finished the run meanwhile, and sets a failed result aside (`life.set_aside`). Then
every rank builds the `Trainer` and fits (`life.fit`); a requested stop goes to `life.stopped`,
an exception to `life.failed` (`record_failure` writes it into the run's records), and the
lock is released however the run ends. `Life` holds what differs between the callers, each
hook a default that `roadmap train` (experiments/train/command_life.py) and the sweep's `RunJob`
(experiments/sweep/job.py) override.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.runs import records, runlock, runstate
from experiments.train.signals import StopRequested

if TYPE_CHECKING:  # torch comes with the trainer, when a run starts
    from experiments.train.trainer import Trainer


class Life:
    """The hooks of `live`: what a caller does at each point of the run's life."""

    by = "roadmap train"  # who holds the lock, as the lock file names it
    set_aside = True  # a failed result is kept aside and the run trains again
    threads = 0  # the executor's share of torch threads (Recipe.torch_threads); 0: none

    def rank(self) -> int:
        """The global rank of this process (rank 0 holds the lock and writes the records)."""
        from experiments.train.distributed import launch_rank

        return launch_rank()

    def job(self) -> tuple[str | None, str | None]:
        """(job id, scheduler) the lock records; None: Slurm's environment."""
        return None, None

    def refused(self, run_dir: Path, busy: runlock.RunBusy) -> dict[str, Any]:
        """Another trainer holds the run: raise (or return what the caller returns then)."""
        raise busy

    def started(self, run_dir: Path, rank: int) -> None:
        """The run is this process's (rank 0 holds the lock); no trainer yet."""

    def fit(self, trainer: Trainer) -> dict[str, Any]:
        """Train to the end and return the result."""
        return trainer.fit()

    def stopped(self, run_dir: Path, stop: StopRequested, rank: int) -> None:
        """A stop the ranks agreed on (a signal): re-raised unless this leaves otherwise."""
        raise stop

    def failed(
        self, run_dir: Path, trainer: Trainer | None, err: Exception, rank: int
    ) -> dict[str, Any]:
        """The run failed at work: record it (rank 0) and raise."""
        if rank == 0:
            record_failure(run_dir, trainer, runstate.failure_reason(err))
        raise err

    def ended(self, run_dir: Path, result: dict[str, Any], rank: int) -> None:
        """The trainer returned its result."""


def live(run_dir: str | Path, life: Life) -> dict[str, Any]:
    """Train the run in `run_dir` through its life (module docstring) and return the result."""
    run_dir = Path(run_dir)
    done = runstate.done_result(run_dir)
    if done is not None:
        return done
    rank, lock = life.rank(), None
    if rank == 0:
        job_id, scheduler = life.job()
        try:
            lock = runlock.lock_run(run_dir, life.by, job_id, scheduler)
        except runlock.RunBusy as busy:
            return life.refused(run_dir, busy)
    try:
        if rank == 0:
            done = runstate.done_result(run_dir)  # another trainer finished it meanwhile
            if done is not None:
                return done
            if life.set_aside:
                runstate.set_aside_failure(run_dir)
        return _train(run_dir, life, rank)
    finally:
        if lock is not None:
            lock.release()


def _train(run_dir: Path, life: Life, rank: int) -> dict[str, Any]:
    """Build the trainer and fit, handing a stop or a failure to `life`."""
    life.started(run_dir, rank)
    trainer = None
    try:
        from experiments.train.trainer import Trainer

        trainer = Trainer(run_dir, life.threads)
        result = life.fit(trainer)
    except StopRequested as stop:
        life.stopped(run_dir, stop, rank)
        raise
    except Exception as err:
        return life.failed(run_dir, trainer, err, rank)
    life.ended(run_dir, result, rank)
    return result


def record_failure(run_dir: Path, trainer: Trainer | None, reason: str) -> None:
    """Write the run's failure (its log, result.json); an OSError if the disk refuses."""
    records.remove_temp_files(run_dir)  # a write the failure cut short
    if trainer is not None:
        trainer.record_failure(reason)
    runstate.write_failure(run_dir, reason)
