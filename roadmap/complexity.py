"""Model complexity measured from the built model: parameters and GFLOPs.

GFLOPs follow the paper's convention (Appendix C, fvcore's): one multiply-add counts as one FLOP,
at 224x224, batch 1. They are counted by torch's own `FlopCounterMode` over a forward pass of the
built model on the meta device (no memory, no arithmetic), which reports 2 FLOPs per multiply-add
of every convolution and matrix product; norms, activations and pooling are not multiply-adds and
count nothing. Nothing here knows the architecture: it only runs it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not, buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: nn.Module, image_size: int = 224, in_chans: int = 3) -> float:
    """Giga multiply-adds of one forward pass at `image_size`, measured by tracing the model.

    The model is copied to the meta device, so the count costs no real compute and leaves the
    model (its device, weights and train/eval mode) untouched.
    """
    meta = _to_meta(model)
    x = torch.empty(1, in_chans, image_size, image_size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(x)
    return counter.get_total_flops() / 2 / 1e9


def _to_meta(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` on the meta device (a meta model is used as it is)."""
    if any(p.device.type == "meta" for p in model.parameters()):
        meta = model
    else:
        meta = copy.deepcopy(model).to("meta")
    return meta.eval()
