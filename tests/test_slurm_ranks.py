"""Runs of several ranks on a real Slurm: 2 tasks on one node, 2 nodes, preemption, a lost node.

Against the cluster of `slurm/local-cluster.sh up --nodes 2` (node1 and node2, each a network
and UTS namespace; tests/conftest.py starts it when none answers). A run of two DDP ranks
(gloo) set up from submitit's job environment is preempted with USR2 mid-run and must requeue,
resume from rank 0's checkpoint and end bit-identical to the same run uninterrupted. A job step
killed on one node ends the job (srun --kill-on-bad-exit) without any result; a whole node
killed mid-run is Slurm's node failure: the job requeues, no result is written meanwhile, and
the run ends as the uninterrupted one. A 2-task job whose run another trainer holds ends within
seconds, failed, rank 1 ended by srun. The multi-node tests need 2 nodes: with fewer they
skip, or fail with ROADMAP_STRICT_SKIPS=1.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from slurm_fixtures import (
    CLUSTER,
    NODES,
    REPO,
    STATE,
    STEPS,
    log_step,
    roadmap,
    run_dir_of,
    sacct_states,
    same_training,
    status,
    submit,
    wait_for,
)
from strict_skips import skip_or_fail

from experiments.runs import records, runlock
from experiments.train import checkpoint as ckpt

pytestmark = pytest.mark.slurm

STEP = STEPS[0]
# 2 epochs of 5 steps of 16 images (2 ranks x 8); a progress line per step; the final
# checkpoint kept to compare weights.
TINY = ("recipe.builtin_train_per_class=8", "recipe.builtin_val_per_class=2",
        "recipe.batch_size=8", "recipe.base_batch=8", "recipe.epochs=2",
        "recipe.warmup_epochs=0.5", "recipe.log_every=1",
        "recipe.keep_final_checkpoint=true", "recipe.eval_every=1")  # fmt: skip
STEPS_PER_EPOCH = 5
PROFILES = {"2tasks": "local-2tasks.toml", "2nodes": "local-2nodes.toml"}
_references: dict[str, Path] = {}


def _profile(name: str) -> str:
    return str(REPO / "slurm" / PROFILES[name])


def _need_nodes(nodes: list[str], wanted: int) -> None:
    """Skip (fail under ROADMAP_STRICT_SKIPS=1) on a cluster with fewer nodes."""
    if len(nodes) >= wanted:
        return
    message = (f"needs a Slurm of {wanted} nodes (slurm/local-cluster.sh up --nodes "
               f"{NODES}); this one has {nodes}")  # fmt: skip
    skip_or_fail(message)


def _done(root: Path) -> bool:
    return status(root)["totals"].get("done") == 1


def _reference(tmp_root: Path, name: str, wait: bool = True) -> Path:
    """The uninterrupted run of profile `name` (submitted once per session)."""
    if name not in _references:
        _references[name] = root = tmp_root / f"reference-{name}"
        submit(root, STEP, "0", *TINY, profile=_profile(name))
    root = _references[name]
    if wait:
        wait_for(f"the {name} reference", lambda: _done(root), 420, 3)
    return root


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ranks")


def _task_logs(folder: Path, job_id: str) -> dict[int, str]:
    """Each task's stderr log of the job (both attempts: the files are appended)."""
    return {t: (folder / f"{job_id}_{t}_log.err").read_text() for t in (0, 1)}


