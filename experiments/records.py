"""The run record: the on-disk contract between training, the launcher and analysis.

A run directory holds
- `config.json`: everything needed to run again (track, step, seed, preset, resolved spec and
  recipe, data and its class map and fingerprint, provenance: git commit and dirty flag,
  package versions, host, Slurm ids);
- `log.jsonl`: one JSON line per epoch (epoch, lr, train_loss, top1, top5, img_s, seconds, ...);
- `result.json`: written once, atomically, when the run ends (`RESULT_KEYS` at least);
- `job.json`: the job last submitted for the run (executor, job id, host, submission time,
  submitit folder; earlier jobs under `history`), written atomically by whoever submits;
- `events.jsonl`: what the run's jobs did (start, resume, checkpoint, requeue, end);
- `checkpoints/ckpt_<step>.pt` (+ `.json`): the trainer's checkpoints (experiments/train).
Time stamps are ISO 8601 in UTC with their offset (`now`); `age_s` reads any offset.
`collect(root)` reads every run under a folder into one pandas DataFrame.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import IO, Any

CONFIG = "config.json"
LOG = "log.jsonl"
RESULT = "result.json"
JOB = "job.json"
EVENTS = "events.jsonl"
CHECKPOINT_DIR = "checkpoints"
# config.json keys that define a run: two configs are the same run when these are equal.
IDENTITY_KEYS = (
    "track",
    "step",
    "seed",
    "preset",
    "overrides",
    "data",
    "dataset",  # its class map and fingerprint (experiments/data/identity.py)
    "spec",
    "recipe",
)
CHECKPOINT_NAME = re.compile(
    r"^ckpt_(\d{9})\.pt$"
)  # ckpt_<optimizer step, 9 digits>.pt

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


def now() -> str:
    """The time now: ISO 8601 in UTC with its offset, to the second (`...T08:49:30+00:00`)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def parse_stamp(stamp: str) -> datetime.datetime:
    """An ISO 8601 time with any offset (`+00:00`, `+0900`, `Z`) as an aware datetime.

    A stamp without an offset is taken as UTC; a malformed one is a ValueError.
    """
    text = stamp.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        parsed = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def age_s(stamp: str | None) -> float:
    """Seconds since `stamp` (see `parse_stamp`); infinite if it is missing or unreadable."""
    if not stamp:
        return float("inf")
    try:
        return time.time() - parse_stamp(stamp).timestamp()
    except ValueError:
        return float("inf")


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike, mode: str = "w", prefix: str | None = None
) -> Iterator[IO[Any]]:
    """A file that appears at `path` whole or not at all, never in part.

    Written to a temporary file beside it (`prefix` + random + `.tmp`, default `.<name>.`),
    fsynced, renamed over `path`, and the folder fsynced; on an error the temporary file goes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=prefix or f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        os.fchmod(
            fd, 0o666 & ~_umask()
        )  # mkstemp makes 0600; records are for colleagues too
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON to `path` so that readers see the old file or the whole new one, never part."""
    with atomic_file(path) as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=str)
        f.write("\n")


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


def read_job(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's job manifest, or None if no job was ever submitted for it."""
    return read_json(Path(run_dir) / JOB)


def write_job(run_dir: str | os.PathLike, job: dict[str, Any]) -> None:
    """Write the run's job manifest atomically."""
    atomic_write_json(Path(run_dir) / JOB, job)


def append_event(run_dir: str | os.PathLike, event: str, **fields: Any) -> None:
    """Append one line to the run's `events.jsonl` (time, host and pid added)."""
    row = {
        "event": event,
        "time": now(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    append_jsonl(Path(run_dir) / EVENTS, {**row, **fields})


def read_events(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The run's events, oldest first (a torn last line is ignored)."""
    return read_jsonl(Path(run_dir) / EVENTS)


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Checkpoint files in `folder` (a run's `checkpoints/`), newest (highest step) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if CHECKPOINT_NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


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
