"""The run record: the on-disk contract between training, the launcher and analysis.

A run directory holds
- `config.json`: everything needed to run again (track, step, seed, preset, resolved spec and
  recipe, data and its class map and fingerprint, provenance: git commit and dirty flag,
  package versions, host, Slurm ids);
- `log.jsonl`: one JSON line per epoch (epoch, lr, train_loss, top1, top5, img_s, seconds, ...);
- `result.json`: written once, atomically, when the run ends (every key of `RESULT_KEYS`);
- `job.json`: the job last submitted for the run (executor, job id, host, submission time,
  submitit folder; earlier jobs under `history`), written atomically by whoever submits and
  changed under its lock `.job.json.lock` (`locks.update_job`);
- `events.jsonl`: what the run's jobs did (start, resume, checkpoint, requeue, end);
- `.job.lock`: the lock of the one trainer at work on the run, and who it is (runlock.py);
- `checkpoints/ckpt_<step>.pt` (+ `.json`): the trainer's checkpoints (experiments/train).
A run is named by its config's track, step and seed, wherever its folder is. The readers here
say None for a file that is not there and raise `UnreadableRecord` (path and reason) for one
that is there but cannot be used (files.py); `read_or_reason` turns that into a reason.
Time stamps are ISO 8601 in UTC with their offset (`now`); `age_s` reads any offset.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import socket
import subprocess
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypedDict, cast

from experiments.runs.files import (
    UnreadableRecord,
    append_jsonl,
    atomic_write_json,
    read_holder,
    read_json,
    read_jsonl,
)

CONFIG = "config.json"
LOG = "log.jsonl"
RESULT = "result.json"
JOB = "job.json"
EVENTS = "events.jsonl"
LOCK = ".job.lock"
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
CHECKPOINT_NAME = re.compile(r"^ckpt_(\d{9})\.pt$")  # ckpt_<optimizer step, 9 digits>.pt


class ConfigRecord(TypedDict, total=False):
    """config.json: the run's identity (`IDENTITY_KEYS`), then what was written beside it."""

    track: str
    step: str  # a step of the track, or a design point (roadmap.designs)
    seed: int
    preset: str
    overrides: dict[str, Any]  # `--set` values by key
    data: str | None  # absolute ImageFolder root; None: the built-in data
    dataset: dict[str, Any]  # class map and fingerprint (experiments/data/identity.py)
    spec: dict[str, Any]  # `ArchSpec.to_dict()`
    recipe: dict[str, Any]  # `experiments.recipe.recipe_dict`
    excluded_images: list[dict[str, str]]  # path, problem
    provenance: dict[str, Any]  # git, packages, python, host, slurm
    created: str  # when it was written (ISO time)
    out_dir: str


class ResultRecord(TypedDict):
    """result.json: every key, a failed run's too (None where unknown or not applicable)."""

    status: str  # "done" or "failed"
    reason: str | None  # why it failed (None when done)
    top1: float | None  # final top-1 (%)
    top5: float | None  # final top-5 (%)
    best_top1: float | None  # best top-1 over evaluated epochs (%)
    ema_top1: float | None  # final top-1 of the EMA weights (%), None with EMA off
    ema_top5: float | None  # final top-5 of the EMA weights (%), None with EMA off
    params: int | None  # parameters of the trained model
    gflops: float | None  # multiply-adds at the recipe's eval resolution, measured
    wall_s: float | None  # seconds of training, summed over restarts
    img_s: float | None  # mean training images per second
    epochs: int | None  # finished epochs
    iterations: int | None  # optimizer steps done
    failed_iteration: int | None  # the optimizer step that failed (non-finite loss), else None
    lr: float | None  # peak learning rate used
    effective_batch: int | None  # images per optimizer step, all devices
    accum_steps: int | None  # micro-batches per optimizer step
    world_size: int | None  # devices
    device: str | None  # of rank 0
    threads: int | None  # torch threads
    dataset: dict[str, Any] | None  # name, classes, train/val images, fingerprint or root
    finished: str | None  # when the run ended (ISO time)


RESULT_KEYS = tuple(ResultRecord.__annotations__)  # keys every result.json has
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


def read_or_reason(
    read: Callable[[Path], dict[str, Any] | None], run_dir: str | os.PathLike
) -> tuple[dict[str, Any] | None, str | None]:
    """`read(run_dir)` as (record, None), or (None, what is wrong) for an unreadable one."""
    try:
        return read(Path(run_dir)), None
    except UnreadableRecord as err:
        return None, str(err)


