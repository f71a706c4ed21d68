"""`recipe.wandb`: a run's numbers in Weights & Biases, one W&B run per run folder (rank 0).

The same numbers as log.jsonl and TensorBoard: every optimizer step's running train loss, lr and
img/s (`train/*`, at `iteration`), every epoch's log.jsonl row (`epoch/*`, at `epoch`), the
run's config.json as the W&B config, and `<root>/<track>/<step>` as its group. The W&B run id
is a hash of the run's identity and creation time (`run_id`), so a requeued or resumed job
continues the same W&B run (`resume="allow"`); the steps a resume trains again are logged again,
with the same values. `WANDB_MODE=offline` writes the run under `$WANDB_DIR` (default: the run
folder's `wandb/`), for `wandb sync` from a machine with a network. wandb is imported only here,
only when the recipe asks for it (the optional extra: pip install 'convnext-roadmap[wandb]').
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from experiments.runs import records
from experiments.train.signals import StopRequested

PROJECT = "convnext-roadmap"  # unless WANDB_PROJECT says otherwise


def run_id(config: dict[str, Any]) -> str:
    """The W&B run id of a run: stable across its jobs, different for another run folder."""
    keys = {k: config.get(k) for k in (*records.IDENTITY_KEYS, "created")}
    text = json.dumps(keys, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def group(run_dir: Path, config: dict[str, Any]) -> str:
    """`<root>/<track>/<step>`: root is the sweep root (`<root>/<track>/<step>/seed<k>`)."""
    track, step = config["track"], config["step"]
    laid_out = run_dir.parts[-3:-1] == (track, step)
    root = run_dir.parents[2] if laid_out else run_dir.parent
    return f"{root.name}/{track}/{step}"


def start(trainer: Any) -> None:
    """Open (or continue) the run's W&B run on rank 0, where the recipe asks for it."""
    if not (trainer.recipe.wandb and trainer.main):
        return
    import wandb

    config = trainer.config
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", PROJECT),
        id=run_id(config),
        resume="allow",
        name=f"{config['track']}/{config['step']}/seed{config['seed']}",
        group=group(trainer.run_dir, config),
        config=config,
        dir=os.environ.get("WANDB_DIR", str(trainer.run_dir)),
        settings=wandb.Settings(console="off"),  # the trainer's output stays as it is
    )
    run.define_metric("iteration")
    run.define_metric("train/*", step_metric="iteration")
    run.define_metric("epoch")
    run.define_metric("epoch/*", step_metric="epoch")


def _run(trainer: Any) -> Any:
    """The W&B run `start` opened for `trainer`, or None."""
    wandb = sys.modules.get("wandb")
    if wandb is None or not (trainer.recipe.wandb and trainer.main):
        return None
    return wandb.run


def log_step(trainer: Any) -> None:
    """A finished optimizer step's numbers (as the progress line shows them)."""
    run = _run(trainer)
    if run is None:
        return
    state = trainer.state
    run.log({
        "iteration": state["global_step"],
        "train/loss": state["loss_sum"] / max(state["loss_count"], 1),
        "train/lr": state["last_lr"],
        "train/img_s": state["epoch_images"] * trainer.world / max(state["epoch_train_s"], 1e-9),
    })  # fmt: skip


def log_epoch(trainer: Any, row: dict[str, Any]) -> None:
    """An epoch's log.jsonl row: its numbers, at `epoch`."""
    run = _run(trainer)
    if run is None:
        return
    numbers = {f"epoch/{k}": v for k, v in row.items() if k != "epoch" and _number(v)}
    run.log({"epoch": row["epoch"], **numbers})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def finish(trainer: Any, error: BaseException | None) -> None:
    """End this job's part of the W&B run: preempted (resumable) on a stop, else its exit."""
    run = _run(trainer)
    if run is None:
        return
    if isinstance(error, StopRequested | SystemExit):
        run.mark_preempting()
        run.finish(exit_code=75)
    else:
        run.finish(exit_code=0 if error is None else 1)
