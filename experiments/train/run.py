"""One run's life: done returns at once, the run's lock, a failure set aside and resumed.

`run(run_dir)` is what `roadmap train` calls after `prepare_run`. It first takes the run's lock
(experiments/runs/runlock.py: `RunBusy` names another trainer at work on it; an OSError there, such
as a read-only folder, comes before any work). Anything that goes wrong after that is the run
failing: it is recorded in result.json when that can still be written and raised as `RunFailed`
(its `reason` is one line). On any of its `checkpoint_signals` the run saves a checkpoint and
raises `Preempted`; the command then exits with `EXIT_PREEMPTED` (75, EX_TEMPFAIL) and the same
command resumes. (The sweep's submitit job, experiments/sweep/job.py, handles USR2 through
submitit instead.)
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from experiments.runs import records, runlock, runstate
from experiments.train.distributed import launch_rank
from experiments.train.signals import StopRequested
from experiments.train.trainer import Trainer

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: checkpointed on a signal; run again to resume


class Preempted(StopRequested):
    """Raised after a signal-triggered checkpoint to leave the training loop."""


class RunFailed(Exception):
    """The run failed at work; `reason` is one line, `recorded` whether result.json says so."""

    def __init__(self, reason: str, recorded: bool) -> None:
        note = "" if recorded else " (not recorded: result.json could not be written)"
        super().__init__(reason + note)
        self.reason, self.recorded = reason, recorded


def run(run_dir: str | Path, checkpoint_signals: Sequence[int] = ()) -> dict[str, Any]:
    """Train the run in `run_dir` (resuming if it can) and return its result.

    A done run is returned as it is; a failed one trains again from its newest checkpoint, its
    old result kept as result.failed-<n>.json. On any of `checkpoint_signals` the run saves a
    checkpoint and raises `Preempted`. See the module docstring for what else it raises.
    """
    run_dir = Path(run_dir)
    done = runstate.done_result(run_dir)
    if done is not None:
        return done
    if launch_rank() != 0:  # another rank of a distributed run: rank 0 holds the run
        return _train(run_dir, checkpoint_signals)
    with runlock.lock_run(run_dir):
        # Another trainer may have finished it before we took the lock.
        done = runstate.done_result(run_dir)
        if done is not None:
            return done
        runstate.set_aside_failure(run_dir)
        return _train(run_dir, checkpoint_signals)


def _train(run_dir: Path, checkpoint_signals: Sequence[int]) -> dict[str, Any]:
    """Build the trainer and fit; a failure is recorded and raised as `RunFailed`."""
    trainer = None
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        assert trainer is not None
        trainer.save_checkpoint(f"signal {signal.Signals(signum).name}")
        raise Preempted(signal.Signals(signum).name)

    try:
        trainer = Trainer(run_dir)
        previous = {s: signal.signal(s, on_signal) for s in checkpoint_signals}
        return trainer.fit()
    except Exception as err:
        raise _failure(run_dir, trainer, err) from err
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _failure(run_dir: Path, trainer: Trainer | None, err: Exception) -> RunFailed:
    """Record `err` as the run's failure (when the disk still lets us); the `RunFailed`."""
    reason = runstate.failure_reason(err)
    if launch_rank() != 0:  # rank 0 records the run
        return RunFailed(reason, recorded=False)
    records.remove_temp_files(run_dir)  # a write the failure cut short
    try:
        if trainer is not None:
            trainer.record_failure(reason)
        runstate.write_failure(run_dir, reason)
    except OSError:
        return RunFailed(reason, recorded=False)
    return RunFailed(reason, recorded=True)