# What the launcher and analysis read of each record, and its JSON types: keys that must be
# there, then keys that may be missing or null.
_NUMBER = (int, float)
_SHAPES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    CONFIG: ({"track": str, "step": str, "seed": int}, {}),
    RESULT: (
        {"status": str},
        {"reason": str, "top1": _NUMBER, "top5": _NUMBER, "best_top1": _NUMBER},
    ),
    JOB: (
        {},
        {
            "job_id": (str, int),
            "executor": str,
            "submitted": str,
            "host": str,
            "stopped": dict,
            "queued_by": dict,
            "driver": dict,
            "history": list,
        },
    ),  # fmt: skip
}


def _shape_problem(name: str, record: dict[str, Any]) -> str | None:
    """What in `record` has not the shape `_SHAPES[name]` says, or None."""
    required, optional = _SHAPES[name]
    for key, kinds in {**required, **optional}.items():
        value = record.get(key)
        if value is None and key in optional:
            continue
        if not isinstance(value, kinds) or isinstance(value, bool):
            return f"{key!r} is {value!r}, where a {_type_names(kinds)} belongs"
    if name == RESULT and record["status"] not in STATUSES:
        return f"status {record['status']!r} is not done or failed"
    return None


def _type_names(kinds: type | tuple[type, ...]) -> str:
    """`str`, `int or float`."""
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(k.__name__ for k in kinds)


def _read(run_dir: str | os.PathLike, name: str) -> dict[str, Any] | None:
    """The record `name` of a run, checked (`_SHAPES`); None if absent."""
    return read_json(Path(run_dir) / name, lambda record: _shape_problem(name, record))


def read_config(run_dir: str | os.PathLike) -> ConfigRecord | None:
    """The run's config.json (None if absent); see `read_json` for an unreadable one."""
    return cast("ConfigRecord | None", _read(run_dir, CONFIG))


def read_result(run_dir: str | os.PathLike) -> ResultRecord | None:
    """The run's result.json (None if absent); its status must be one of `STATUSES`."""
    return cast("ResultRecord | None", _read(run_dir, RESULT))


def read_log(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Epoch lines of a run (a torn last line is ignored)."""
    return read_jsonl(Path(run_dir) / LOG)


def write_result(run_dir: str | os.PathLike, result: dict[str, Any]) -> None:
    """Write `result.json` atomically; every key of `RESULT_KEYS` must be present."""
    missing = [k for k in RESULT_KEYS if k not in result]
    if missing:
        raise ValueError(f"result is missing keys: {', '.join(missing)}")
    if result["status"] not in STATUSES:
        raise ValueError(f"result status must be one of {STATUSES}, got {result['status']!r}")
    atomic_write_json(Path(run_dir) / RESULT, result)


def read_job(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's job manifest, or None if no job was ever submitted for it."""
    return _read(run_dir, JOB)


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


def read_events(
    run_dir: str | os.PathLike, problems: list[str] | None = None
) -> list[dict[str, Any]]:
    """The run's events, oldest first (unreadable lines skipped; see `read_jsonl`)."""
    return read_jsonl(Path(run_dir) / EVENTS, problems)


def read_lock(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Who holds (or last held) the run's lock, or None: no lock, released, or unreadable."""
    return read_holder(Path(run_dir) / LOCK)


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Checkpoint files in `folder` (a run's `checkpoints/`), newest (highest step) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if CHECKPOINT_NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def checkpoint_record(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A checkpoint's .json (size, SHA-256, ...) as (it, None) if the file has that size.

    Else (None, why not). The hash is compared by `experiments.train.checkpoint.check`.
    """
    try:
        meta = read_json(path.with_suffix(".json"))
    except UnreadableRecord:
        meta = None
    if meta is None:
        return None, "no readable .json beside it (torn write)"
    try:
        size = path.stat().st_size
    except OSError as err:
        return None, err.strerror or str(err)
    if size != meta.get("bytes"):
        return None, f"{size} bytes on disk, {meta.get('bytes')} written (torn write)"
    return meta, None


def newest_checkpoint_step(run_dir: str | os.PathLike) -> int | None:
    """The optimizer step of the run's newest checkpoint of the right size, or None."""
    for path in list_checkpoints(Path(run_dir) / CHECKPOINT_DIR):
        if checkpoint_record(path)[0] is not None:
            return int(path.stem.removeprefix("ckpt_"))
    return None


def remove_temp_files(run_dir: str | os.PathLike) -> list[Path]:
    """Delete what writes killed midway left (`atomic_file`'s `.*.tmp`); the files deleted.

    Only for the holder of the run's lock: nobody else writes in the run directory then.
    """
    run_dir = Path(run_dir)
    found = [*run_dir.glob(".*.tmp"), *(run_dir / CHECKPOINT_DIR).glob(".*.tmp")]
    for path in found:
        path.unlink(missing_ok=True)
    return found


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