@pytest.mark.parametrize("name", list(PROFILES))
def test_two_ranks_preempted_requeue_and_resume_bit_exactly(
    cluster: list[str], tmp_root: Path, name: str
) -> None:
    _need_nodes(cluster, 2 if name == "2nodes" else 1)
    _reference(tmp_root, name, wait=False)  # alongside the preempted one
    hit = tmp_root / f"preempted-{name}"
    job_id = submit(hit, STEP, "0", *TINY, profile=_profile(name))
    run_dir, folder = run_dir_of(hit, STEP), hit / "resnet50" / ".submitit"
    wait_for("two optimizer steps", lambda: log_step(job_id, folder) >= 2, 300, 0.5)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    wait_for("the preempted run to finish", lambda: _done(hit), 420, 3)
    ref = run_dir_of(_reference(tmp_root, name), STEP)

    result, expected = (records.read_json(d / records.RESULT) for d in (run_dir, ref))
    assert result["world_size"] == expected["world_size"] == 2
    assert result["effective_batch"] == 16 and result["lr"] == expected["lr"]
    hosts = set(expected["hosts"])
    assert len(hosts) == (2 if name == "2nodes" else 1) and hosts <= set(cluster)
    events = records.read_events(run_dir)
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["start", "checkpoint", "requeue"], kinds
    saved = Path(events[1]["path"])
    # The resume took rank 0's checkpoint: it resumes only from one whose size and SHA-256
    # match what was written and that torch loads (experiments/train/checkpoint.py).
    resume = next(e for e in events if e["event"] == "resume")
    assert resume["checkpoint"] == str(saved)
    assert resume["global_step"] == int(re.search(r"ckpt_(\d+)", saved.name).group(1)) >= 2
    assert kinds[-1] == "end" and events[-1]["status"] == "done"
    # result.json is written before the job's processes exit: Slurm says COMPLETED a moment later.
    wait_for("Slurm to end the job", lambda: sacct_states(job_id)[-1] != "RUNNING", 120, 1)
    assert "REQUEUED" in sacct_states(job_id) and sacct_states(job_id)[-1] == "COMPLETED"
    same_training(run_dir, ref)

    logs = _task_logs(folder, job_id)
    # Every task left the loop by itself after the same step: rank 1 at once, rank 0 through
    # submitit's handler (checkpoint, `scontrol requeue`, exit 255; the requeue's SIGTERM may
    # reach it while it exits). No traceback; rank 1 never killed. srun writes to task 0's log.
    assert "rank 1 of 2 in job" in logs[1] and "stopped" in logs[1], logs[1][-2000:]
    assert "Caught signal SIGUSR2" in logs[0] and "DUE TO JOB REQUEUE" in logs[0]
    assert not any("Traceback" in text for text in logs.values()), logs
    assert not re.search(r"task 1: (Terminated|Killed)", logs[0]), logs[0][-2000:]
    # Both attempts ran as two ranks (submitit's job environment, MASTER_ADDR from Slurm).
    out = (folder / f"{job_id}_1_log.out").read_text()
    assert out.count("global_rank=1(2)") == 2, out


def _kill_in_node(node: str, slurmd_too: bool) -> list[int]:
    """SIGKILL the processes of a node's namespace: the job step and rank, its slurmd too."""
    namespace = f"roadmap-{node}"
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True,
                          text=True, check=True).stdout.split()  # fmt: skip
    killed = []
    for pid in map(int, pids):
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        if slurmd_too or comm != "slurmd":
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    assert killed, f"no process to kill in {namespace}"
    return killed


def _start_killed_run(tmp_root: Path, name: str) -> tuple[str, Path]:
    """A 2-node run, once it is in epoch 2 (epoch 1's checkpoint written): job id, run dir."""
    hit = tmp_root / name
    job_id = submit(hit, STEP, "0", *TINY, profile=_profile("2nodes"))
    run_dir, folder = run_dir_of(hit, STEP), hit / "resnet50" / ".submitit"
    after = STEPS_PER_EPOCH + 1
    wait_for(f"step {after}", lambda: log_step(job_id, folder) >= after, 300, 0.5)
    return job_id, run_dir


def test_a_job_step_killed_on_one_node_ends_the_job_without_a_result(
    cluster: list[str], tmp_root: Path
) -> None:
    _need_nodes(cluster, 2)
    job_id, run_dir = _start_killed_run(tmp_root, "step-killed")
    _kill_in_node(cluster[-1], slurmd_too=False)  # the node stays up: only the job dies
    ended = lambda: sacct_states(job_id)[-1] not in ("RUNNING", "COMPLETING")  # noqa: E731
    # srun gives up on the killed step after 30-125 s (measured): "Timed out waiting for job
    # step to complete".
    wait_for("srun --kill-on-bad-exit to end the job", ended, 360, 2)
    assert sacct_states(job_id) == ["FAILED"]
    assert not (run_dir / records.RESULT).exists()  # not done, and no failure of the run
    row = status(run_dir.parents[2])["runs"][0]
    # A job gone without a result: the next sweep resumes the run from its checkpoint.
    assert row["status"] == "interrupted" and row["resumable"], row
    assert f"PeerLost: rank 0 of 2 in job {job_id} on {', '.join(cluster)}" in row["detail"]
    lost = [e for e in records.read_events(run_dir) if e["event"] == "peer-lost"]
    assert lost and lost[0]["rank"] == 0
    newest = records.list_checkpoints(run_dir / records.CHECKPOINT_DIR)[0]
    assert ckpt.check(newest) is None  # whole: the run resumes from it


