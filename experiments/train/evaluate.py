"""Evaluation sharded over ranks: each rank scores its slice of the validation set, counts summed.

Every count is accumulated on the rank's device in float64 (exact for any validation set below
2**53 images) and summed over ranks once, so top-1 / top-5 over N ranks are the single-process
counts exactly when the weights are the same. Rank 0's buffers (BatchNorm statistics) are shared
first: every rank evaluates the model that rank 0 checkpoints.

With `images` an evaluation also keeps every image's label, top-1 class and top-5 hit, and puts
them in the dataset's order on every rank: each rank scatters its rows to their dataset indices
(`PerImage.indices`, its sampler's) in an array of the whole set, and one integer all-reduce sums
the ranks' arrays. A count column checks that every image was scored exactly once (no padding
or duplicate of a sampler, none left out), so the arrays are the single-process ones for any
world size, and their top-1 / top-5 counts are the counts above.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from experiments.data.identity import digest
from experiments.runs.predictions import write_predictions
from experiments.train.data import Loaders
from experiments.train.distributed import RankContext

COLUMNS = ("label", "pred", "top5")  # the per-image arrays, as experiments/runs/predictions.py


@dataclass
class PerImage:
    """Where this rank's validation images stand in the dataset; `evaluate` fills `arrays`."""

    indices: Sequence[int]  # the dataset index of each image of this rank's batches, in order
    size: int  # images in the whole validation set (all ranks)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # COLUMNS, in dataset order


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Any],
    ctx: RankContext,
    num_classes: int,
    images: PerImage | None = None,
) -> dict[str, float]:
    """Top-1, top-5 (%) and mean loss of `model` on the validation batches of all ranks.

    With `images`, `images.arrays` gets every image's label, pred and top5 (all ranks, in the
    dataset's order).
    """
    was_training = model.training
    model.eval()
    ctx.share_buffers(model)
    totals = torch.zeros(4, dtype=torch.float64, device=ctx.device)
    rows: list[torch.Tensor] = []
    k = min(5, num_classes)
    for batch in batches:
        x, y = ctx.to_device(*batch)
        with ctx.autocast():
            logits = model(x).float()
        top = logits.topk(k, dim=1).indices
        hits = top.eq(y[:, None])
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        counts = [hits[:, 0].sum(), hits.any(dim=1).sum(), loss]
        counts.append(torch.full((), len(y), device=ctx.device))
        totals += torch.stack([c.to(torch.float64) for c in counts])
        if images is not None:
            rows.append(torch.stack([y, top[:, 0], hits.any(dim=1).long()], dim=1))
    ctx.sum(totals)
    model.train(was_training)
    if images is not None:
        images.arrays = in_dataset_order(rows, images, ctx)
    top1_hits, top5_hits, loss_sum, count = totals.tolist()
    return {
        "top1": 100 * top1_hits / count,
        "top5": 100 * top5_hits / count,
        "val_loss": loss_sum / count,
    }


def in_dataset_order(
    rows: list[torch.Tensor], images: PerImage, ctx: RankContext
) -> dict[str, np.ndarray]:
    """The ranks' (label, pred, top5) rows as COLUMNS arrays by dataset index (every rank)."""
    mine = torch.cat(rows) if rows else torch.zeros(0, len(COLUMNS), dtype=torch.long)
    mine = mine.to(ctx.device)
    index = torch.as_tensor(list(images.indices), dtype=torch.long, device=ctx.device)
    whole = torch.zeros(images.size, 1 + len(COLUMNS), dtype=torch.long, device=ctx.device)
    agree = len(index) == len(mine)
    if agree:  # else it adds nothing: every rank fails below, none waits in the all-reduce
        ones = torch.ones(len(mine), 1, dtype=torch.long, device=ctx.device)
        whole.index_add_(0, index, torch.cat([ones, mine], dim=1))
    ctx.sum(whole)
    if not agree:
        raise ValueError(
            f"evaluation: {len(mine)} images scored on rank {ctx.rank}, its sampler has "
            f"{len(index)}"
        )
    whole = whole.cpu().numpy()
    times = whole[:, 0]
    if (times != 1).any():
        wrong = np.flatnonzero(times != 1)
        raise ValueError(
            f"evaluation: {len(wrong)} of {images.size} validation images scored "
            f"{sorted(set(times[wrong].tolist()))} times, not once (first: index {wrong[0]})"
        )
    arrays = {name: whole[:, 1 + i] for i, name in enumerate(COLUMNS)}
    arrays["top5"] = arrays["top5"].astype(bool)
    return arrays


class Evaluates(Protocol):
    """What `evaluate_epoch` uses of a trainer (experiments.train.trainer.Trainer has it)."""

    run_dir: Path
    config: dict[str, Any]
    state: dict[str, Any]
    data: Loaders
    main: bool
    model: nn.Module
    ema: Any  # timm's ModelEmaV3 (the weights in its `module`), or None

    def evaluate(self, model: nn.Module, images: PerImage | None = None) -> dict[str, float]:
        """Top-1, top-5 (%) and mean loss of `model`; with `images`, per image too."""
        ...


def evaluate_epoch(trainer: Evaluates) -> dict[str, float]:
    """An epoch's evaluation of the model (and its EMA); rank 0 writes their predictions.npz.

    Written (atomically) before the epoch's end is recorded; a result that ends up reporting
    another evaluation drops them (`predictions.drop_unmatched`).
    """
    images = PerImage(trainer.data.val.indices(), trainer.data.info["val_images"])
    metrics = trainer.evaluate(trainer.model, images)
    arrays = dict(images.arrays)
    if trainer.ema is not None:
        ema_images = PerImage(images.indices, images.size)
        ema = trainer.evaluate(trainer.ema.module, ema_images)
        metrics.update(ema_top1=ema["top1"], ema_top5=ema["top5"])
        arrays.update(ema_pred=ema_images.arrays["pred"], ema_top5=ema_images.arrays["top5"])
    if trainer.main:
        dataset, epoch = digest(trainer.config.get("dataset")), trainer.state["epoch"] + 1
        write_predictions(trainer.run_dir, arrays, dataset, epoch)
    return metrics
