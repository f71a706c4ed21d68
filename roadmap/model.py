"""The builder: one generic network whose every design decision is read from an `ArchSpec`.

Names are resolved to layer types once, in `_layers`, and passed down; blocks never read the spec
for anything but their own shape. Module names follow the data flow (stem, stages.i.downsample,
stages.i.blocks.j.conv1..3, head) so that `roadmap.convert` can map torchvision and timm weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from timm.layers import DropPath, LayerNorm2d, trunc_normal_
from torch import nn

from roadmap.spec import ArchSpec

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]

# What timm's data helpers (resolve_data_config, create_transform) read from a model.
PRETRAINED_CFG = {
    "input_size": (3, 224, 224),
    "interpolation": "bicubic",
    "crop_pct": 0.875,
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "num_classes": 1000,
    "first_conv": "stem.conv",
    "classifier": "head.fc",
}


@dataclass(frozen=True)
class _Layers:
    """Layer factories resolved from a spec once."""

    norm: NormFactory
    act: ActFactory


def _layers(spec: ArchSpec) -> _Layers:
    """Resolve the spec's norm and activation names to factories."""
    eps = _eps(spec)
    if spec.norm == "bn":

        def norm(c: int) -> nn.Module:
            return nn.BatchNorm2d(c, eps=eps)
    else:

        def norm(c: int) -> nn.Module:
            return LayerNorm2d(c, eps=eps)

    act: ActFactory = (lambda: nn.ReLU(inplace=True)) if spec.act == "relu" else nn.GELU
    return _Layers(norm=norm, act=act)


