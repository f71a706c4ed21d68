"""Layers that read no spec: norms and activations by name, and the conv -> norm -> act unit.

`NORM_LAYERS` and `ACT_LAYERS` give the layers of each name that `ArchSpec` accepts for its `norm`
and `act` fields (`roadmap.spec.NORMS`, `ACTS`: names only, so the step table needs no torch);
`roadmap.model` resolves them once, with `resolve_layers`, and passes the result down. Adding a
norm or an activation is its name in the spec and its entry here; importing this module checks
that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import NamedTuple

from timm.layers import LayerNorm2d
from torch import nn

from roadmap.spec import ACTS, NORMS

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]


@dataclass(frozen=True)
class NormLayers:
    """The layers that one norm name stands for, and its default epsilon."""

    # On (N, C, H, W) feature maps: after convs, in the stem and the downsampling layers.
    layer_2d: type[nn.Module]
    # On pooled (N, C) features, before the classifier (separate_downsampling).
    layer_1d: type[nn.Module]
    # Epsilon when the spec gives none: torch's BatchNorm default, ConvNeXt's LayerNorm one.
    eps: float


# bn_to_ln: the spec's `norm` names.
NORM_LAYERS: Mapping[str, NormLayers] = MappingProxyType(
    {
        "bn": NormLayers(nn.BatchNorm2d, nn.BatchNorm1d, eps=1e-5),
        "ln": NormLayers(LayerNorm2d, nn.LayerNorm, eps=1e-6),
    }
)

# relu_to_gelu: the spec's `act` names. ReLU runs in place, as torchvision's ResNet.
ACT_LAYERS: Mapping[str, ActFactory] = MappingProxyType(
    {
        "relu": partial(nn.ReLU, inplace=True),
        "gelu": nn.GELU,
    }
)
if set(NORM_LAYERS) != set(NORMS) or set(ACT_LAYERS) != set(ACTS):
    raise ImportError(
        f"roadmap.layers: layer tables {sorted(NORM_LAYERS)}, {sorted(ACT_LAYERS)} differ from "
        f"roadmap.spec's names {sorted(NORMS)}, {sorted(ACTS)}"
    )


@dataclass(frozen=True)
class Layers:
    """Layer factories resolved from a spec's names once, passed down to every block."""

    # norm(channels): the 2-D norm, with the resolved epsilon.
    norm: NormFactory
    # head_norm(channels): the 1-D norm before the classifier, with the same epsilon.
    head_norm: NormFactory
    # act(): a new activation module.
    act: ActFactory


def resolve_layers(norm: str, act: str, eps: float | None = None) -> Layers:
    """Factories for the norm and activation names; `eps` None takes the norm's default."""
    if norm not in NORM_LAYERS:
        raise ValueError(f"unknown norm {norm!r}; known: {tuple(NORM_LAYERS)}")
    if act not in ACT_LAYERS:
        raise ValueError(f"unknown act {act!r}; known: {tuple(ACT_LAYERS)}")
    entry = NORM_LAYERS[norm]
    eps = entry.eps if eps is None else eps
    return Layers(
        norm=partial(entry.layer_2d, eps=eps),
        head_norm=partial(entry.layer_1d, eps=eps),
        act=ACT_LAYERS[act],
    )


class ConvShape(NamedTuple):
    """Shape of one conv; the field names are `ConvNormAct`'s arguments."""

    in_chs: int
    out_chs: int
    kernel_size: int = 1
    stride: int = 1
    groups: int = 1


class ConvNormAct(nn.Sequential):
    """conv -> optional norm -> optional act (children named conv, norm, act).

    `padding` None is "same" padding (kernel_size // 2) for odd kernels. The conv has a bias
    unless a BatchNorm follows it (whose shift makes a bias redundant), the rule that gives
    torchvision's bias-free ResNet and ConvNeXt's biased convs and linears.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        padding: int | None = None,
        norm_layer: NormFactory | None = None,
        act_layer: ActFactory | None = None,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2 if padding is None else padding
        norm = norm_layer(out_chs) if norm_layer is not None else None
        bias = not isinstance(norm, nn.modules.batchnorm._BatchNorm)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, pad, groups=groups, bias=bias)
        if norm is not None:
            self.norm = norm
        if act_layer is not None:
            self.act = act_layer()
