"""Checkpoints that survive crashes, and signal handling that keeps them consistent.

A checkpoint is a pair in `<run>/checkpoints/`: `ckpt_<step>.pt` (torch.save, weights-only
loadable) and `ckpt_<step>.json` (its size and SHA-256, step, epoch, reason, time). Both are
written to a temporary file, fsynced and renamed, the .pt first, so a reader sees whole files or
none; a checkpoint is valid only if its .json matches the .pt byte for byte and torch can load
it. `load_latest` returns the newest valid one, reporting the torn or unreadable ones it skipped.

`DeferredSignals` holds Python signal handlers (submitit's USR2 handler, the CLI's) while the
trainer is inside an optimizer step or writing a checkpoint, and runs them right after, so a
handler that saves a checkpoint always sees the state of a completed step.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from experiments.runs.files import atomic_file, atomic_write_json, named_error
from experiments.runs.records import LOG, checkpoint_record, list_checkpoints, read_log

TMP_PREFIX = ".ckpt."  # temporary files of checkpoint writes: `.ckpt.<random>.tmp`


class _HashingFile:
    """File wrapper that hashes and counts what torch.save writes through it."""

    def __init__(self, f: Any) -> None:
        self.f, self.sha, self.size = f, hashlib.sha256(), 0
        self.error: OSError | None = None  # torch reports a failed write in its own words

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.f.flush()


def save(folder: str | os.PathLike, step: int, payload: dict[str, Any], meta: dict) -> Path:
    """Write checkpoint `step` atomically (temporary file, fsync, rename) and return its path.

    A write the file system refuses (no space, read-only) is an OSError naming the path.
    """
    path = Path(folder) / f"ckpt_{step:09d}.pt"
    with atomic_file(path, "wb", prefix=TMP_PREFIX) as f:
        writer = _HashingFile(f)
        try:
            torch.save(payload, writer)
        except RuntimeError:
            if writer.error is None:
                raise
            raise named_error(writer.error, path) from None
    info = {
        **meta,
        "step": step,
        "bytes": writer.size,
        "sha256": writer.sha.hexdigest(),
    }
    atomic_write_json(path.with_suffix(".json"), info)
    return path


def _sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def check(path: Path) -> str | None:
    """Why checkpoint `path` is not usable (None if its .json matches it byte for byte)."""
    meta, problem = checkpoint_record(path)
    if problem is not None:
        return problem
    if _sha256(path) != meta["sha256"]:
        return "SHA-256 differs from the one written (corrupted)"
    return None


def load_latest(
    folder: str | os.PathLike, log: Callable[[str], None] = print
) -> tuple[dict[str, Any], Path] | None:
    """The newest valid checkpoint's payload and path, or None if there is none."""
    for path in list_checkpoints(folder):
        problem = check(path)
        if problem is None:
            try:
                return torch.load(path, map_location="cpu", weights_only=True), path
            except Exception as err:  # noqa: BLE001 - any load failure means unusable
                problem = f"torch.load failed: {type(err).__name__}: {err}"
        log(f"checkpoint {path.name} is unusable ({problem}); trying the previous one")
    return None


def load_agreed(
    folder: str | os.PathLike,
    main: bool,
    share: Callable[[str | None], str | None],
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Any], Path] | None:
    """`load_latest` for several ranks: rank 0 (`main`) alone hashes and chooses.

    `share` gives rank 0's choice (a path, or None) to every rank (`RankContext.from_main`);
    the other ranks then read that one file once, instead of hashing and loading each
    checkpoint themselves.
    """
    found = load_latest(folder, log) if main else None
    chosen = share(None if found is None else str(found[1]))
    if chosen is None or found is not None:
        return found
    return torch.load(chosen, map_location="cpu", weights_only=True), Path(chosen)


def prune(
    folder: str | os.PathLike,
    keep: int,
    trusted: Collection[Path] = (),
    log: Callable[[str], None] = print,
) -> None:
    """Keep the newest `keep` valid checkpoints; delete older ones and unusable ones.

    `trusted` are checkpoints known to be valid (written or verified by this process), so
    they are not hashed again. An unusable one is deleted and reported through `log`.
    """
    kept = 0
    for path in list_checkpoints(folder):
        problem = None if path in trusted or kept >= keep else check(path)
        if problem is None and kept < keep:
            kept += 1
            continue
        _delete(path)
        if problem is not None:
            log(f"deleted unusable checkpoint {path.name} ({problem})")