class ConvNormAct(nn.Sequential):
    """conv -> optional norm -> optional act (children named conv, norm, act).

    The conv has a bias unless a BatchNorm follows it (whose shift makes a bias redundant), the
    rule that gives torchvision's bias-free ResNet and ConvNeXt's biased convs and linears.
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
        self.conv = nn.Conv2d(
            in_chs, out_chs, kernel_size, stride, pad, groups=groups, bias=bias
        )
        if norm is not None:
            self.norm = norm
        if act_layer is not None:
            self.act = act_layer()


class Block(nn.Module):
    """Residual block of three convs: (1x1, kxk, 1x1) or, spatial conv first, (kxk, 1x1, 1x1).

    Args:
        in_chs: input channels.
        out_chs: output channels (the residual stream).
        mid_chs: channels between the convs (narrow in a bottleneck, wide when inverted).
        stride: stride of the spatial conv (2 in a downsampling block).
        spec: the design (kernel, depthwise, order, how many norms and activations).
        layers: resolved norm and activation factories.
        drop_path: stochastic depth probability of this block.
        layer_scale_init: initial value of the per-channel residual scale, or None for none.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        mid_chs: int,
        stride: int,
        spec: ArchSpec,
        layers: _Layers,
        drop_path: float = 0.0,
        layer_scale_init: float | None = None,
    ) -> None:
        super().__init__()
        k = spec.kernel_size
        # (in, out, kernel, stride, groups) of the three convs, in order.
        if spec.spatial_first:
            shapes = [
                (in_chs, in_chs, k, stride, in_chs if spec.depthwise else 1),
                (in_chs, mid_chs, 1, 1, 1),
                (mid_chs, out_chs, 1, 1, 1),
            ]
        else:
            shapes = [
                (in_chs, mid_chs, 1, 1, 1),
                (mid_chs, mid_chs, k, stride, mid_chs if spec.depthwise else 1),
                (mid_chs, out_chs, 1, 1, 1),
            ]
        # Full blocks: a norm after every conv, an act after the first two and after the sum.
        # fewer_norms keeps the first norm; fewer_activations keeps the act after the second conv.
        has_norm = [True, not spec.fewer_norms, not spec.fewer_norms]
        has_act = [not spec.fewer_activations, True, False]
        for i, ((ci, co, kk, s, g), n, a) in enumerate(
            zip(shapes, has_norm, has_act, strict=True)
        ):
            self.add_module(
                f"conv{i + 1}",
                ConvNormAct(
                    ci,
                    co,
                    kk,
                    s,
                    g,
                    norm_layer=layers.norm if n else None,
                    act_layer=layers.act if a else None,
                ),
            )
        # Layer scale: the residual branch's last per-channel scale starts at layer_scale_init.
        # Where the branch ends with a norm, that norm's affine weight is this scale (the
        # "zero-init last norm" of Goyal et al.), so ResNet blocks keep torchvision's parameters;
        # otherwise the block gets its own `gamma`, as ConvNeXt's.
        self.gamma: nn.Parameter | None = None
        if layer_scale_init and has_norm[2]:
            nn.init.constant_(self.conv3.norm.weight, float(layer_scale_init))
        elif layer_scale_init:
            self.gamma = nn.Parameter(torch.full((out_chs,), float(layer_scale_init)))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if stride != 1 or in_chs != out_chs:
            self.shortcut: nn.Module = ConvNormAct(
                in_chs, out_chs, 1, stride, norm_layer=layers.norm
            )
        else:
            self.shortcut = nn.Identity()
        self.act = nn.Identity() if spec.fewer_activations else layers.act()
        # Speed only (same parameters, same maths): ConvNeXt-shaped blocks (two norm-free 1x1
        # convs last, from fewer_norms on) run their 1x1 convs on channels-last memory, see
        # `forward` and docs/benchmarks.md.
        self.channels_last_mlp = spec.spatial_first and not (has_norm[1] or has_norm[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch, scaled and dropped, plus shortcut, then the outer activation."""
        shortcut = self.shortcut(x)
        x = self.conv1(x)
        if self.channels_last_mlp:
            # The 1x1 convs are then GEMMs over channels (oneDNN NHWC / cuDNN NHWC). After a
            # LayerNorm2d (a permuted view) this is already so and costs nothing; after a
            # BatchNorm on NCHW it is one copy, and the rest of the stage stays channels-last.
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.conv3(self.conv2(x))
        if self.gamma is not None:
            x = x * self.gamma.view(1, -1, 1, 1)
        x = self.drop_path(x)
        # In place, as torchvision's `out += identity` (no tensor saved for backward is
        # overwritten; autograd would raise if one were); out of place where autocast made the
        # dtypes differ, so that the sum keeps the promoted dtype.
        if x.dtype == shortcut.dtype:
            x += shortcut
        else:
            x = x + shortcut
        return self.act(x)


class Stage(nn.Module):
    """Optional separate downsampling layer, then a sequence of blocks."""

    def __init__(self, downsample: nn.Module, blocks: list[Block]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Downsample, then the blocks."""
        return self.blocks(self.downsample(x))


class RoadmapNet(nn.Module):
    """A network of the ResNet -> ConvNeXt design space, built from an `ArchSpec`.

    Args:
        spec: the design.
        num_classes: classifier outputs (0 for none: `forward` returns pooled features).
        in_chans: input image channels.
        drop_path_rate: overrides `spec.drop_path_rate` when given.
        layer_scale_init: overrides `spec.layer_scale_init` when given; 0 turns it off.
    """

    def __init__(
        self,
        spec: ArchSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float | None = None,
        layer_scale_init: float | None = None,
    ) -> None:
        super().__init__()
        if drop_path_rate is not None or layer_scale_init is not None:
            spec = spec.replace(
                drop_path_rate=spec.drop_path_rate
                if drop_path_rate is None
                else drop_path_rate,
                layer_scale_init=(
                    spec.layer_scale_init
                    if layer_scale_init is None
                    else layer_scale_init or None
                ),
            )
        self.spec = spec
        layers = _layers(spec)
        self.stem = self._stem(spec, in_chans, layers)

        total = sum(spec.depths)
        rates = [spec.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages = []
        in_chs, idx = spec.width, 0
        for i, depth in enumerate(spec.depths):
            w = spec.width * 2**i
            out_chs = w if spec.inverted_bottleneck else w * spec.expansion
            mid_chs = w * spec.expansion if spec.inverted_bottleneck else w
            stride = 1 if i == 0 else 2
            downsample: nn.Module = nn.Identity()
            if spec.separate_downsampling and i > 0:
                downsample = nn.Sequential()
                downsample.add_module("norm", layers.norm(in_chs))
                downsample.add_module("conv", nn.Conv2d(in_chs, out_chs, 2, 2))
                in_chs, stride = out_chs, 1
            blocks = []
            for j in range(depth):
                blocks.append(
                    Block(
                        in_chs,
                        out_chs,
                        mid_chs,
                        stride if j == 0 else 1,
                        spec,
                        layers,
                        drop_path=rates[idx],
                        layer_scale_init=spec.layer_scale_init,
                    )
                )
                in_chs, idx = out_chs, idx + 1
            stages.append(Stage(downsample, blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = in_chs
        self.head = nn.Sequential()
        self.head.add_module("pool", nn.AdaptiveAvgPool2d(1))
        self.head.add_module("flatten", nn.Flatten(1))
        if spec.separate_downsampling:
            self.head.add_module(
                "norm",
                nn.LayerNorm(in_chs, eps=_eps(spec))
                if spec.norm == "ln"
                else nn.BatchNorm1d(in_chs, eps=_eps(spec)),
            )
        self.num_classes = num_classes
        self.head.add_module(
            "fc", nn.Linear(in_chs, num_classes) if num_classes else nn.Identity()
        )
        self.pretrained_cfg = dict(PRETRAINED_CFG, num_classes=num_classes)
        self.apply(_init_weights)

    @staticmethod
    def _stem(spec: ArchSpec, in_chans: int, layers: _Layers) -> nn.Module:
        if spec.stem == "patchify":
            return ConvNormAct(
                in_chans, spec.width, 4, 4, padding=0, norm_layer=layers.norm
            )
        stem = ConvNormAct(
            in_chans,
            spec.width,
            7,
            2,
            padding=3,
            norm_layer=layers.norm,
            act_layer=layers.act,
        )
        stem.add_module("pool", nn.MaxPool2d(3, 2, 1))
        return stem

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and stages: the last feature map."""
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, (norm), classify; `pre_logits` stops before the classifier."""
        for name, module in self.head.named_children():
            if pre_logits and name == "fc":
                break
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images (N, C, H, W)."""
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The final classifier (timm's model interface)."""
        return self.head.fc

    def reset_classifier(
        self, num_classes: int, global_pool: str | None = None
    ) -> None:
        """Replace the classifier (timm's model interface); pooling stays average."""
        self.num_classes = num_classes
        self.head.fc = (
            nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        )


def _eps(spec: ArchSpec) -> float:
    if spec.norm_eps is not None:
        return spec.norm_eps
    return 1e-5 if spec.norm == "bn" else 1e-6


def _init_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) convs and linears with zero bias, as ConvNeXt (Table 5)."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_model(
    spec: ArchSpec,
    num_classes: int = 1000,
    in_chans: int = 3,
    drop_path_rate: float | None = None,
    layer_scale_init: float | None = None,
) -> RoadmapNet:
    """Build the network of `spec` (see `RoadmapNet` for the arguments)."""
    return RoadmapNet(spec, num_classes, in_chans, drop_path_rate, layer_scale_init)
