"""The libraries' private parts we reach (each from one module) are still there and still behave.

These fail loudly when an upgrade of submitit or torch moves them: pyproject.toml pins the
tested submitit minor, and experiments/submitit_private.py / experiments/bench/profiler.py say
why each is needed.
"""

from __future__ import annotations

import importlib
import inspect
import operator
import re
from pathlib import Path

import submitit
import torch
from submitit.local import local as submitit_local
from submitit.slurm.slurm import SlurmInfoWatcher

from experiments.bench import profiler
from experiments.runs.scheduler import parse_sacct
from experiments.submitit_private import (
    LOCAL_CONTROLLER,
    SessionLocalExecutor,
    controller_env,
    job_error,
    sbatch_script,
)
from experiments.sweep.profile import load_profile
from experiments.sweep.slurm import SLURM_DEFAULTS

REPO = Path(__file__).resolve().parent.parent


def test_sbatch_script_is_submitits_own_for_a_profile(tmp_path: Path) -> None:
    profile = load_profile(REPO / "slurm" / "local.toml")
    params = SLURM_DEFAULTS | profile.slurm_parameters()
    script = sbatch_script("true", tmp_path, 3, **params)
    assert script.startswith("#!/bin/bash")
    assert f"#SBATCH --array=0-2%{profile.array_parallelism}" in script
    assert f"#SBATCH --partition={profile.partition}" in script
    assert f"#SBATCH --time={profile.time_min}" in script
    assert "#SBATCH --requeue" in script


def test_sacct_output_is_read_as_submitits_parser_reads_it() -> None:
    out = (
        "JobID|State|ExitCode|Reason|NodeList\n"
        "41_2|RUNNING|0:0|None|localhost\n"
        "41_2.batch|RUNNING|0:0||localhost\n"
        "41_[3-4,7]|PENDING|0:0|JobArrayTaskLimit|None\n"
        "42|CANCELLED by 0|0:15|None|node1\n"
    )
    info = parse_sacct(out)
    assert info["41_2"]["State"] == "RUNNING" and info["41_2"]["NodeList"] == "localhost"
    assert info["41_3"]["Reason"] == info["41_4"]["Reason"] == "JobArrayTaskLimit"
    assert info["42"]["State"] == "CANCELLED by 0" and "41_5" not in info
    theirs = SlurmInfoWatcher().read_info(out)
    assert {k: v for k, v in theirs.items() if "[" not in k} == info
    assert parse_sacct("JobID|State\n") == {}


def test_local_controller_contract_is_the_one_submitit_sets() -> None:
    # The variables submitit's own start_controller sets are exactly the ones we set.
    source = inspect.getsource(submitit_local.start_controller)
    theirs = set(re.findall(r"\b((?:SUBMITIT|CUDA)_[A-Z_]+)=", source))
    assert theirs == set(controller_env(1, "cmd", 1.0, 30, ""))
    assert f'"{LOCAL_CONTROLLER}"' in source  # the module it runs
    importlib.import_module(LOCAL_CONTROLLER)
    # The method we override is still the one LocalExecutor submits through.
    assert "_submit_command" in vars(submitit.LocalExecutor)
    assert "_submit_command" in vars(SessionLocalExecutor)


def test_a_failed_jobs_pickled_outcome_gives_its_error(tmp_path: Path) -> None:
    executor = submitit.LocalExecutor(folder=tmp_path)
    executor.update_parameters(timeout_min=2)
    job = executor.submit(operator.truediv, 1, 0)  # importable in the job: by reference
    job.wait()
    assert job.state in ("FAILED", "DONE", "COMPLETED") or job.done()
    error = job_error(tmp_path, job.job_id)
    assert error is not None and "ZeroDivisionError" in error
    assert job_error(tmp_path, "no-such-job") is None


def test_torch_profiler_private_api_gives_the_step_peak() -> None:
    assert profiler._EventType is not None  # torch._C._profiler._EventType

    def allocate() -> None:
        a = torch.ones(250_000)  # 1 MB alive at once with b
        b = torch.ones(250_000)
        del a, b

    peak = profiler.cpu_step_peak_bytes(allocate)
    assert peak is not None and 2_000_000 <= peak < 4_000_000