def _delete(path: Path) -> None:
    """Delete a checkpoint and its .json."""
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)


def remove_all(folder: str | os.PathLike) -> None:
    """Delete every checkpoint of a run (when the recipe keeps none after the end)."""
    folder = Path(folder)
    for path in list_checkpoints(folder):
        _delete(path)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


# ---- what a checkpoint holds ------------------------------------------------------------------


def epoch_counters() -> dict[str, Any]:
    """Per-epoch accumulators, as at the start of an epoch."""
    return {
        "loss_sum": 0.0,
        "loss_count": 0,
        "epoch_images": 0,  # per rank
        "epoch_train_s": 0.0,
        "epoch_seconds": 0.0,  # training and evaluation
    }


def fresh_state(steps_per_epoch: int, effective_batch: int) -> dict[str, Any]:
    """The training state before the first step (all of it goes into checkpoints)."""
    return {
        "epoch": 0,  # completed epochs
        "step_in_epoch": 0,  # optimizer steps done in the current epoch
        "global_step": 0,  # optimizer steps done
        "steps_per_epoch": steps_per_epoch,
        "effective_batch": effective_batch,
        "best_top1": None,
        "last_eval": None,  # metrics of the last evaluation
        "last_lr": None,
        "failed_iteration": None,
        "wall_s": 0.0,  # seconds, summed over restarts
        "train_images": 0,  # per rank, all epochs
        "train_s": 0.0,
        **epoch_counters(),
    }


class Resumable(Protocol):
    """What a checkpoint holds of a trainer (experiments.train.trainer.Trainer)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a timm scheduler
    scaler: torch.amp.GradScaler
    ema: Any  # timm ModelEmaV3, or None
    state: dict[str, Any]


def capture(trainer: Resumable) -> dict[str, Any]:
    """Everything a resume needs from a `Trainer`: weights, optimizer, schedule, EMA, RNGs."""
    return {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "ema": None if trainer.ema is None else trainer.ema.state_dict(),
        "state": dict(trainer.state),
        "rng": rng_state(),
    }


def restore(trainer: Resumable, payload: dict[str, Any]) -> None:
    """Put what `capture` took back into a freshly built `Trainer`."""
    trainer.model.load_state_dict(payload["model"])
    trainer.optimizer.load_state_dict(payload["optimizer"])
    trainer.scheduler.load_state_dict(payload["scheduler"])
    trainer.scaler.load_state_dict(payload["scaler"])
    if trainer.ema is not None:
        trainer.ema.load_state_dict(payload["ema"])
    trainer.state = dict(payload["state"])
    set_rng_state(payload["rng"])


def truncate_log(run_dir: Path, epochs: int) -> None:
    """Keep the log.jsonl lines of the first `epochs` epochs (those a resumed state has done)."""
    path = Path(run_dir) / LOG
    if not path.exists():
        return
    rows = [r for r in read_log(run_dir) if r.get("epoch", 0) <= epochs]
    with atomic_file(path) as f:
        f.writelines(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows)


# ---- random number generator states ------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Python's, numpy's and torch's CPU generator states, as weights-only types.

    No CUDA generator state is saved: `seed_step` reseeds every generator, the CUDA ones of all
    devices included (torch.manual_seed), before each optimizer step, and nothing between a
    resume and its first step draws on a GPU. (A per-device list would also tie a checkpoint to
    the number of GPUs visible.) The CPU states are kept for the same moments' sake: harmless.
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [
            kind,
            torch.from_numpy(keys.astype(np.int64)),
            pos,
            has_gauss,
            cached,
        ],
        "torch": torch.get_rng_state(),
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned (a saved "cuda" list, of older checkpoints, is unused)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(x) for x in internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def seed_step(seed: int, rank: int, step: int) -> None:
    """Seed every generator from (seed, rank, optimizer step), so a resume draws the same."""
    s = int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
