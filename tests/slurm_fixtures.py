"""Helpers of the Slurm suites: is a cluster there, `roadmap` against it, polling, job logs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from experiments.runs import records
from experiments.runs.records import CHECKPOINT_DIR
from experiments.runs.records import list_checkpoints as listing

REPO = Path(__file__).resolve().parent.parent
ROADMAP = str(REPO / ".venv" / "bin" / "roadmap")
CLUSTER = REPO / "slurm" / "local-cluster.sh"
PROFILE = str(REPO / "slurm" / "local.toml")
STEPS = ("resnet50_modern_recipe", "stage_ratio")
NODES = 2  # what the suite starts: slurm/local-cluster.sh up --nodes 2
STATE = Path(os.environ.get("ROADMAP_SLURM_DIR", "/var/lib/roadmap-slurm"))


def cluster_nodes() -> list[str]:
    """The nodes of the default partition that can run jobs now (idle, mixed, allocated)."""
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T %P"], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    usable = ("idle", "mix", "alloc")
    return sorted({n for n, state, part in (line.split() for line in proc.stdout.splitlines())
                   if part.endswith("*") and state.startswith(usable)})  # fmt: skip


def answers() -> bool:
    """Whether a Slurm with accounting answers and has a node that can run jobs."""
    if not (shutil.which("sbatch") and shutil.which("sacct")):
        return False
    for cmd in (["scontrol", "ping"], ["sacct", "-n", "-X", "-S", "now"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if proc.returncode or (cmd[0] == "scontrol" and "UP" not in proc.stdout):
            return False
    return bool(cluster_nodes())


def roadmap(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the `roadmap` console script."""
    proc = subprocess.run([ROADMAP, *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode:
        raise AssertionError(f"roadmap {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def submit(root: Path, steps: str, seeds: str, *overrides: str, profile: str = PROFILE) -> str:
    """`roadmap sweep --executor slurm` with a profile; the array's job id."""
    sets = [x for o in overrides for x in ("--set", o)]
    out = roadmap("sweep", "--preset", "smoke", "--root", str(root), "--steps", steps,
                  "--seeds", seeds, "--executor", "slurm", "--profile", profile,
                  *sets).stdout  # fmt: skip
    match = re.search(r"as Slurm job (\d+)", out)
    assert match, out
    return match.group(1)


def status(root: Path) -> dict:
    """`roadmap status --format json`."""
    return json.loads(roadmap("status", "--root", str(root), "--format", "json").stdout)


def statuses(root: Path) -> dict[tuple[str, int], dict]:
    """Each run's status, by (step, seed)."""
    return {(r["step"], r["seed"]): r for r in status(root)["runs"]}


def wait_for(what: str, predicate: Callable[[], Any], timeout: float, every: float = 2.0):
    """Poll `predicate` until it returns something true; fail with `what` on time-out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def log_step(job_id: str, folder: Path) -> int:
    """The last optimizer step the job's rank 0 reports ('epoch E/N step S/T')."""
    try:
        text = (folder / f"{job_id}_0_log.out").read_text()
    except OSError:
        return 0
    steps = re.findall(r"epoch (\d+)/\d+ step (\d+)/(\d+)", text)
    if not steps:
        return 0
    epoch, step, per = (int(x) for x in steps[-1])
    return (epoch - 1) * per + step


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The model of the run's newest checkpoint."""
    newest = listing(run_dir / CHECKPOINT_DIR)[0]
    return torch.load(newest, map_location="cpu", weights_only=True)["model"]


def sacct_states(job_id: str) -> list[str]:
    """Every state sacct records for the job, requeued attempts included, oldest first."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", "--duplicates", "-j", job_id,
                          "-o", "State"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def run_dir_of(root: Path, step: str, seed: int = 0) -> Path:
    """The run directory of (step, seed) under a sweep root (track resnet50)."""
    (found,) = (Path(r["run_dir"]) for r in status(root)["runs"]
                if (r["step"], r["seed"]) == (step, seed))  # fmt: skip
    return found


def same_training(a: Path, b: Path) -> None:
    """Two runs ended with bit-identical weights and the same log (losses and counts)."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "weights differ"
    keys = ("train_loss", "top1", "top5", "val_loss", "iterations")
    for row_a, row_b in zip(records.read_log(a), records.read_log(b), strict=True):
        assert [row_a[k] for k in keys] == [row_b[k] for k in keys]
