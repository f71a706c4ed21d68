"""The run record: the on-disk contract between training, the launcher and analysis.

A run directory holds
- `config.json`: everything needed to run again (track, step, seed, preset, resolved spec and
  recipe, data, provenance: git commit and dirty flag, package versions, host, Slurm ids);
- `log.jsonl`: one JSON line per epoch (epoch, lr, train_loss, top1, top5, img_s, seconds, ...);
- `result.json`: written once, atomically, when the run ends (`RESULT_KEYS` at least).
`collect(root)` reads every run under a folder into one pandas DataFrame.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

CONFIG = "config.json"
LOG = "log.jsonl"
RESULT = "result.json"

# Keys every result.json has (None where not applicable, e.g. ema_top1 with EMA off).
RESULT_KEYS = (
    "status",  # "done" or "failed"
    "reason",  # why it failed (None when done)
    "top1",  # final top-1 (%)
    "top5",  # final top-5 (%)
    "best_top1",  # best top-1 over evaluated epochs (%)
    "ema_top1",  # final top-1 of the EMA weights (%), None with EMA off
    "params",  # parameters of the trained model
    "gflops",  # multiply-adds at the recipe's eval resolution, measured
    "wall_s",  # seconds of training, summed over restarts
    "img_s",  # mean training images per second
)
STATUSES = ("done", "failed")
_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "pandas",
    "submitit",
    "convnext-roadmap",
)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON to `path` so that readers see the old file or the whole new one, never part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(
            fd, 0o666 & ~_umask()
        )  # mkstemp makes 0600; records are for colleagues too
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    """The process umask (read by setting it and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_jsonl(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk."""
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in `path`, or None if the file does not exist."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file, [] if it is missing; a torn line (crash mid-write) is skipped."""
    rows = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        pass
    return rows


def read_log(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Epoch lines of a run (a torn last line is ignored)."""
    return read_jsonl(Path(run_dir) / LOG)


def write_result(run_dir: str | os.PathLike, result: dict[str, Any]) -> None:
    """Write `result.json` atomically; every key of `RESULT_KEYS` must be present."""
    missing = [k for k in RESULT_KEYS if k not in result]
    if missing:
        raise ValueError(f"result is missing keys: {', '.join(missing)}")
    if result["status"] not in STATUSES:
        raise ValueError(
            f"result status must be one of {STATUSES}, got {result['status']!r}"
        )
    atomic_write_json(Path(run_dir) / RESULT, result)


def git_state(repo: str | os.PathLike | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding this package (None outside git)."""
    cwd = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def provenance() -> dict[str, Any]:
    """Where and with what a run ran: git, package versions, host, Slurm ids when present."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    slurm = {
        k.lower(): v
        for k, v in os.environ.items()
        if k
        in (
            "SLURM_JOB_ID",
            "SLURM_ARRAY_JOB_ID",
            "SLURM_ARRAY_TASK_ID",
            "SLURM_RESTART_COUNT",
            "SLURM_JOB_PARTITION",
            "SLURM_NTASKS",
        )
    }
    return {
        "git": git_state(),
        "packages": versions,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "slurm": slurm or None,
    }


def run_dirs(root: str | os.PathLike) -> list[Path]:
    """Every run directory (one holding config.json) under `root`, sorted."""
    return sorted(p.parent for p in Path(root).rglob(CONFIG))


def collect(root: str | os.PathLike):
    """One pandas DataFrame row per run under `root`: config fields, then result fields.

    Config keys are flattened with dots (`spec.kernel_size`, `recipe.epochs`); result keys keep
    their names. A run with no result yet has status "missing" (or "running" if it has logged
    at least one epoch).
    """
    import pandas as pd

    rows = []
    for run in run_dirs(root):
        config = read_json(run / CONFIG) or {}
        result = read_json(run / RESULT)
        row: dict[str, Any] = {"run_dir": str(run)}
        row.update(
            pd.json_normalize(config, sep=".").iloc[0].to_dict() if config else {}
        )
        if result is None:
            result = {k: None for k in RESULT_KEYS}
            result["status"] = "running" if read_log(run) else "missing"
        row.update(result)
        rows.append(row)
    return pd.DataFrame(rows)
