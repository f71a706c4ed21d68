"""`roadmap train` in its own process: SIGUSR2 mid-epoch checkpoints and exits 75; rerun resumes.

Also: forked copies of the trainer (loader workers) never run its handlers (more with workers:
tests/test_train_workers.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
import torch
from train_fixtures import rerun_resumes

from experiments.runs import records
from experiments.runs.records import CHECKPOINT_DIR
from experiments.train.signals import PREEMPTION_SIGNALS, DeferredSignals, blocked, worker_signals


def test_signal_checkpoints_exits_75_and_the_same_command_resumes(
    tmp_path: Path, tiny_overrides
) -> None:
    sets = [a for o in (*tiny_overrides, "recipe.log_every=1") for a in ("--set", o)]
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "roadmap.cli", "train", "--step", "depthwise_conv"]
    cmd += ["--out", str(out), *sets]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:  # plain progress lines: stdout is not a terminal
        seen.append(line)
        if "epoch 2/2 step 1/5" in line:
            proc.send_signal(signal.SIGUSR2)
            break
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, "".join(seen) + rest + err
    assert "stopped by SIGUSR2; run the same command to resume" in err
    assert not (out / records.RESULT).exists()
    meta = records.read_json(sorted((out / CHECKPOINT_DIR).glob("*.json"))[-1])
    assert meta["reason"] == "signal SIGUSR2" and meta["epoch"] == 1
    assert 1 <= meta["step_in_epoch"] <= 5  # where the step under way when it came ended

    rerun_resumes(cmd, out, meta)


def test_a_forked_copy_never_runs_the_deferred_handlers(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    previous = signal.signal(signal.SIGUSR2, lambda s, f: calls.open("a").write(f"{os.getpid()}\n"))
    deferred = DeferredSignals((signal.SIGUSR2,))
    deferred.install()
    try:
        child = os.fork()
        if child == 0:  # a loader worker before its worker_init_fn
            os.kill(os.getpid(), signal.SIGUSR2)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not calls.exists()
        os.kill(os.getpid(), signal.SIGUSR2)  # the process that installed them: runs
        assert calls.read_text() == f"{os.getpid()}\n"
    finally:
        deferred.uninstall()
        signal.signal(signal.SIGUSR2, previous)


class _Pids(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        return os.getpid()


def test_loader_workers_ignore_preemption_signals_but_end_on_their_parents_sigterm() -> None:
    loader = torch.utils.data.DataLoader(_Pids(), num_workers=2, persistent_workers=True,
                                         worker_init_fn=worker_signals)  # fmt: skip
    pids = {int(p) for p in loader}
    assert len(pids) == 2
    for name in ("USR1", "USR2", "TERM"):  # from another process: a process group's signal
        subprocess.run(["kill", f"-{name}", *map(str, pids)], check=True)
    assert {int(p) for p in loader} == pids  # still serving
    for pid in pids:
        os.kill(pid, signal.SIGTERM)  # from the parent (torch's, multiprocessing's way)
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in pids], timeout=10)
    assert not alive and {p.returncode for p in gone} == {0}


class _Stop(Exception):
    """What the test's handler raises (as the CLI's raises Preempted)."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_what_python_swallows_of_a_handler_is_raised_at_the_next_safe_point() -> None:
    def handler(signum, frame):
        raise _Stop

    class Dropped:  # where a handler's exception is only printed: __del__, at-fork hooks
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGUSR2)

    previous = signal.signal(signal.SIGUSR2, handler)
    deferred = DeferredSignals((signal.SIGUSR2,))
    deferred.install()
    try:
        Dropped()  # the handler runs inside __del__: its _Stop goes nowhere
        with pytest.raises(_Stop):
            deferred.raise_swallowed()
        deferred.raise_swallowed()  # once only
    finally:
        deferred.uninstall()
        signal.signal(signal.SIGUSR2, previous)


def test_workers_start_with_the_preemption_signals_blocked_and_none_is_lost() -> None:
    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: calls.append(s))
    try:
        with blocked():
            # To this thread: a signal to the process may go to any thread that does not block
            # it (a library's), and Python then runs the handler at once; blocked() holds it
            # for the thread that forks, whose mask the workers inherit.
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)
            child = os.fork()
            if child == 0:  # a worker before its worker_init_fn: the mask is inherited
                mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
                os._exit(0 if set(PREEMPTION_SIGNALS) <= mask else 1)
            assert calls == []  # held, not lost
        assert calls == [signal.SIGUSR2]
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        signal.signal(signal.SIGUSR2, previous)
