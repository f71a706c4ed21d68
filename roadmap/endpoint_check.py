"""Each endpoint step equals its reference model: logits compared on one random batch.

For each pair of `roadmap.endpoints.ENDPOINTS`, build the reference with random weights (norm
affines, running statistics and layer scales randomised too, so that no block is a near no-op),
convert its state dict into the roadmap step, run one random batch through both in eval mode and
compare logits.
"""

from __future__ import annotations

import torch
from torch import nn

from roadmap.convert import load_reference
from roadmap.endpoints import Endpoint
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
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    reference = endpoint.build_reference()
    calibrate = torch.randn(max(batch, 4), 3, image_size, image_size, generator=gen)
    randomise(reference, gen, calibrate)
    step = get_step(endpoint.step, endpoint.track)
    model = build_model(step.spec, layer_scale_init=endpoint.layer_scale).eval()
    load_reference(model, reference.state_dict(), endpoint.source)
    x = torch.randn(batch, 3, image_size, image_size, generator=gen)
    with torch.no_grad():
        ref_out, out = reference(x), model(x)
    return {
        "track": endpoint.track,
        "step": endpoint.step,
        "reference": endpoint.reference,
        "image_size": image_size,
        "batch": batch,
        "logit_abs_max": float(ref_out.abs().max()),
        "max_abs_diff": float((ref_out - out).abs().max()),
    }
