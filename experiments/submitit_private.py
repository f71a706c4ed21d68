"""The parts of submitit that are not its public API, reached from this module alone.

Why each is needed, and what replaces it if submitit changes (tests/test_private_apis.py fails
loudly when the installed submitit no longer has them; pyproject.toml pins the tested minor):

- `_make_sbatch_string` (submitit.slurm.slurm): the exact sbatch script submitit would submit,
  so that `sbatch --test-only` can judge the job array before anything is written.
- `LocalExecutor._submit_command` and the environment contract of its controller
  (`submitit.local.local.start_controller`, read by `submitit.local._local`): the local executor
  must start each controller in its own session, so that Ctrl-C on the sweep reaches the sweep
  alone and it can ask its jobs to checkpoint; submitit starts them in the sweep's session.
- `<job id>_0_result.pkl`: the file in which a submitit job leaves its outcome (a traceback when
  it failed); read for the reason of a job that ended without writing a result
  (`job_outcome_error`, the reader the sweep hands to experiments/runs/runstate.py).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import submitit
from submitit.slurm.slurm import _make_sbatch_string

# The module that runs a local job's controller (`start_controller` starts it the same way).
LOCAL_CONTROLLER = "submitit.local._local"


def sbatch_script(command: str, folder: Path, map_count: int, **params: Any) -> str:
    """The sbatch script submitit writes for an array of `map_count` tasks."""
    return _make_sbatch_string(command=command, folder=folder, map_count=map_count, **params)


def controller_env(
    ntasks: int, command: str, timeout_min: float, signal_delay_s: int, gpus: str
) -> dict[str, str]:
    """The variables `start_controller` sets for a local controller (no setup lines)."""
    return {
        "SUBMITIT_LOCAL_NTASKS": str(ntasks),
        "SUBMITIT_LOCAL_COMMAND": command,
        "SUBMITIT_LOCAL_TIMEOUT_S": str(int(60 * timeout_min)),
        "SUBMITIT_LOCAL_SIGNAL_DELAY_S": str(int(signal_delay_s)),
        "SUBMITIT_LOCAL_NODEID": "0",
        "SUBMITIT_LOCAL_JOB_NUM_NODES": "1",
        "SUBMITIT_STDERR_TO_STDOUT": "",
        "SUBMITIT_EXECUTOR": "local",
        "CUDA_VISIBLE_DEVICES": gpus,
        "SUBMITIT_LOCAL_WITH_SHELL": "",
    }


class SessionLocalExecutor(submitit.LocalExecutor):
    """LocalExecutor whose controllers start in their own session (safe from the sweep's ^C).

    `environ` and `cwd` (default: this process's) are the controller's, and so its tasks'.
    """

    def __init__(
        self,
        folder: str | Path,
        environ: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(folder, **kwargs)
        self.environ, self.cwd = environ, cwd

    def _submit_command(self, command: str) -> submitit.LocalJob:
        ntasks = self.parameters.get("tasks_per_node", 1)
        gpus = self.parameters.get("visible_gpus", ())
        env = dict(os.environ if self.environ is None else self.environ)
        env.update(
            controller_env(
                ntasks,
                command,
                self.parameters.get("timeout_min", 2.0),
                self.parameters.get("signal_delay_s", 30),
                ",".join(str(g) for g in gpus),
            )
        )
        cmd = [sys.executable, "-m", LOCAL_CONTROLLER, str(self.folder)]
        process = subprocess.Popen(cmd, env=env, cwd=self.cwd, start_new_session=True)
        return submitit.LocalJob(
            folder=self.folder,
            job_id=str(process.pid),
            process=process,
            tasks=list(range(ntasks)),
        )


def job_error(folder: str | os.PathLike, job_id: str) -> str | None:
    """The last line of the traceback a failed submitit job pickled, if any."""
    path = Path(folder) / f"{job_id}_0_result.pkl"
    try:
        with open(path, "rb") as f:
            outcome, payload = pickle.load(f)
    except Exception:  # noqa: BLE001 - absent, torn or from another version: no reason
        return None
    if outcome != "error":
        return None
    lines = [x for x in str(payload).strip().splitlines() if x.strip()]
    return lines[-1].strip() if lines else None


def job_outcome_error(job: dict[str, Any]) -> str | None:
    """The error a job's submitit outcome holds (job.json's folder and job id), if any."""
    folder, job_id = job.get("submitit_folder"), job.get("job_id")
    return job_error(folder, str(job_id)) if folder and job_id else None
