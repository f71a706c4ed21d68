"""One run's life: done returns at once, a failure is set aside and resumed, signals checkpoint.

`run(run_dir)` is what `roadmap train` calls after `prepare_run`. On any of its
`checkpoint_signals` the run saves a checkpoint and raises `Preempted`; the command then exits
with `EXIT_PREEMPTED` (75, EX_TEMPFAIL) and the same command resumes. (The sweep's submitit
job, experiments/sweep/job.py, handles USR2 through submitit instead.)
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from experiments import runstate
from experiments.train.signals import StopRequested
from experiments.train.trainer import Trainer

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: checkpointed on a signal; run again to resume


class Preempted(StopRequested):
    """Raised after a signal-triggered checkpoint to leave the training loop."""


def run(run_dir: str | Path, checkpoint_signals: Sequence[int] = ()) -> dict[str, Any]:
    """Train the run in `run_dir` (resuming if it can) and return its result.

    A done run is returned as it is; a failed one trains again from its newest checkpoint, its
    old result kept as result.failed-<n>.json. On any of `checkpoint_signals` the run saves a
    checkpoint and raises `Preempted`. An exception is recorded as a failed result, then raised.
    """
    run_dir = Path(run_dir)
    done = runstate.done_result(run_dir)
    if done is not None:
        return done
    runstate.set_aside_failure(run_dir)
    try:
        trainer = Trainer(run_dir)
    except Exception as err:
        runstate.write_failure(run_dir, f"{type(err).__name__}: {err}")
        raise

    def on_signal(signum: int, frame: FrameType | None) -> None:
        trainer.save_checkpoint(f"signal {signal.Signals(signum).name}")
        raise Preempted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in checkpoint_signals}
    try:
        return trainer.fit()
    except Exception as err:
        trainer.record_failure(f"{type(err).__name__}: {err}")
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
