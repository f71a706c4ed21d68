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

import torch
import torch.nn.functional as F
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
    # Whether a block's convs take a bias: exactly when its norm is not a BatchNorm (whose shift
    # makes a bias redundant), as the authors' `use_bias` (modeling_resnet.py:193).
    conv_bias: bool


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
        conv_bias=not issubclass(entry.layer_2d, nn.modules.batchnorm._BatchNorm),
    )


class ConvShape(NamedTuple):
    """Shape of one conv; the field names are `ConvNormAct`'s arguments."""

    in_chs: int
    out_chs: int
    kernel_size: int = 1
    stride: int = 1
    groups: int = 1


# Feature maps up to 2x2 take the GEMM on the CPU; from 4x4 up the two are within 10% and oneDNN's
# conv wins at ImageNet's 7x7 to 56x56 (4-20%): docs/benchmarks.md, "Pointwise convs on tiny maps".
GEMM_MAX_PIXELS = 4


class PointwiseConv2d(nn.Conv2d):
    """A 1x1, stride-1 `nn.Conv2d` that runs as a GEMM on tiny channels-last CPU feature maps.

    Speed only, the same maths, parameters, init and state dict: oneDNN's 1x1 conv is slow on
    the 1x1 and 2x2 maps of a 32-px smoke run's last stages (a 768 -> 3072 layer's forward and
    backward at batch 32: 43 ms against 13 as a GEMM), not on larger ones (`GEMM_MAX_PIXELS`).
    GPUs, the meta device (GFLOPs) and NCHW tensors take the conv as it is.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cpu_nhwc = x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last)
        if cpu_nhwc and x.shape[-2] * x.shape[-1] <= GEMM_MAX_PIXELS:
            return pointwise_gemm(x, self.weight, self.bias)
        return super().forward(x)


def pointwise_gemm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """A 1x1 conv of a channels-last `x` as one matrix product (a channels-last result)."""
    # A channels-last NCHW tensor is a contiguous NHWC one: the permutes are views.
    return F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias).permute(0, 3, 1, 2)


class ConvNormAct(nn.Sequential):
    """conv -> optional norm -> optional act (children named conv, norm, act).

    `padding` None is "same" padding (kernel_size // 2) for odd kernels; `bias` is the conv's
    (the builder decides it, docs/design.md "Conv biases").
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
        bias: bool = False,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2 if padding is None else padding
        pointwise = kernel_size == 1 and stride == 1 and groups == 1 and pad == 0
        conv = PointwiseConv2d if pointwise else nn.Conv2d
        self.conv = conv(in_chs, out_chs, kernel_size, stride, pad, groups=groups, bias=bias)
        if norm_layer is not None:
            self.norm = norm_layer(out_chs)
        if act_layer is not None:
            self.act = act_layer()