def test_a_node_killed_mid_run_requeues_and_the_run_ends_as_if_whole(
    cluster: list[str], tmp_root: Path
) -> None:
    _need_nodes(cluster, 2)
    ref = run_dir_of(_reference(tmp_root, "2nodes"), STEP)
    job_id, run_dir = _start_killed_run(tmp_root, "node-killed")
    node = cluster[-1]
    try:  # every process of the node: its slurmd, the job step, the rank
        _kill_in_node(node, slurmd_too=True)
        requeued = lambda: "NODE_FAIL" in sacct_states(job_id)  # noqa: E731
        wait_for(f"Slurm to see {node} fail and requeue the job", requeued, 180, 2)
        assert not (run_dir / records.RESULT).exists()  # nothing recorded as done or failed
        row = status(run_dir.parents[2])["runs"][0]
        assert row["status"] == "pending" and row["job_id"] == job_id, row
        lost = [e for e in records.read_events(run_dir) if e["event"] == "peer-lost"]
        assert lost and lost[0]["rank"] == 0
    finally:  # the node comes back (its slurmd again, in its namespace)
        up = subprocess.run([str(CLUSTER), "up", "--nodes", str(NODES)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
    wait_for("the requeued run to finish", lambda: _done(run_dir.parents[2]), 420, 3)
    events = records.read_events(run_dir)
    assert [e["restart"] for e in events if e["event"] == "start"] == [0, 1]
    resume = next(e for e in events if e["event"] == "resume")
    assert resume["global_step"] == STEPS_PER_EPOCH  # from epoch 1's checkpoint
    same_training(run_dir, ref)
    assert (STATE / "pids" / f"slurmd-{node}.pid").exists()


def _squeue_state(job_id: str) -> str:
    """The job's state as squeue shows it ('' once it has left the queue)."""
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                         text=True).stdout  # fmt: skip
    return out.strip().splitlines()[0] if out.strip() else ""


def _elapsed_s(job_id: str) -> int:
    """Seconds the job ran (its last attempt), as sacct records them."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "ElapsedRaw"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(out.split()[-1])


def test_a_refused_rank_0_ends_a_two_task_job_at_once(cluster: list[str], tmp_root: Path) -> None:
    # Rank 0 finds the run's lock held by another trainer (this test process): it must fail, so
    # that srun --kill-on-bad-exit ends rank 1, which waits for it in init_process_group (a
    # rank 0 that returned would leave rank 1 there until the 30-minute timeout).
    _need_nodes(cluster, 1)
    # Every node busy, so the run's job waits in the queue while this test takes the lock.
    blocker = subprocess.run(["sbatch", "--parsable", "-p", "debug", "-N", str(len(cluster)),
                              "--exclusive", "-o", "/dev/null", "--wrap", "sleep 600"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    try:
        wait_for("the blocking job to run", lambda: _squeue_state(blocker) == "RUNNING", 120, 1)
        root = tmp_root / "refused"
        job_id = submit(root, STEP, "0", *TINY, profile=_profile("2tasks"))
        run_dir = run_dir_of(root, STEP)
        assert _squeue_state(job_id) == "PENDING"
        with runlock.lock_run(run_dir, by="a test holding the run"):
            subprocess.run(["scancel", blocker], check=True)
            waiting = ("PENDING", "RUNNING", "COMPLETING")
            wait_for("the refused job to end", lambda: sacct_states(job_id)[-1] not in waiting,
                     240, 1)  # fmt: skip
    finally:
        subprocess.run(["scancel", blocker], check=False)
    assert sacct_states(job_id) == ["FAILED"]
    assert _elapsed_s(job_id) <= 90  # imports, the refusal, srun ending rank 1: seconds
    kinds = [e["event"] for e in records.read_events(run_dir)]
    # Rank 1 may see rank 0's store go before srun ends it: at most its own event then.
    assert kinds[0] == "refused" and set(kinds) <= {"refused", "peer-lost", "rank-failed"}, kinds
    assert not (run_dir / records.RESULT).exists()  # no failure of the run: it was not ours
    folder = root / "resnet50" / ".submitit"
    assert "being trained by" in (folder / f"{job_id}_0_log.err").read_text()


def test_more_nodes_than_the_cluster_has_is_refused_before_anything(
    cluster: list[str], tmp_path: Path
) -> None:
    nodes = len(cluster) + 1
    profile = tmp_path / "too-many.toml"
    profile.write_text(f'partition = "debug"\nnodes = {nodes}\ntime_min = 60\n')
    root = tmp_path / "runs"
    proc = roadmap("sweep", "--preset", "smoke", "--root", str(root), "--steps", STEP,
                   "--seeds", "0", "--executor", "slurm", "--profile", str(profile),
                   check=False)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Slurm refuses the job array" in proc.stderr
    assert "requested node configuration is not available" in proc.stderr.lower()
    assert not root.exists()
