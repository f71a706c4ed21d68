"""Each track's endpoints: the reference models they equal, and the paper's recipe for them.

`paper_drop_path` is the stochastic depth the paper trains a track's model with;
`roadmap.endpoint_check` checks that each step equals its reference. This table imports no torch
(a recipe reads it); a reference is built with torchvision or timm imported then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from roadmap.steps import steps

if TYPE_CHECKING:
    from torch import nn


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
    # The reference's layer scale (timm's ConvNeXt `ls_init_value` 1e-6); None: it has none (the
    # ResNets), so the step is built without one to equal it (docs/design.md, "Layer scale").
    layer_scale: float | None = 1e-6

    def build_reference(self, num_classes: int = 1000) -> nn.Module:
        """The reference model, randomly initialised (nothing is downloaded)."""
        return build_reference(self.reference, num_classes)


def build_reference(reference: str, num_classes: int = 1000) -> nn.Module:
    """The model `reference` ("<library>.<model>", torchvision or timm), randomly initialised."""
    import timm
    import torchvision

    lib, name = reference.split(".", 1)
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
        layer_scale=None,
    ),
    Endpoint("resnet50", "separate_downsampling", "timm.convnext_tiny", "timm_convnext", 0.1),
    Endpoint(
        "resnet200", "resnet200_modern_recipe", "timm.resnet200", "timm_resnet", layer_scale=None
    ),
    Endpoint("resnet200", "separate_downsampling", "timm.convnext_base", "timm_convnext", 0.5),
)


def paper_drop_path(track: str) -> float:
    """The paper's stochastic depth for every step of `track`: that of the model it ends at.

    The paper trains every step of its roadmap with one recipe and gives a drop path only for
    the ConvNeXt each track ends at (Table 5), so each step of a track takes its endpoint's
    value: a step's change in accuracy is then its design change alone, never a change of
    regularization (ResNet-50 -> ConvNeXt-T: 0.1; ResNet-200 -> ConvNeXt-B: 0.5).
    """
    last = [s for s in steps(track) if s.on_path][-1].name  # a side branch may come after it
    for endpoint in ENDPOINTS:
        if (endpoint.track, endpoint.step) == (track, last) and endpoint.drop_path is not None:
            return endpoint.drop_path
    raise ValueError(
        f"track {track!r}: no endpoint of its last on-path step {last!r} gives the paper's "
        "drop path "
        "(roadmap.endpoints.ENDPOINTS)"
    )
