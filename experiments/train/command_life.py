"""`roadmap train`'s run: the run's life (experiments/train/run_life.py) with the CLI's hooks.

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

from experiments.runs import runstate
from experiments.train.run_life import Life, live, record_failure
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
    return live(run_dir, CommandLife(checkpoint_signals))


class CommandLife(Life):
    """`roadmap train`: checkpoint on the given signals; a failure is `RunFailed`."""

    def __init__(self, checkpoint_signals: Sequence[int]) -> None:
        self.checkpoint_signals = tuple(checkpoint_signals)

    def fit(self, trainer: Trainer) -> dict[str, Any]:
        """Fit with a checkpoint-and-`Preempted` handler on each of the signals."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            trainer.save_checkpoint(f"signal {signal.Signals(signum).name}")
            raise Preempted(signal.Signals(signum).name)

        previous = {s: signal.signal(s, on_signal) for s in self.checkpoint_signals}
        try:
            return trainer.fit()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def failed(
        self, run_dir: Path, trainer: Trainer | None, err: Exception, rank: int
    ) -> dict[str, Any]:
        """Record the failure (rank 0, when the disk still lets us); raise `RunFailed`."""
        reason = runstate.failure_reason(err)
        recorded = rank == 0
        if recorded:
            try:
                record_failure(run_dir, trainer, reason)
            except OSError:
                recorded = False
        raise RunFailed(reason, recorded) from err
