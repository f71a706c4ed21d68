"""Preemption signals with DataLoader workers (`recipe.workers=2`, persistent train and val ones).

`roadmap train` runs in a session of its own, as a Slurm job step: a signal to its loader workers
alone is ignored; one to the whole process group (Slurm signals every process of the step), in
training or in evaluation, gives one checkpoint, of the main process's state, exit 75, and a
resume that ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from conftest import TINY_OVERRIDES
from train_fixtures import epochs as log_columns
from train_fixtures import final_weights, rerun_resumes

from experiments.runs import records

STEP = "depthwise_conv"
EXTRA = (
    "recipe.log_every=1",
    "recipe.keep_final_checkpoint=true",
    "recipe.builtin_val_per_class=6",
)
WORKERS = 2  # per loader: 4 processes once the first evaluation has started


def _command(out: Path, overrides: tuple[str, ...], workers: int = WORKERS) -> list[str]:
    sets = [a for o in (*overrides, *EXTRA, f"recipe.workers={workers}") for a in ("--set", o)]
    cmd = [sys.executable, "-m", "roadmap.cli", "train", "--step", STEP, "--out", str(out)]
    return cmd + sets


class Trainer:
    """`roadmap train` in a new session; its output read by a thread, its worker processes."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)  # fmt: skip
        self.lines: list[str] = []
        self.err = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.lines.extend(self.proc.stdout)
        self.err = self.proc.stderr.read()

    def workers(self) -> list[int]:
        """The loader workers now alive (forked copies: the trainer's command line)."""
        main = psutil.Process(self.proc.pid)
        try:
            cmdline = main.cmdline()
            return [c.pid for c in main.children() if c.cmdline() == cmdline]
        except psutil.NoSuchProcess:
            return []

    def wait_for(self, what: str, ready, timeout: float = 240) -> None:
        """Poll `ready()` every 10 ms until it holds; fail if the trainer ends first."""
        end = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, f"ended before {what}:\n{self.output()}"
            assert time.monotonic() < end, f"no {what} in {timeout} s:\n{self.output()}"
            time.sleep(0.01)

    def printed(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def finish(self) -> int:
        rc = self.proc.wait(timeout=300)
        self._reader.join(timeout=30)
        return rc

    def output(self) -> str:
        return "".join(self.lines) + self.err


def _checkpoints(out: Path) -> list[dict]:
    """The .json records of the run's checkpoints, oldest first."""
    return [records.read_json(p) for p in sorted((out / records.CHECKPOINT_DIR).glob("*.json"))]


def _same_as(out: Path, reference: Path) -> None:
    """The run ended as the uninterrupted one did: weights, losses and accuracies."""
    a, b = final_weights(out), final_weights(reference)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    keys = ("epoch", "iterations", "train_loss", "top1", "top5")
    assert log_columns(out, *keys) == log_columns(reference, *keys)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run uninterrupted (in the main process: any number of workers trains alike)."""
    out = tmp_path_factory.mktemp("reference") / "r"
    proc = subprocess.run(_command(out, TINY_OVERRIDES, workers=0), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_a_signal_to_the_loader_workers_alone_is_ignored(
    tmp_path: Path, tiny_overrides, reference: Path
) -> None:
    out = tmp_path / "r"
    run = Trainer(_command(out, tiny_overrides))
    # In epoch 2 the val workers (forked at the first evaluation, persistent) are alive too.
    run.wait_for("epoch 2", lambda: run.printed("epoch 2/2 step 1/5"))
    workers = run.workers()
    assert len(workers) == 2 * WORKERS, workers
    for signum in (signal.SIGUSR2, signal.SIGUSR1, signal.SIGTERM):
        for pid in workers:
            # From another process (as Slurm's): a worker's parent's SIGTERM still ends it.
            subprocess.run(["kill", f"-{signum.name[3:]}", str(pid)], check=True)
    assert run.finish() == 0, run.output()
    assert records.read_json(out / records.RESULT)["status"] == "done"
    assert {m["reason"] for m in _checkpoints(out)} == {"epoch"}, _checkpoints(out)
    _same_as(out, reference)


def _preempt(run: Trainer, signum: int) -> None:
    """Signal the trainer's whole process group (the trainer and its workers) as Slurm does."""
    assert len(run.workers()) >= WORKERS
    os.killpg(run.proc.pid, signum)
    assert run.finish() == 75, run.output()
    assert f"stopped by {signal.Signals(signum).name}; run the same command" in run.err


def test_a_signal_to_the_process_group_in_training_checkpoints_once_and_resumes(
    tmp_path: Path, tiny_overrides, reference: Path
) -> None:
    out = tmp_path / "r"
    cmd = _command(out, tiny_overrides)
    run = Trainer(cmd)
    run.wait_for("epoch 2", lambda: run.printed("epoch 2/2 step 1/5"))
    _preempt(run, signal.SIGUSR2)
    metas = _checkpoints(out)
    signalled = [m for m in metas if m["reason"] != "epoch"]
    assert [m["reason"] for m in signalled] == ["signal SIGUSR2"], metas
    # The main process's state: a worker's copy would hold step 5 (forked before epoch 2).
    meta = signalled[0]
    assert meta["epoch"] == 1 and meta["step"] >= 6, meta
    rerun_resumes(cmd, out, meta)
    _same_as(out, reference)


def test_a_signal_to_the_process_group_in_evaluation_checkpoints_once_and_resumes(
    tmp_path: Path, tiny_overrides, reference: Path
) -> None:
    out = tmp_path / "r"
    cmd = _command(out, tiny_overrides)
    run = Trainer(cmd)
    # The val workers are forked when the first evaluation starts: it is under way.
    run.wait_for("the first evaluation", lambda: len(run.workers()) == 2 * WORKERS)
    _preempt(run, signal.SIGTERM)
    metas = _checkpoints(out)
    assert [m["reason"] for m in metas] == ["signal SIGTERM"], metas
    meta = metas[0]
    assert (meta["epoch"], meta["step_in_epoch"]) == (0, 5), meta  # before the epoch's end
    assert not run.printed("epoch 1/2:")
    rerun_resumes(cmd, out, meta)
    _same_as(out, reference)
