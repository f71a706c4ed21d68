"""Tiny real sweeps through the debug and local executors: skip-done, retry-failed, progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.runs import records
from experiments.runs.records import read_events, read_job
from experiments.sweep.plan import run_dir
from roadmap.cli import main
from roadmap.steps import get_step

# A run of a few seconds: 2 classes x 16 images, one optimizer step of 32, one epoch, one
# torch thread (shared machines make OpenMP barriers crawl).
TINY = [
    "--set", "recipe.epochs=1", "--set", "recipe.builtin_classes=2",
    "--set", "recipe.builtin_train_per_class=16", "--set", "recipe.builtin_val_per_class=4",
    "--set", "recipe.threads=1",
]  # fmt: skip
STEP = "resnet50_modern_recipe"


def sweep(root: Path, *args: str) -> int:
    """`roadmap sweep --preset smoke --root ROOT ARGS` with the tiny recipe."""
    return main(
        [
            "sweep",
            "--preset",
            "smoke",
            "--root",
            str(root),
            "--steps",
            STEP,
            *TINY,
            *args,
        ]
    )


def run(root: Path, seed: int) -> Path:
    return run_dir(root, "resnet50", get_step(STEP), seed)


def test_debug_sweep_runs_then_skips_done(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert sweep(tmp_path, "--seeds", "0,1", "--executor", "debug") == 0
    out = capsys.readouterr().out
    assert "to submit: 2" in out and "[2/2] done" in out
    for seed in (0, 1):
        result = records.read_json(run(tmp_path, seed) / records.RESULT)
        assert result["status"] == "done" and result["top1"] is not None
        config = records.read_json(run(tmp_path, seed) / records.CONFIG)
        assert (config["step"], config["seed"], config["preset"]) == (
            STEP,
            seed,
            "smoke",
        )
        assert read_job(run(tmp_path, seed))["executor"] == "debug"
        assert [e["event"] for e in read_events(run(tmp_path, seed))] == [
            "start",
            "end",
        ]
    stamp = (run(tmp_path, 0) / records.RESULT).stat().st_mtime_ns

    # The same command again finds both done and submits nothing; a third seed is added alone.
    assert sweep(tmp_path, "--seeds", "0,1", "--executor", "debug") == 0
    out = capsys.readouterr().out
    assert "to submit: 0" in out and "skipped: 2 done" in out and "nothing to submit" in out
    assert sweep(tmp_path, "--seeds", "0,1,2", "--executor", "debug", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "to submit: 1 (1 new" in out
    assert f"{STEP}/seed2" in out and "missing" in out
    assert (run(tmp_path, 0) / records.RESULT).stat().st_mtime_ns == stamp
    # The finished runs' img/s now drives the estimate.
    assert "measured: mean img/s of 2 finished run(s)" in out

    assert main(["status", "--root", str(tmp_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"] == {"done": 2}


def test_failed_runs_rerun_only_with_retry_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A learning rate of 1e30 passes validation, but AdamW's first real step (epoch 2, after
    # the warm-up's lr 0) makes every weight ~1e30: the loss of epoch 3 is NaN at run time.
    failing = [
        "--seeds", "0", "--executor", "debug",
        "--set", "recipe.epochs=3", "--set", "recipe.base_lr=1e30",
    ]  # fmt: skip
    assert sweep(tmp_path, *failing) == 1
    d = run(tmp_path, 0)
    result = records.read_json(d / records.RESULT)
    assert (
        result["status"] == "failed" and "non-finite loss (nan) at iteration 3" in result["reason"]
    )
    capsys.readouterr()

    assert sweep(tmp_path, *failing) == 0  # failed: skipped without --retry-failed
    out = capsys.readouterr().out
    assert "1 failed (rerun with --retry-failed)" in out and "nothing to submit" in out
    assert not list(d.glob("result.failed-*.json"))

    assert sweep(tmp_path, *failing, "--retry-failed") == 1
    out = capsys.readouterr().out
    assert "1 failed to retry" in out
    kept = records.read_json(d / "result.failed-1.json")
    assert kept["reason"] == result["reason"]  # the first failure is kept, the run ran again
    assert records.read_json(d / records.RESULT)["status"] == "failed"
    # The retry resumes from the newest checkpoint (end of epoch 2): docs/sweeps.md.
    events = [e["event"] for e in read_events(d)]
    assert events == ["start", "end", "start", "resume", "end"]
    assert main(["status", "--root", str(tmp_path)]) == 0
    assert "non-finite loss" in capsys.readouterr().out


def test_local_executor_runs_jobs_as_subprocesses(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert sweep(tmp_path, "--seeds", "0,1", "--jobs", "2") == 0
    out = capsys.readouterr().out
    assert "executor local" in out and "2 job(s) at once, each 1 process with 1 torch thread" in out
    progress = [x for x in out.splitlines() if x.startswith("[")]
    assert len(progress) == 2 and progress[-1].startswith("[2/2] done")
    assert "done 2, failed 0, running 0, queued 0" in progress[-1] and "ETA" in progress[-1]
    assert "local sweep: 2 done, 0 failed, 0 interrupted, 0 stopped" in out
    pids = set()
    for seed in (0, 1):
        d = run(tmp_path, seed)
        assert records.read_json(d / records.RESULT)["status"] == "done"
        job = read_job(d)
        assert job["executor"] == "local" and job["job_id"].isdigit()
        assert job["threads"] == 1 and Path(job["submitit_folder"]).is_dir()
        pids.add(job["job_id"])
        start = read_events(d)[0]
        assert start["job_id"] == job["job_id"] and start["threads"] == 1
    assert len(pids) == 2  # two controller processes
    manifest = records.read_json(tmp_path / "resnet50" / "sweep.json")
    assert manifest["submissions"][-1]["counts"] == {
        "done": 2,
        "failed": 0,
        "interrupted": 0,
        "stopped": 0,
    }
    assert main(["status", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(f"({pid})" in out for pid in pids)
    assert "2 runs: 2 done" in out
