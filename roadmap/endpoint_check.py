"""Each endpoint step (and family model) equals its reference model: logits on one random batch.

For each pair of `roadmap.endpoints.ENDPOINTS` (and each `roadmap.family.FAMILY` model that has a
reference), build the reference with random weights (norm affines, running statistics and layer
scales randomised too, so that no block is a near no-op), convert its state dict into our model,
run one random batch through both in eval mode and compare logits.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from roadmap.convert import convert_state_dict
from roadmap.endpoints import Endpoint, build_reference
from roadmap.family import Member
from roadmap.model import build_model
from roadmap.steps import get_step


@torch.no_grad()
def randomise(model: nn.Module, generator: torch.Generator, calibrate: torch.Tensor) -> None:
    """Give every 1-D parameter a non-trivial random value and BatchNorms real statistics.

    Norm weights and layer scales go to U(0.5, 1.5), biases to N(0, 0.1); BatchNorm running
    statistics are then measured on `calibrate` (cumulative average), so eval-mode activations
    stay O(1) through hundreds of layers and the comparison is meaningful.
    """
    for name, p in model.named_parameters():
        if p.ndim == 1 and name.endswith("bias"):
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
        elif p.ndim == 1:
            p.copy_(torch.rand(p.shape, generator=generator) + 0.5)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bns:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        model(calibrate)
    model.eval()


def check_endpoint(
    endpoint: Endpoint, image_size: int = 224, batch: int = 2, seed: int = 0
) -> dict[str, object]:
    """Convert `endpoint`'s reference into its step and compare logits on one random batch."""
    spec = get_step(endpoint.step, endpoint.track).spec
    build = partial(build_model, spec, layer_scale_init=endpoint.layer_scale)
    result = compare_logits(endpoint.reference, endpoint.source, build, image_size, batch, seed)
    return {"track": endpoint.track, "step": endpoint.step, **result}


def check_member(
    member: Member, image_size: int = 224, batch: int = 2, seed: int = 0
) -> dict[str, object]:
    """Convert family `member`'s reference into it and compare logits on one random batch."""
    if member.reference is None:
        raise ValueError(f"{member.name} has no reference implementation to compare with")
    result = compare_logits(member.reference, member.source, member.build, image_size, batch, seed)
    return {"model": member.name, **result}


def compare_logits(
    reference_name: str,
    source: str,
    build: Callable[[], nn.Module],
    image_size: int,
    batch: int,
    seed: int,
) -> dict[str, object]:
    """Randomise `reference_name`, convert it (`source`) into `build()`'s model, compare logits.

    Our model is built on the meta device and takes the reference's tensors themselves (strict,
    `assign`): every tensor it has comes from the reference, and no time goes to initialising
    weights that are replaced (a third of the check for ConvNeXt-XL's 350M parameters).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    reference = build_reference(reference_name)
    calibrate = torch.randn(max(batch, 4), 3, image_size, image_size, generator=gen)
    randomise(reference, gen, calibrate)
    with torch.device("meta"):
        model = build()
    weights = convert_state_dict(reference.state_dict(), source, model)
    model.load_state_dict(weights, strict=True, assign=True)
    model.eval()
    x = torch.randn(batch, 3, image_size, image_size, generator=gen)
    with torch.no_grad():
        ref_out, out = reference(x), model(x)
    return {
        "reference": reference_name,
        "image_size": image_size,
        "batch": batch,
        "logit_abs_max": float(ref_out.abs().max()),
        "max_abs_diff": float((ref_out - out).abs().max()),
    }
