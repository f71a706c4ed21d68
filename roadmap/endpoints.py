"""Each track's endpoints: the reference models they equal, and the paper's recipe for them.

`paper_drop_path` is the stochastic depth the paper trains a track's model with. Equivalence:
for each pair, build the reference with random weights (norm affines, running statistics and
layer scales randomised too, so that no block is a near no-op), convert its state dict into the
roadmap step, run one random batch through both in eval mode and compare logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import timm
import torch
import torchvision
from torch import nn

from roadmap.convert import load_reference
from roadmap.model import build_model
from roadmap.steps import get_step, steps


@dataclass(frozen=True)
class Endpoint:
    """A roadmap step and the reference implementation it must equal."""

    track: str
    step: str
    reference: str  # "<library>.<model>"
    source: str  # converter name in roadmap.convert.SOURCES
    # Stochastic depth the paper trains this model with (Table 5: ConvNeXt-T 0.1, -B 0.5; the
    # official code also S 0.4, L 0.5); None where the paper gives none (its ResNets).
    drop_path: float | None = None

    def build_reference(self, num_classes: int = 1000) -> nn.Module:
        """The reference model, randomly initialised (nothing is downloaded)."""
        lib, name = self.reference.split(".", 1)
        factories: dict[str, Callable[[], nn.Module]] = {
            "torchvision": lambda: getattr(torchvision.models, name)(
                weights=None, num_classes=num_classes
            ),
            "timm": lambda: timm.create_model(name, pretrained=False, num_classes=num_classes),
        }
        return factories[lib]()


ENDPOINTS = (
    Endpoint(
        "resnet50",
        "resnet50_modern_recipe",
        "torchvision.resnet50",
        "torchvision_resnet",
    ),
    Endpoint("resnet50", "separate_downsampling", "timm.convnext_tiny", "timm_convnext", 0.1),
    Endpoint("resnet200", "resnet200_modern_recipe", "timm.resnet200", "timm_resnet"),
    Endpoint("resnet200", "separate_downsampling", "timm.convnext_base", "timm_convnext", 0.5),
)


def paper_drop_path(track: str) -> float:
    """The paper's stochastic depth for every step of `track`: that of the model it ends at.

    The paper trains every step of its roadmap with one recipe and gives a drop path only for
    the ConvNeXt each track ends at (Table 5), so each step of a track takes its endpoint's
    value: a step's change in accuracy is then its design change alone, never a change of
    regularization (ResNet-50 -> ConvNeXt-T: 0.1; ResNet-200 -> ConvNeXt-B: 0.5).
    """
    last = steps(track)[-1].name
    for endpoint in ENDPOINTS:
        if (endpoint.track, endpoint.step) == (track, last) and endpoint.drop_path is not None:
            return endpoint.drop_path
    raise ValueError(
        f"track {track!r}: no endpoint of its last step {last!r} gives the paper's drop path "
        "(roadmap.endpoints.ENDPOINTS)"
    )


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
    model = build_model(step.spec).eval()
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
