"""One trainer per run: `roadmap train` and sweep jobs take the same lock; who holds it is named.

A lock left by a dead process on this host is taken over; one of another host is honoured
until sacct says its job has ended, or the same job asks again (requeued).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.runs import records, runlock
from experiments.sweep.job import RunJob
from experiments.train.config import prepare_run
from roadmap.cli import main

HOST = socket.gethostname()


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return prepare_run("resnet50", "kernel_7", 0, "smoke", tmp_path / "r")


def leave(run: Path, **holder: object) -> None:
    """A holder's record left in the lock file, as by a process that did not release it."""
    record = {"host": HOST, "pid": 999999999, "start": "1", "by": "roadmap train",
              "since": "2026-01-01T00:00:00+00:00", **holder}  # fmt: skip
    (run / records.LOCK).write_text(json.dumps(record))


def test_a_second_lock_is_refused_naming_the_holder(run: Path) -> None:
    with runlock.lock_run(run, by="roadmap train", job_id="77", scheduler="slurm"):
        with pytest.raises(runlock.RunBusy) as busy:
            runlock.lock_run(run)
        text = str(busy.value.strerror)
        assert f"host {HOST}, pid {os.getpid()}, job 77 (slurm)" in text
        assert text.endswith("not starting a second trainer")
        assert busy.value.filename == str(run / records.LOCK)
    assert records.read_lock(run) is None  # released: the file is empty
    runlock.lock_run(run).release()  # free again


def test_a_dead_holder_on_this_host_is_taken_over_and_its_leftovers_go(
    run: Path,
) -> None:
    leave(run, job_id="5", scheduler="local")
    leftovers = [run / ".result.json.abc.tmp", run / "checkpoints" / ".ckpt.def.tmp"]
    for path in leftovers:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half a write")
    with runlock.lock_run(run) as lock:
        assert lock.took_over["pid"] == 999999999
        assert records.read_lock(run)["pid"] == lock.holder["pid"]
    assert not any(p.exists() for p in leftovers)


@pytest.mark.parametrize(
    ("sacct_state", "taken"),
    [("RUNNING", False), ("PENDING", False), ("UNAVAILABLE", False), (None, False),
     ("COMPLETED", True), ("NODE_FAIL", True), ("CANCELLED by 0", True)],
)  # fmt: skip
def test_another_hosts_holder_stands_until_its_job_has_ended(
    run: Path, monkeypatch: pytest.MonkeyPatch, sacct_state: str | None, taken: bool
) -> None:
    leave(run, host="node-17", pid=4242, job_id="123_4", scheduler="slurm")
    answer = {} if sacct_state is None else {"123_4": {"State": sacct_state}}
    monkeypatch.setattr(runlock, "sacct_states", lambda ids: answer)
    if taken:
        runlock.lock_run(run).release()
        return
    with pytest.raises(runlock.RunBusy) as busy:
        runlock.lock_run(run)
    assert "host node-17, pid 4242, job 123_4 (slurm)" in busy.value.strerror
    assert "Slurm job 123_4:" in busy.value.strerror


def test_the_same_job_takes_its_own_lock_back(run: Path) -> None:
    # A requeued Slurm job starts on another node with the same job id.
    leave(run, host="node-17", pid=4242, job_id="123_4", scheduler="slurm")
    runlock.lock_run(run, job_id="123_4", scheduler="slurm").release()


def test_another_hosts_process_without_a_job_stands(run: Path) -> None:
    leave(run, host="laptop", pid=4242)
    with pytest.raises(runlock.RunBusy) as busy:
        runlock.lock_run(run)
    assert f"if that process is gone, delete {run / records.LOCK}" in busy.value.strerror


def test_a_sweep_job_leaves_a_held_run_alone(run: Path) -> None:
    with runlock.lock_run(run):
        result = RunJob(str(run / records.CONFIG), threads=1)()
    assert result["status"] == "refused" and "being trained by" in result["reason"]
    assert not (run / records.RESULT).exists()  # not a failure of the run
    assert [e["event"] for e in records.read_events(run)] == ["refused"]


def test_a_refused_rank_0_of_a_multi_task_job_fails_at_once(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Returning would exit 0 and leave the other ranks in init_process_group for its timeout;
    # failing lets srun's --kill-on-bad-exit end them.
    from experiments.sweep import job

    monkeypatch.setattr(job, "this_task", lambda: job.Task(rank=0, tasks=2, job_id="7"))
    with runlock.lock_run(run), pytest.raises(runlock.RunBusy, match="being trained by"):
        RunJob(str(run / records.CONFIG), threads=1)()
    assert not (run / records.RESULT).exists()
    assert [e["event"] for e in records.read_events(run)] == ["refused"]


def test_a_second_roadmap_train_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, tiny_overrides: tuple[str, ...]
) -> None:
    out = tmp_path / "r"
    sets = [a for o in (*tiny_overrides, "recipe.log_every=1") for a in ("--set", o)]
    argv = ["train", "--step", "depthwise_conv", "--out", str(out), *sets]
    cmd = [sys.executable, "-m", "roadmap.cli", *argv]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in first.stdout:
        seen.append(line)
        if "epoch 1/2 step 1/" in line:
            break
    assert main(argv) == 2  # while the first one trains
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("roadmap train: error: "), err
    assert f"is being trained by host {HOST}, pid {first.pid}" in err
    assert "roadmap train" in err and f"({out / records.LOCK})" in err
    rest, _ = first.communicate(timeout=300)
    assert first.returncode == 0, "".join(seen) + rest
    assert [row["epoch"] for row in records.read_log(out)] == [1, 2]  # none cut back
    assert records.read_result(out)["status"] == "done"
