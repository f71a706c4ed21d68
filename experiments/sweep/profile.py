"""Slurm profiles: `slurm/NAME.toml` read into a checked `Profile` (resources of one job).

Everything cluster-specific comes from a profile; `PROFILE_KEYS` lists what a profile may set
(slurm/README.md has the long form). Without a profile (local and debug executors) the defaults
describe one process on this machine.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadmap.errors import UserError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

# Profile keys, their types, and what they mean (slurm/README.md has the long form).
PROFILE_KEYS: dict[str, tuple[type, str]] = {
    "description": (str, "free text, shown by --dry-run"),
    "partition": (str, "sbatch --partition"),
    "nodes": (int, "nodes per job"),
    "gpus_per_node": (int, "GPUs per node, one task each (0: CPU tasks, below)"),
    "cpu_tasks_per_node": (int, "tasks per node without GPUs (DDP ranks over gloo)"),
    "cpus_per_task": (int, "sbatch --cpus-per-task"),
    "threads_per_task": (int, "torch threads per task (default: cpus_per_task)"),
    "mem_gb": (float, "sbatch --mem per node, GB"),
    "time_min": (int, "sbatch --time, minutes"),
    "signal_delay_s": (int, "USR2 this many seconds before the time limit"),
    "constraint": (str, "sbatch --constraint"),
    "account": (str, "sbatch --account"),
    "qos": (str, "sbatch --qos"),
    "gres": (str, "sbatch --gres"),
    "exclude": (str, "sbatch --exclude"),
    "array_parallelism": (int, "array tasks running at once"),
    "max_requeues": (int, "checkpoint-and-requeue at most this often, then fail"),
    "setup": (list, "shell lines run before srun"),
}


@dataclass(frozen=True)
class Profile:
    """Resources of one job and how to ask Slurm for them."""

    name: str = "local"
    path: str | None = None
    description: str = ""
    partition: str = ""
    nodes: int = 1
    gpus_per_node: int = 0
    cpu_tasks_per_node: int = 1
    cpus_per_task: int = 1
    threads_per_task: int = 0
    mem_gb: float = 0.0
    time_min: int = 60
    signal_delay_s: int = 60
    constraint: str = ""
    account: str = ""
    qos: str = ""
    gres: str = ""
    exclude: str = ""
    array_parallelism: int = 8
    max_requeues: int = 3
    setup: tuple[str, ...] = field(default=())

    @property
    def tasks_per_node(self) -> int:
        """One task per GPU; `cpu_tasks_per_node` tasks per node without GPUs."""
        return self.gpus_per_node or self.cpu_tasks_per_node

    @property
    def world_size(self) -> int:
        """Processes of one run (DDP ranks)."""
        return self.nodes * self.tasks_per_node

    @property
    def threads(self) -> int:
        """Torch threads per task."""
        return self.threads_per_task or self.cpus_per_task

    def describe(self) -> str:
        """The resources of one job, in words."""
        gpus = f"{self.gpus_per_node} GPU" if self.gpus_per_node else "no GPU"
        parts = [
            f"{self.nodes} node{'s' * (self.nodes > 1)} x {gpus}",
            f"{self.world_size} task{'s' * (self.world_size > 1)} "
            f"({self.cpus_per_task} CPU, {self.threads} torch thread each)",
        ]
        if self.mem_gb:
            parts.append(f"{self.mem_gb:g} GB/node")
        hours, minutes = divmod(self.time_min, 60)
        parts.append(f"time limit {hours}:{minutes:02d}:00")
        for key in ("partition", "constraint", "account", "qos", "gres"):
            if getattr(self, key):
                parts.append(f"{key} {getattr(self, key)}")
        return ", ".join(parts)

    def slurm_parameters(self) -> dict[str, Any]:
        """Keyword arguments of `SlurmExecutor.update_parameters` for this profile."""
        params: dict[str, Any] = {
            "nodes": self.nodes,
            "ntasks_per_node": self.tasks_per_node,
            "cpus_per_task": self.cpus_per_task,
            "time": self.time_min,
            "signal_delay_s": self.signal_delay_s,
            "array_parallelism": self.array_parallelism,
            "additional_parameters": {"requeue": True},
        }
        if self.gpus_per_node and not self.gres:
            params["gpus_per_node"] = self.gpus_per_node
        if self.mem_gb:
            params["mem"] = f"{int(self.mem_gb * 1024)}MB"
        for key in ("partition", "constraint", "account", "qos", "gres", "exclude"):
            if getattr(self, key):
                params[key] = getattr(self, key)
        if self.setup:
            params["setup"] = list(self.setup)
        if self.world_size > 1:  # a rank that dies ends the others (NCCL would wait on it)
            params["srun_args"] = ["--kill-on-bad-exit=1"]
        return params


def load_profile(path: str | os.PathLike) -> Profile:
    """Read and check `slurm/NAME.toml`; any problem is one UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        known = (
            sorted(p.name for p in Path("slurm").glob("*.toml")) if Path("slurm").is_dir() else []
        )
        hint = f" (profiles in slurm/: {', '.join(known)})" if known else ""
        raise FileNotFoundError(f"profile {path} does not exist{hint}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"profile {path}: not valid TOML: {err}") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in PROFILE_KEYS:
            near = difflib.get_close_matches(key, PROFILE_KEYS, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise UserError(
                f"profile {path}: unknown key {key!r}.{hint} Keys are: {', '.join(PROFILE_KEYS)}"
            )
        kind = PROFILE_KEYS[key][0]
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if kind is list:
            ok = ok and all(isinstance(x, str) for x in value)
            value = tuple(value)
        if not ok:
            raise UserError(
                f"profile {path}: {key} must be {kind.__name__}"
                f"{' of strings' if kind is list else ''}, got {value!r}"
            )
        values[key] = value
    profile = Profile(name=path.stem, path=str(path), **values)
    _check_profile(profile, path)
    return profile


def _check_profile(p: Profile, path: Path) -> None:
    """Ranges that Slurm or submitit would otherwise reject late (or mishandle)."""
    checks = [
        (p.nodes >= 1, "nodes must be >= 1"),
        (p.gpus_per_node >= 0, "gpus_per_node must be >= 0"),
        (p.cpu_tasks_per_node >= 1, "cpu_tasks_per_node must be >= 1"),
        (
            p.cpu_tasks_per_node == 1 or not p.gpus_per_node,
            "cpu_tasks_per_node is for nodes without GPUs; with gpus_per_node there is "
            "one task per GPU",
        ),
        (p.cpus_per_task >= 1, "cpus_per_task must be >= 1"),
        (p.threads_per_task >= 0, "threads_per_task must be >= 0"),
        (p.mem_gb >= 0, "mem_gb must be >= 0"),
        (
            p.time_min >= 2,
            "time_min must be >= 2 (submitit requeues in a loop below that)",
        ),
        (
            0 < p.signal_delay_s < p.time_min * 60 // 2,
            "signal_delay_s must be > 0 and below half of time_min",
        ),
        (p.array_parallelism >= 1, "array_parallelism must be >= 1"),
        (p.max_requeues >= 0, "max_requeues must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"profile {path}: {message}")
