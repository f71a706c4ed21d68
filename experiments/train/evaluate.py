"""Evaluation sharded over ranks: each rank scores its slice of the validation set, counts summed.

Every count is accumulated on the rank's device in float64 (exact for any validation set below
2**53 images) and summed over ranks once, so top-1 / top-5 over N ranks are the single-process
counts exactly when the weights are the same. Rank 0's buffers (BatchNorm statistics) are shared
first: every rank evaluates the model that rank 0 checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from experiments.train.distributed import RankContext


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[Any], place: RankContext, num_classes: int
) -> dict[str, float]:
    """Top-1, top-5 (%) and mean loss of `model` on the validation batches of all ranks."""
    was_training = model.training
    model.eval()
    place.share_buffers(model)
    totals = torch.zeros(4, dtype=torch.float64, device=place.device)
    k = min(5, num_classes)
    for batch in batches:
        x, y = place.to_device(*batch)
        with place.autocast():
            logits = model(x).float()
        hits = logits.topk(k, dim=1).indices.eq(y[:, None])
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        counts = [hits[:, 0].sum(), hits.any(dim=1).sum(), loss]
        counts.append(torch.full((), len(y), device=place.device))
        totals += torch.stack([c.to(torch.float64) for c in counts])
    place.sum(totals)
    model.train(was_training)
    top1_hits, top5_hits, loss_sum, count = totals.tolist()
    return {
        "top1": 100 * top1_hits / count,
        "top5": 100 * top5_hits / count,
        "val_loss": loss_sum / count,
    }
