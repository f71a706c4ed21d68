"""The local executor under signals: preemption (USR2), `roadmap cancel`, Ctrl-C. Marked slow."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from experiments.runs import records
from experiments.runs.records import CHECKPOINT_DIR, read_events, read_job
from experiments.runs.records import list_checkpoints as listing
from experiments.runs.runstate import sweep_states
from experiments.sweep import plan
from roadmap.cli import main
from roadmap.steps import get_step

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ROADMAP = str(REPO / ".venv" / "bin" / "roadmap")
STEP = "resnet50_modern_recipe"
# 2 epochs of 6 optimizer steps, one thread, a progress line per step, final checkpoint kept.
TINY = [
    "--set", "recipe.epochs=2", "--set", "recipe.builtin_train_per_class=20",
    "--set", "recipe.threads=1", "--set", "recipe.log_every=1",
    "--set", "recipe.keep_final_checkpoint=true",
]  # fmt: skip


def start_sweep(root: Path, seeds: str) -> subprocess.Popen:
    """`roadmap sweep` (local executor, one job at a time) in the background."""
    cmd = [ROADMAP, "sweep", "--preset", "smoke", "--root", str(root), "--steps", STEP,
           "--seeds", seeds, "--jobs", "1", *TINY]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_dir(root: Path, seed: int) -> Path:
    return plan.run_dir(root, "resnet50", get_step(STEP), seed)


def wait_for(what: str, predicate, timeout: float = 180):  # noqa: ANN001
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def steps_done(d: Path) -> int:
    """Optimizer steps the run's current job has reported on stdout."""
    job = read_job(d) or {}
    if not job.get("job_id"):
        return 0
    try:
        text = (Path(job["submitit_folder"]) / f"{job['job_id']}_0_log.out").read_text()
    except OSError:
        return 0
    found = re.findall(r"epoch (\d+)/\d+ step (\d+)/(\d+)", text)
    return 0 if not found else (int(found[-1][0]) - 1) * int(found[-1][2]) + int(found[-1][1])


def task_pids(controller: str) -> list[int]:
    text = Path(f"/proc/{controller}/task/{controller}/children").read_text()
    return [int(x) for x in text.split()]


def test_usr2_checkpoints_requeues_and_resumes_bit_exactly(tmp_path: Path) -> None:
    sweep = start_sweep(tmp_path / "local", "0")
    d = run_dir(tmp_path / "local", 0)
    wait_for("two optimizer steps", lambda: steps_done(d) >= 2)
    controller = read_job(d)["job_id"]
    for pid in task_pids(controller):
        subprocess.run(["kill", "-USR2", str(pid)], check=True)
    out, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, out
    assert "[1/1] done" in out

    events = read_events(d)
    kinds = [e["event"] for e in events]
    assert kinds == ["start", "checkpoint", "requeue", "start", "resume", "end"], kinds
    saved = int(re.search(r"ckpt_(\d+)\.pt", events[1]["path"]).group(1))
    assert saved >= 2 and events[4]["global_step"] == saved
    assert events[4]["checkpoint"] == events[1]["path"]
    assert {e["job_id"] for e in events if "job_id" in e} == {controller}  # same local job

    # The same run, uninterrupted, in this process (debug executor): identical weights.
    ref = tmp_path / "reference"
    code = main(["sweep", "--preset", "smoke", "--root", str(ref), "--steps", STEP,
                 "--seeds", "0", "--executor", "debug", *TINY])  # fmt: skip
    assert code == 0
    a = torch.load(listing(d / CHECKPOINT_DIR)[0], weights_only=True)["model"]
    b = torch.load(listing(run_dir(ref, 0) / CHECKPOINT_DIR)[0], weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cancel_stops_the_driver_and_its_jobs(tmp_path: Path) -> None:
    sweep = start_sweep(tmp_path, "0,1")
    wait_for("the first run to train", lambda: steps_done(run_dir(tmp_path, 0)) >= 1)
    cancel = subprocess.run([ROADMAP, "cancel", "--root", str(tmp_path)], capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert cancel.returncode == 0, cancel.stderr
    out, _ = sweep.communicate(timeout=60)
    assert sweep.returncode == 1 and "1 stopped" in out, out
    states = {s.seed: s for s in sweep_states(tmp_path)}
    assert states[0].status == "failed" and "checkpointed and stopped" in states[0].detail
    assert states[0].detail.startswith("cancelled") and states[0].resumable
    assert states[1].status == "failed" and states[1].detail.endswith("never started")
    assert [e["event"] for e in read_events(run_dir(tmp_path, 0))][-2:] == [
        "checkpoint",
        "stop",
    ]
    assert not (run_dir(tmp_path, 0) / records.RESULT).exists()


def test_ctrl_c_interrupts_and_the_next_sweep_resumes(tmp_path: Path) -> None:
    sweep = start_sweep(tmp_path, "0")
    d = run_dir(tmp_path, 0)
    wait_for("two optimizer steps", lambda: steps_done(d) >= 2)
    sweep.send_signal(signal.SIGINT)
    out, _ = sweep.communicate(timeout=120)
    assert "interrupted" in out and "checkpointed and stopped" in out, out
    state = sweep_states(tmp_path)[0]
    assert state.status == "interrupted" and state.resumable  # not failed: resubmitted as is
    rerun = start_sweep(tmp_path, "0")
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and "[1/1] done" in out, out
    resume = [e for e in read_events(d) if e["event"] == "resume"]
    assert len(resume) == 1 and resume[0]["global_step"] >= 2
    assert sweep_states(tmp_path)[0].status == "done"
