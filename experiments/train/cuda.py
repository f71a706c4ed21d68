"""The CUDA settings of a training step, in one place: the trainer and the benchmark use them.

`configure(device)` sets the backend flags and `optimizer_options(opt, device)` the optimizer's
implementation; experiments/train/distributed.py and experiments/train/parts.py call them for a
run, experiments/bench/measure.py for the benchmark, so the benchmark's img/s (which the sweep's
time estimate reads) is that of the trainer's own step. On the CPU the flags change nothing.

- `cudnn.benchmark`: on. Every step of a run has the same shapes, so the autotuned algorithm is
  chosen once and reused; it also means a GPU run is reproducible to a tolerance, not bit for bit.
- TF32: on for float32 convolutions (torch's default) and float32 matmuls (`"high"`). The presets
  train in float32 (`recipe.amp_dtype`), as the official ConvNeXt code under torch 1.8, where both
  were on by default; under a bf16 or fp16 autocast it touches only what autocast leaves in fp32.
- AdamW (and Adam): torch's fused kernel, on CUDA (one launch for all parameters) and on the CPU
  (torch >= 2.4; a smoke step's optimizer update 0.11 -> 0.03 CPU s, docs/make-run-profile.md).
  Other optimizers keep torch's default (foreach on CUDA, a loop on the CPU).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from roadmap.errors import UserError

FUSED = frozenset({"adamw", "adam"})  # timm optimizer names whose torch class has `fused`


def configure(device: torch.device) -> None:
    """Set the CUDA backend flags of a training step (nothing on the CPU)."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")


def optimizer_options(opt: str, device: torch.device) -> dict[str, Any]:
    """Keyword arguments of the optimizer `opt` (a timm name) for parameters on `device`."""
    if device.type in ("cuda", "cpu") and opt.lower() in FUSED:
        return {"fused": True}
    return {}


def visible_devices(count: int) -> list[int]:
    """The first `count` GPUs of this process as the machine numbers them.

    That is, through this process's CUDA_VISIBLE_DEVICES (2,3: [2, 3]), so that a child given
    one of them in its own CUDA_VISIBLE_DEVICES sees that GPU and no one else's. Device UUIDs
    there are refused in one line (the local executor passes GPU indices).
    """
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return list(range(count))
    names = [n.strip() for n in listed.split(",") if n.strip()][:count]
    if not all(n.isdigit() for n in names):
        raise UserError(
            f"CUDA_VISIBLE_DEVICES={listed}: the local executor gives each job GPU indices; "
            "set CUDA_VISIBLE_DEVICES to indices (nvidia-smi -L lists them)"
        )
    return [int(n) for n in names]
