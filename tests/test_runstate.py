"""`roadmap status` on hand-made run directories: each state, reasons, job ids, totals."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.runs import records
from experiments.runs import runstate as st
from experiments.runs.scheduler import process_start
from experiments.train import checkpoint as ckpt
from roadmap.cli import main
from roadmap.steps import get_step


def make_run(root: Path, index: int, step: str, seed: int, result: dict | None = None,
             job: dict | None = None) -> Path:  # fmt: skip
    """A hand-made run; `index` is ignored: a run's folder holds no position."""
    d = root / "resnet50" / step / f"seed{seed}"
    d.mkdir(parents=True)
    records.atomic_write_json(d / records.CONFIG, {"track": "resnet50", "step": step,
                                                   "seed": seed, "preset": "smoke"})  # fmt: skip
    if result is not None:
        full = dict.fromkeys(records.RESULT_KEYS)
        full.update(result)
        records.write_result(d, full)
    if job is not None:
        records.write_job(d, job)
    return d


@pytest.fixture
def sleeper():
    """A live process standing in for a local job's controller."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_states_from_records_jobs_and_sacct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen
) -> None:
    host = __import__("socket").gethostname()
    make_run(tmp_path, 1, "resnet50_modern_recipe", 0, {"status": "done", "top1": 61.25},
             {"executor": "slurm", "job_id": "41_0", "submitted": records.now()})  # fmt: skip
    make_run(tmp_path, 1, "resnet50_modern_recipe", 1,
             {"status": "failed", "reason": "non-finite loss at iteration 12"})  # fmt: skip
    make_run(tmp_path, 2, "stage_ratio", 0, None,
             {"executor": "slurm", "job_id": "41_2", "submitted": records.now()})  # fmt: skip
    make_run(tmp_path, 2, "stage_ratio", 1, None,
             {"executor": "slurm", "job_id": "41_3", "submitted": records.now()})  # fmt: skip
    make_run(tmp_path, 3, "patchify_stem", 0, None,
             {"executor": "slurm", "job_id": "41_4", "submitted": records.now()})  # fmt: skip
    make_run(tmp_path, 3, "patchify_stem", 1, None,
             {"executor": "local", "job_id": str(sleeper.pid), "host": host,
              "proc_start": process_start(sleeper.pid)})  # fmt: skip
    make_run(tmp_path, 4, "depthwise_conv", 0, None,
             {"executor": "local", "job_id": "999999999", "host": host})  # fmt: skip
    make_run(tmp_path, 4, "depthwise_conv", 1)
    sacct = {
        "41_2": {
            "State": "RUNNING",
            "ExitCode": "0:0",
            "Reason": "None",
            "NodeList": "localhost",
        },
        "41_3": {"State": "PENDING", "ExitCode": "0:0", "Reason": "JobArrayTaskLimit"},
        "41_4": {"State": "CANCELLED by 0", "ExitCode": "0:15", "Reason": "None"},
    }
    asked: list[list[str]] = []
    monkeypatch.setattr(st, "sacct_states", lambda ids: asked.append(sorted(ids)) or sacct)
    states = {(s.step, s.seed): s for s in st.sweep_states(tmp_path)}
    assert asked == [["41_0", "41_2", "41_3", "41_4"]]  # one sacct call for the whole root
    got = {k: (s.status, s.detail) for k, s in states.items()}
    assert got[("resnet50_modern_recipe", 0)] == ("done", "61.25")
    assert got[("resnet50_modern_recipe", 1)] == (
        "failed",
        "non-finite loss at iteration 12",
    )
    assert got[("stage_ratio", 0)] == ("running", "localhost")
    assert got[("stage_ratio", 1)] == ("pending", "pending (JobArrayTaskLimit)")
    assert got[("patchify_stem", 0)] == ("failed", "CANCELLED by 0, exit 0:15")
    assert got[("patchify_stem", 1)][0] == "running"
    assert got[("depthwise_conv", 0)][0] == "interrupted"  # killed: resumable
    assert "process ended without a result" in got[("depthwise_conv", 0)][1]
    assert got[("depthwise_conv", 1)] == ("missing", "")
    assert states[("stage_ratio", 1)].job_id == "41_3"


def test_recycled_pid_is_not_alive(sleeper: subprocess.Popen) -> None:
    assert st.process_alive(sleeper.pid, process_start(sleeper.pid), None)
    assert not st.process_alive(sleeper.pid, "1", None)  # same pid, another start time
    assert st.process_alive(sleeper.pid, None, "some-other-host") is None


def test_stopped_runs(tmp_path: Path) -> None:
    make_run(tmp_path, 1, "resnet50_modern_recipe", 0, None,
             {"executor": "local", "job_id": "1", "stopped": {
                 "cancelled": True, "reason": "cancelled by roadmap cancel"}})  # fmt: skip
    make_run(tmp_path, 1, "resnet50_modern_recipe", 1, None,
             {"executor": "local", "job_id": "1", "stopped": {
                 "cancelled": False, "reason": "interrupted (Ctrl-C)"}})  # fmt: skip
    by_seed = {s.seed: s for s in st.sweep_states(tmp_path)}
    assert (by_seed[0].status, by_seed[0].detail) == (
        "failed",
        "cancelled by roadmap cancel",
    )
    assert by_seed[1].status == "interrupted"  # the next sweep resumes it


def test_status_command_table_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    make_run(tmp_path, 1, "resnet50_modern_recipe", 0, {"status": "done", "top1": 61.25},
             {"executor": "slurm", "job_id": "41_0"})  # fmt: skip
    d = make_run(tmp_path, 1, "resnet50_modern_recipe", 1, None,
                 {"executor": "slurm", "job_id": "41_1"})  # fmt: skip
    records.append_event(d, "requeue", count=1)
    make_run(tmp_path, 2, "stage_ratio", 0)
    sacct = {"41_1": {"State": "TIMEOUT", "ExitCode": "0:0", "Reason": "None"}}
    monkeypatch.setattr(st, "sacct_states", lambda ids: sacct)
    assert main(["status", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"resnet50 under {tmp_path}"
    first, second = (f"{get_step(s).index:02d}" for s in ("resnet50_modern_recipe", "stage_ratio"))
    row = next(x for x in lines if x.startswith(first))
    # A time limit without a checkpoint: interrupted, resumes from the start.
    assert "done 61.25 (41_0)" in row and "interrupted @0 [1] (41_1) r1" in row
    assert any(x.startswith(second) and "missing" in x for x in lines)
    assert (
        "3 runs: 1 done, 0 running, 0 pending, 1 interrupted, 0 failed, 0 unreadable, "
        "1 missing" in out
    )
    assert "Slurm jobs: 41" in out and "requeues: 1" in out
    assert "[1] resnet50_modern_recipe/seed1: TIMEOUT" in out

    assert main(["status", "--root", str(tmp_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"] == {"done": 1, "interrupted": 1, "missing": 1}
    assert {r["job_id"] for r in data["runs"]} == {"41_0", "41_1", None}


def test_status_of_a_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["status", "--root", str(tmp_path / "nope")]) == 2
    assert "no sweep under" in capsys.readouterr().err


def _checkpoint(run_dir: Path, step: int) -> None:
    """A real checkpoint pair at optimizer step `step`."""
    ckpt.save(run_dir / records.CHECKPOINT_DIR, step, {"x": torch.zeros(3)}, {})


def test_interrupted_runs_name_their_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oom = make_run(tmp_path, 1, "resnet50_modern_recipe", 0, None,
                   {"executor": "slurm", "job_id": "7_0", "submitted": records.now()})  # fmt: skip
    _checkpoint(oom, 12)
    _checkpoint(oom, 24)
    torn = records.list_checkpoints(oom / records.CHECKPOINT_DIR)[0]
    # The newest is torn: 12 is where it resumes.
    torn.write_bytes(torn.read_bytes()[:10])
    make_run(tmp_path, 1, "resnet50_modern_recipe", 1, None,
             {"executor": "slurm", "job_id": "7_1", "submitted": records.now()})  # fmt: skip
    # A `roadmap train` run that died: no job.json, a checkpoint.
    alone = make_run(tmp_path, 2, "stage_ratio", 0)
    _checkpoint(alone, 5)
    sacct = {
        "7_0": {"State": "OUT_OF_MEMORY", "ExitCode": "0:125", "Reason": "None"},
        "7_1": {"State": "NODE_FAIL", "ExitCode": "1:0", "Reason": "None"},
    }
    monkeypatch.setattr(st, "sacct_states", lambda ids: sacct)
    states = {(s.step, s.seed): s for s in st.sweep_states(tmp_path)}
    got = {k: (s.status, s.detail, s.checkpoint) for k, s in states.items()}
    assert got[("resnet50_modern_recipe", 0)] == (
        "interrupted",
        "OUT_OF_MEMORY, exit 0:125",
        12,
    )
    assert got[("resnet50_modern_recipe", 1)] == (
        "interrupted",
        "NODE_FAIL, exit 1:0",
        None,
    )
    assert got[("stage_ratio", 0)] == ("interrupted", "trained before, not finished", 5)


def test_a_live_trainer_holding_the_lock_is_running(
    tmp_path: Path, sleeper: subprocess.Popen
) -> None:
    d = make_run(tmp_path, 1, "resnet50_modern_recipe", 0)
    holder = {"host": socket.gethostname(), "pid": sleeper.pid, "by": "roadmap train",
              "start": process_start(sleeper.pid)}  # fmt: skip
    (d / records.LOCK).write_text(json.dumps(holder))
    state = st.sweep_states(tmp_path)[0]
    assert (state.status, state.detail) == (
        "running",
        f"roadmap train, pid {sleeper.pid}",
    )
    holder["start"] = "1"  # the same pid, another process: the trainer has ended
    (d / records.LOCK).write_text(json.dumps(holder))
    state = st.sweep_states(tmp_path)[0]
    assert (state.status, state.detail) == (
        "interrupted",
        "its trainer ended without a result",
    )


def test_slurm_jobs_that_cannot_be_checked_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_run(tmp_path, 1, "resnet50_modern_recipe", 0, None,
             {"executor": "slurm", "job_id": "9_0", "submitted": "2020-01-01T00:00Z"})  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    state = st.sweep_states(tmp_path)[0]
    assert (state.status, state.detail) == (
        "running",
        "cannot check: sacct is not on PATH",
    )


def _fake_command(folder: Path, name: str, output: str) -> None:
    """An executable `name` in `folder` that prints `output` whatever it is asked."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\n")  # printf: a shell builtin
    script.chmod(0o755)


