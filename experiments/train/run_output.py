"""What a training run prints (its opening lines, progress) and records (its result.json)."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from experiments.recipe import Recipe
from experiments.runs import code_digest, records
from experiments.train import wandb_log
from experiments.train.data import Loaders


class TrainerView(Protocol):
    """What the report reads of a trainer (experiments.train.trainer.Trainer has all of it)."""

    run_dir: Path
    config: dict[str, Any]
    recipe: Recipe
    state: dict[str, Any]
    data: Loaders
    main: bool
    world: int
    accum: int
    effective_batch: int
    steps_per_epoch: int
    num_classes: int
    params: int
    gflops: float
    lr: float
    device: torch.device
    hosts: list[str]
    resumed_from: Path | None

    def wall_seconds(self) -> float:
        """Seconds of training so far, summed over restarts."""
        ...


def describe(trainer: TrainerView) -> str:
    """What a trainer is about to train, in three lines."""
    config, recipe, state = trainer.config, trainer.recipe, trainer.state
    info = trainer.data.info
    where = f"resuming {trainer.resumed_from.name}" if trainer.resumed_from else "from scratch"
    return (
        f"train {config['track']}/{config['step']} seed {config['seed']} preset "
        f"{config['preset']} -> {trainer.run_dir}\n"
        f"  model {trainer.params / 1e6:.2f}M params, {trainer.gflops:.3f} GFLOPs at "
        f"{recipe.image_size} px; {info['name']}: {info['train_images']} train / "
        f"{info['val_images']} val images, {trainer.num_classes} classes\n"
        f"  {recipe.epochs} epochs x {trainer.steps_per_epoch} steps of "
        f"{trainer.effective_batch} images ({trainer.world} x {recipe.batch_size} x "
        f"{trainer.accum}), peak lr {trainer.lr:.3g}; {trainer.device}, "
        f"{torch.get_num_threads()} thread(s); {where} (epoch {state['epoch']}, "
        f"step {state['step_in_epoch']})"
    )


def _terminal_columns() -> int:
    """Width of the terminal on stderr, 0 where it reports none."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


def progress_bar(trainer: TrainerView) -> tqdm | None:
    """A tqdm bar for the rest of the epoch on an interactive terminal (rank 0), else None.

    A terminal that reports no width (`script`, some editors' shells) gets the plain lines: tqdm
    would draw nothing there.
    """
    if not (trainer.main and sys.stderr.isatty() and _terminal_columns() > 0):
        return None
    state = trainer.state
    return tqdm(
        total=trainer.steps_per_epoch,
        initial=state["step_in_epoch"],
        desc=f"epoch {state['epoch'] + 1}/{trainer.recipe.epochs}",
        unit="step",
        leave=False,
        dynamic_ncols=True,
    )


def show_step(trainer: TrainerView, bar: tqdm | None) -> None:
    """A finished step's progress: on the bar, or a plain line every `log_every` (rank 0)."""
    state = trainer.state
    step = state["step_in_epoch"]
    loss = state["loss_sum"] / max(state["loss_count"], 1)
    if bar is not None:
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{state['last_lr']:.2e}", refresh=False)
        bar.update(1)
    elif trainer.main and (step % trainer.recipe.log_every == 0 or step == trainer.steps_per_epoch):
        rate = state["epoch_images"] * trainer.world / max(state["epoch_train_s"], 1e-9)
        print(
            f"  epoch {state['epoch'] + 1}/{trainer.recipe.epochs} "
            f"step {step}/{trainer.steps_per_epoch}"
            f"  loss {loss:.4f}  lr {state['last_lr']:.2e}  {rate:.1f} img/s",
            flush=True,
        )


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """The summary line of a finished epoch (its log.jsonl row)."""
    ema = f"  EMA top-1 {row['ema_top1']:.2f}" if "ema_top1" in row else ""
    evaluated = (
        f"  top-1 {row['top1']:.2f}  top-5 {row['top5']:.2f}{ema}"
        if "top1" in row
        else "  (not evaluated: recipe.eval_every)"
    )
    return (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}{evaluated}"
        f"  lr {row['lr']:.2e}  {row['img_s']:.1f} img/s  {row['seconds']:.1f} s"
    )


TENSORBOARD_DIR = "tensorboard"  # <out>/tensorboard/: the events of recipe.tensorboard


def record_epoch(trainer: TrainerView, row: dict[str, Any]) -> str:
    """Append an epoch's row to log.jsonl (and to TensorBoard, W&B); return its summary line.

    With `recipe.tensorboard`, every number of the row is a scalar at step `epoch`. Each
    epoch opens its own writer with `purge_step=epoch`, so after a resume (which cuts the
    log back) TensorBoard drops the events of the epochs that are trained again.
    """
    records.append_jsonl(trainer.run_dir / records.LOG, row)
    if trainer.recipe.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        epoch = row["epoch"]
        logdir = trainer.run_dir / TENSORBOARD_DIR
        with SummaryWriter(str(logdir), purge_step=epoch) as writer:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float):
                    writer.add_scalar(key, value, epoch)
    wandb_log.log_epoch(trainer, row)  # recipe.wandb
    return epoch_line(row, trainer.recipe.epochs)


def result_record(trainer: TrainerView, status: str, reason: str | None) -> dict[str, Any]:
    """result.json of a trainer that ends now: `records.RESULT_KEYS`, then more context."""
    state = trainer.state
    last = state["last_eval"] or {}
    return {
        "status": status,
        "reason": reason,
        "top1": last.get("top1"),
        "top5": last.get("top5"),
        "best_top1": state["best_top1"],
        "ema_top1": last.get("ema_top1"),
        "params": trainer.params,
        "gflops": trainer.gflops,
        "wall_s": trainer.wall_seconds(),
        "img_s": state["train_images"] * trainer.world / max(state["train_s"], 1e-9),
        "ema_top5": last.get("ema_top5"),
        "epochs": state["epoch"],
        "iterations": state["global_step"],
        "failed_iteration": state["failed_iteration"],
        "lr": trainer.lr,
        "effective_batch": trainer.effective_batch,
        "accum_steps": trainer.accum,
        "world_size": trainer.world,
        "hosts": trainer.hosts,
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "dataset": trainer.data.info,
        "code": code_digest.code_record(state.get("code", ())),  # the model and training code
        "finished": records.now(),
    }


def pct(value: float | None) -> str:
    """A percentage, or n/a."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}%"
