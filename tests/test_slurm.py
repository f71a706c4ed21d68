"""The sweep against a real Slurm (slurm/local-cluster.sh): arrays, preemption, cancellation.

Needs a running cluster; the `cluster` fixture (tests/conftest.py) starts one when none answers
(root on Debian: `slurm/local-cluster.sh up --nodes 2`) and stops it again. Without one these
tests skip with the reason, except with ROADMAP_STRICT_SKIPS=1 (.ci/run), where that fails. Run with
`pytest -m slurm` (.ci/run does). Several ranks and nodes: tests/test_slurm_ranks.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch
from slurm_fixtures import (
    PROFILE,
    STEPS,
    log_step,
    roadmap,
    status,
    statuses,
    submit,
    wait_for,
    weights,
)

from experiments.runs import records
from experiments.runs.records import CHECKPOINT_DIR, read_events, read_job
from experiments.runs.records import list_checkpoints as listing
from experiments.sweep import plan
from roadmap.steps import get_step

pytestmark = pytest.mark.slurm


def test_smoke_sweep_2_steps_x_2_seeds(cluster: list[str], tmp_path: Path) -> None:
    array = submit(tmp_path, ",".join(STEPS), "0,1", "recipe.epochs=1",
                   "recipe.builtin_train_per_class=50")  # fmt: skip
    wait_for("4 runs done", lambda: status(tmp_path)["totals"].get("done") == 4, 420, 5)
    runs = statuses(tmp_path)
    assert {r["job_id"] for r in runs.values()} == {f"{array}_{i}" for i in range(4)}
    for (step, seed), r in runs.items():
        result = records.read_json(Path(r["run_dir"]) / records.RESULT)
        assert result["status"] == "done" and r["executor"] == "slurm", (step, seed)
        config = records.read_json(Path(r["run_dir"]) / records.CONFIG)
        assert config["provenance"]["packages"]["submitit"]
        start = read_events(Path(r["run_dir"]))[0]
        assert start["job_id"] == r["job_id"]
    table = roadmap("status", "--root", str(tmp_path)).stdout
    assert "done" in table and f"({array}_0)" in table and f"({array}_3)" in table
    assert f"Slurm jobs: {array}" in table and "4 runs: 4 done" in table
    sacct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", array, "-o", "JobID,State"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert sorted(sacct.split()) == sorted(f"{array}_{i}|COMPLETED" for i in range(4))
    # Relaunching the same command submits nothing.
    again = roadmap("sweep", "--preset", "smoke", "--root", str(tmp_path), "--steps",
                    ",".join(STEPS), "--seeds", "0,1", "--executor", "slurm", "--profile",
                    PROFILE, "--set", "recipe.epochs=1", "--set",
                    "recipe.builtin_train_per_class=50").stdout  # fmt: skip
    assert "skipped: 4 done" in again and "nothing to submit" in again


@pytest.mark.parametrize("workers", [0, 2])
def test_preempted_job_checkpoints_requeues_and_resumes_bit_exactly(
    cluster: list[str], tmp_path: Path, workers: int
) -> None:
    # 2 epochs of 6 steps; a progress line per step; keep the final checkpoint to compare.
    # With loader workers, USR2 reaches them too (Slurm signals every process of the step).
    tiny = ("recipe.epochs=2", "recipe.builtin_train_per_class=20", "recipe.log_every=1",
            "recipe.keep_final_checkpoint=true", f"recipe.workers={workers}")  # fmt: skip
    hit, ref = tmp_path / "preempted", tmp_path / "reference"
    array = submit(hit, STEPS[0], "0", *tiny)
    submit(ref, STEPS[0], "0", *tiny)  # the same run, uninterrupted, alongside
    run_dir = plan.run_dir(hit, "resnet50", get_step(STEPS[0]), 0)
    folder = hit / "resnet50" / ".submitit"
    job_id = read_job(run_dir)["job_id"]
    assert job_id == array  # a one-task sweep is a plain job, not an array
    wait_for("two optimizer steps", lambda: log_step(job_id, folder) >= 2, 240, 0.5)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    wait_for("the run to finish", lambda: status(hit)["totals"].get("done") == 1, 300, 3)
    wait_for("the reference", lambda: status(ref)["totals"].get("done") == 1, 300, 3)

    events = read_events(run_dir)
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["start", "checkpoint", "requeue"], kinds
    assert kinds.count("requeue") == 1 and kinds.count("checkpoint") == 1, kinds  # no worker's
    saved = events[1]["path"]
    step = int(re.search(r"ckpt_(\d+)\.pt", saved).group(1))
    assert step >= 2  # saved mid-training, not at step 0
    restart = events[3]
    assert restart["event"] == "start" and restart["restart"] == 1  # SLURM_RESTART_COUNT
    resume = events[4]
    assert resume["event"] == "resume" and resume["checkpoint"] == saved
    assert resume["global_step"] == step  # resumed from that checkpoint, not from scratch
    assert kinds[-1] == "end" and events[-1]["status"] == "done"
    assert status(hit)["runs"][0]["requeues"] == 1
    sacct = subprocess.run(["sacct", "-X", "-n", "-P", "--duplicates", "-j", job_id,
                            "-o", "JobID,State"], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    assert "REQUEUED" in sacct and "COMPLETED" in sacct, sacct

    ref_dir = plan.run_dir(ref, "resnet50", get_step(STEPS[0]), 0)
    a, b = weights(run_dir), weights(ref_dir)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ from the uninterrupted run"
    log_a, log_b = records.read_log(run_dir), records.read_log(ref_dir)
    assert [r["train_loss"] for r in log_a] == [r["train_loss"] for r in log_b]
    # evaluated epochs only (the smoke preset evaluates every eval_every-th and the last)
    assert [r.get("top1") for r in log_a] == [r.get("top1") for r in log_b]
    assert log_a[-1]["top1"] is not None


def test_cancelled_jobs_show_as_failed_with_the_reason(cluster: list[str], tmp_path: Path) -> None:
    array = submit(tmp_path, STEPS[0], "0,1", "recipe.log_every=1")
    running = lambda: all(r["status"] == "running" for r in status(tmp_path)["runs"])  # noqa: E731
    wait_for("both array tasks running", running, 180)
    first = f"{array}_0"
    subprocess.run(["scancel", first], check=True)  # from outside, as a user or admin would
    failed = lambda: statuses(tmp_path)[(STEPS[0], 0)]["status"] == "failed"  # noqa: E731
    wait_for("status to report the cancelled job", failed, 120)
    r0 = statuses(tmp_path)[(STEPS[0], 0)]
    assert r0["job_id"] == first and r0["detail"].startswith("CANCELLED"), r0
    table = roadmap("status", "--root", str(tmp_path)).stdout
    assert f"failed [1] ({first})" in table and f"{STEPS[0]}/seed0: CANCELLED" in table

    # `roadmap cancel` stops the other: checkpoint first (USR2), then no requeue.
    out = roadmap("cancel", "--root", str(tmp_path)).stdout
    assert f"{array}_1" in out
    r1 = statuses(tmp_path)[(STEPS[0], 1)]
    assert r1["status"] == "failed" and r1["detail"].startswith("cancelled by roadmap cancel")
    kinds = [e["event"] for e in read_events(Path(r1["run_dir"]))]
    assert "checkpoint" in kinds and "stop" in kinds and "requeue" not in kinds
    assert listing(Path(r1["run_dir"]) / CHECKPOINT_DIR)  # resumable with --retry-failed
    queue = subprocess.run(["squeue", "-h", "-j", array], capture_output=True, text=True).stdout
    assert not queue.strip()


def test_a_profile_the_cluster_refuses_is_an_error_before_anything(
    cluster: list[str], tmp_path: Path
) -> None:
    profile = tmp_path / "wrong.toml"
    profile.write_text('partition = "gpu-a100"\ncpus_per_task = 1\n')
    root = tmp_path / "runs"
    proc = roadmap("sweep", "--preset", "smoke", "--root", str(root), "--steps", STEPS[0],
                   "--seeds", "0", "--executor", "slurm", "--profile", str(profile),
                   check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "Slurm refuses the job array" in proc.stderr
    assert "invalid partition" in proc.stderr.lower()
    assert not root.exists()