def test_a_job_sacct_shows_ended_but_slurm_requeued_is_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between a node failure and the requeued attempt's record, sacct's newest record says
    # NODE_FAIL; slurmctld (squeue) already holds the job again. Job 9_1 has really ended.
    for seed, job_id in enumerate(("9_0", "9_1")):
        job = {"executor": "slurm", "job_id": job_id, "submitted": "2020-01-01T00:00Z"}
        make_run(tmp_path, 1, "resnet50_modern_recipe", seed, None, job)
    bin_dir = tmp_path / "bin"
    _fake_command(bin_dir, "sacct", "JobID|State|ExitCode|Reason|NodeList\n"
                  "9_0|NODE_FAIL|0:0|None|node[1-2]\n9_1|NODE_FAIL|0:0|None|node[1-2]")  # fmt: skip
    _fake_command(bin_dir, "squeue", "9_0|PENDING\n9_1|NODE_FAIL")
    monkeypatch.setenv("PATH", str(bin_dir))
    got = [(s.status, s.detail) for s in st.sweep_states(tmp_path)]
    assert got == [
        ("pending", "pending (requeued after NODE_FAIL)"),
        ("interrupted", "NODE_FAIL"),
    ]
    _fake_command(bin_dir, "squeue", "")  # the controller no longer holds either job
    assert [s.status for s in st.sweep_states(tmp_path)] == ["interrupted"] * 2


def test_failures_set_aside_never_overwrite_each_other(tmp_path: Path) -> None:
    def fail(reason: str) -> Path | None:
        (tmp_path / records.RESULT).write_text(json.dumps({"status": "failed", "reason": reason}))
        return st.set_aside_failure(tmp_path)

    assert st.set_aside_failure(tmp_path) is None  # nothing to keep
    kept = [fail(r) for r in ("first", "second", "third")]
    assert [p.name for p in kept] == [f"result.failed-{n}.json" for n in (1, 2, 3)]
    kept[0].unlink()  # a kept failure deleted by hand: 2 left, numbered 2 and 3
    assert fail("fourth").name == "result.failed-4.json"
    reasons = {p.name: json.loads(p.read_text())["reason"] for p in kept[1:]}
    assert reasons == {"result.failed-2.json": "second", "result.failed-3.json": "third"}
    assert not (tmp_path / records.RESULT).exists()
