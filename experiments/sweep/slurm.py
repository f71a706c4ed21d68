"""The Slurm executor: one job array per sweep, the cluster's verdict before it, cancelling.

Cluster specifics come only from a profile (experiments/sweep/profile.py, slurm/*.toml).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit

from experiments.runs.locks import update_job
from experiments.runs.runstate import RunState
from experiments.runs.scheduler import SLURM_RUNNING, sacct_states
from experiments.submitit_private import sbatch_script
from experiments.sweep.job import STOP_WAIT_S, RunJob, failure_reason, mark_stopped, new_job
from experiments.sweep.profile import Profile
from experiments.sweep.snapshot import CodeSnapshot
from roadmap.errors import UserError

SLURM_DEFAULTS: dict[str, Any] = {"job_name": "roadmap"}


def submit_slurm(
    configs: list[Path],
    profile: Profile,
    folder: Path,
    job_name: str,
    code: CodeSnapshot | None = None,
) -> list[str]:
    """Submit one Slurm job array (one task per config); write each run's job.json; job ids.

    With `code`, every task (and requeue: the same script) imports from that snapshot.
    """
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=profile.max_requeues)
    params = profile.slurm_parameters()
    if code is not None:
        params["setup"] = [*code.shell_setup(), *params.get("setup", [])]
    executor.update_parameters(job_name=job_name, **params)
    jobs = []
    try:
        with executor.batch():
            for config in configs:
                job = RunJob(str(config), profile.threads, profile.max_requeues)
                jobs.append(executor.submit(job))
    except Exception as err:  # sbatch refused: nothing was submitted
        raise UserError(f"sbatch refused the job array: {failure_reason(err)}") from err
    for config, job in zip(configs, jobs, strict=True):
        new_job(
            config.parent,
            executor="slurm",
            job_id=str(job.job_id),
            submitit_folder=str(folder),
            profile=profile.path,
            code_snapshot=None if code is None else str(code.path),
        )
    return [str(j.job_id) for j in jobs]


def check_slurm(profile: Profile, tasks: int, folder: Path) -> str:
    """Ask Slurm whether it would accept the job array (`sbatch --test-only`); its answer.

    Catches what only the cluster knows (partition, account, qos, constraint, limits) before
    anything is written or submitted; a refusal is a UserError with sbatch's message.
    """
    params = SLURM_DEFAULTS | profile.slurm_parameters()
    script = sbatch_script("true", folder, max(tasks, 1), **params)
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="roadmap-test-only-") as f:
        f.write(script)
        f.flush()
        command = ["sbatch", "--test-only", f.name]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired:
            raise UserError("sbatch --test-only did not answer within 90 s") from None
    answer = " ".join((proc.stderr + proc.stdout).split())
    if proc.returncode:
        where = f" (profile {profile.path})" if profile.path else ""
        raise UserError(f"Slurm refuses the job array{where}: {answer}")
    return answer


def cancel_slurm(
    states: list[RunState], reason: str, graceful: bool, out: Callable[[str], None]
) -> None:
    """Cancel Slurm jobs; running ones first get USR2 + stop_requested (checkpoint, no requeue)."""
    if shutil.which("scancel") is None:
        raise FileNotFoundError("scancel is not on PATH: run roadmap cancel where Slurm is")
    running = [s for s in states if s.status == "running"]
    if graceful and running:
        for s in running:
            update_job(s.run_dir, lambda job: job.update(stop_requested=reason))
        ids = [str(s.job_id) for s in running]
        subprocess.run(["scancel", "--signal=USR2", *ids], check=False)
        out(f"asked {len(ids)} running job(s) to checkpoint and stop: {' '.join(ids)}")
        _wait_until_stopped(ids)
    ids = [str(s.job_id) for s in states]
    subprocess.run(["scancel", *ids], check=False)
    for s in states:
        update_job(s.run_dir, lambda job: mark_stopped(job, reason, cancelled=True))
    out(f"cancelled {len(ids)} Slurm job(s): {' '.join(ids)}")


def _wait_until_stopped(ids: list[str]) -> None:
    """Wait (at most STOP_WAIT_S) until sacct shows none of `ids` running."""
    deadline = time.time() + STOP_WAIT_S
    while time.time() < deadline:
        info = sacct_states(ids)
        if all(info.get(i, {}).get("State", "").split(" ")[0] not in SLURM_RUNNING for i in ids):
            return
        time.sleep(2)
