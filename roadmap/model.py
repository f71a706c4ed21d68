"""The builder: one generic network whose every design decision is read from an `ArchSpec`.

How the network starts training (stochastic depth, layer scale, initialisation) is not design:
those are `build_model`'s arguments, which a run's recipe sets. Names are resolved to layer
types once, by `roadmap.layers.resolve_layers`, and passed down; blocks never read the spec for
anything but their own shape. Module names follow the data flow (stem, stages.i.downsample,
stages.i.blocks.j.conv1..3, head) so that `roadmap.convert` can map torchvision and timm
weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, trunc_normal_
from torch import nn

from roadmap.layers import ConvNormAct, ConvShape, Layers, resolve_layers
from roadmap.spec import INIT_NAMES, ArchSpec

# What timm's data helpers (resolve_data_config, create_transform) read from a model.
PRETRAINED_CFG = {
    "input_size": (3, 224, 224),
    "interpolation": "bicubic",
    "crop_pct": 0.875,
    "mean": IMAGENET_DEFAULT_MEAN,
    "std": IMAGENET_DEFAULT_STD,
    "num_classes": 1000,
    "first_conv": "stem.conv",
    "classifier": "head.fc",
}


def _block_conv_shapes(
    in_chs: int, mid_chs: int, out_chs: int, stride: int, spec: ArchSpec
) -> tuple[ConvShape, ConvShape, ConvShape]:
    """The three convs of a block, in order: (1x1, kxk, 1x1), or (kxk, 1x1, 1x1) spatial first.

    The spatial conv carries the block's stride and, with `depthwise`, one group per channel.
    """
    kernel = spec.kernel_size
    if spec.dwconv_first:
        groups = in_chs if spec.depthwise else 1
        return (
            ConvShape(in_chs, in_chs, kernel, stride, groups),
            ConvShape(in_chs, mid_chs),
            ConvShape(mid_chs, out_chs),
        )
    groups = mid_chs if spec.depthwise else 1
    return (
        ConvShape(in_chs, mid_chs),
        ConvShape(mid_chs, mid_chs, kernel, stride, groups),
        ConvShape(mid_chs, out_chs),
    )


class Block(nn.Module):
    """Residual block of three convs: (1x1, kxk, 1x1) or, spatial conv first, (kxk, 1x1, 1x1).

    Args:
        in_chs: input channels.
        out_chs: output channels (the residual stream).
        mid_chs: channels between the convs (narrow in a bottleneck, wide when inverted).
        stride: stride of the spatial conv (2 in a downsampling block).
        spec: the design (kernel, depthwise, order, how many norms and activations).
        layers: resolved norm and activation factories (`roadmap.layers.resolve_layers`).
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
        layers: Layers,
        drop_path: float = 0.0,
        layer_scale_init: float | None = None,
    ) -> None:
        super().__init__()
        # Full blocks: a norm after every conv, an act after the first two and after the sum.
        # fewer_norms keeps the first norm; fewer_activations keeps the act after the second conv.
        with_norm = (True, not spec.fewer_norms, not spec.fewer_norms)
        with_act = (not spec.fewer_activations, True, False)
        shapes = _block_conv_shapes(in_chs, mid_chs, out_chs, stride, spec)
        for index, (shape, norm_on, act_on) in enumerate(
            zip(shapes, with_norm, with_act, strict=True), start=1
        ):
            conv = ConvNormAct(
                **shape._asdict(),
                norm_layer=layers.norm if norm_on else None,
                act_layer=layers.act if act_on else None,
                bias=layers.conv_bias,
            )
            self.add_module(f"conv{index}", conv)
        # One mechanism on every step: a per-channel scale at the end of the residual branch,
        # as ConvNeXt's and the authors' `gamma_1` (docs/design.md, "Layer scale").
        self.gamma: nn.Parameter | None = None
        if layer_scale_init:
            self.gamma = nn.Parameter(torch.full((out_chs,), float(layer_scale_init)))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if stride != 1 or in_chs != out_chs:  # a projection: never a bias (modeling_resnet.py:506)
            self.shortcut: nn.Module = ConvNormAct(
                in_chs, out_chs, 1, stride, norm_layer=layers.norm
            )
        else:
            self.shortcut = nn.Identity()
        self.act = nn.Identity() if spec.fewer_activations else layers.act()
        # Speed only (same parameters, same maths): ConvNeXt-shaped blocks (two norm-free 1x1
        # convs last, from fewer_norms on) run their 1x1 convs on channels-last memory, see
        # `forward` and docs/benchmarks.md.
        self.channels_last_mlp = spec.dwconv_first and not any(with_norm[1:])

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
        drop_path_rate: stochastic depth rate of the last block, rising linearly from 0 at the
            first (Table 5); 0 for none.
        layer_scale_init: initial value of the per-channel scale that ends every residual
            branch (Table 5: 1e-6, as timm's ConvNeXt `ls_init_value`); None or 0 for none.
        init: how convs and linears are initialised, a key of `INITS`.
    """

    def __init__(
        self,
        spec: ArchSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = 1e-6,
        init: str = "authors_roadmap",
    ) -> None:
        super().__init__()
        _check_build_args(drop_path_rate, layer_scale_init, init)
        self.spec = spec
        layers = resolve_layers(spec.norm, spec.act, spec.norm_eps)
        self.stem = _make_stem(spec, in_chans, layers)
        rates = _drop_path_rates(spec, drop_path_rate)
        stages, in_chs, first_block = [], spec.width, 0
        for index, depth in enumerate(spec.depths):
            block_rates = rates[first_block : first_block + depth]
            stage = _make_stage(spec, layers, index, in_chs, block_rates, layer_scale_init)
            stages.append(stage)
            in_chs = _stage_channels(spec, index).out_chs
            first_block += depth
        self.stages = nn.Sequential(*stages)
        self.num_features = in_chs
        self.num_classes = num_classes
        self.head = _make_head(in_chs, num_classes, layers, spec.head_norm)
        self.pretrained_cfg = dict(PRETRAINED_CFG, num_classes=num_classes)
        self.apply(INITS[init])

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

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier (timm's model interface); pooling stays average."""
        self.num_classes = num_classes
        self.head.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


def _check_build_args(drop_path_rate: float, layer_scale_init: float | None, init: str) -> None:
    """A ValueError naming the builder argument that is out of its range."""
    if not 0.0 <= float(drop_path_rate) < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
    if layer_scale_init is not None and float(layer_scale_init) < 0:
        raise ValueError(f"layer_scale_init must be None, 0 (off) or > 0, got {layer_scale_init!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {tuple(INITS)}, got {init!r}")


def _drop_path_rates(spec: ArchSpec, rate: float) -> list[float]:
    """Stochastic depth rate of every block, rising linearly from 0 to `rate`."""
    total = sum(spec.depths)
    return [rate * i / max(total - 1, 1) for i in range(total)]


class StageChannels(NamedTuple):
    """Channels of a stage's blocks: between their convs, and of the residual stream."""

    mid_chs: int
    out_chs: int


def _stage_channels(spec: ArchSpec, index: int) -> StageChannels:
    """Channels of stage `index`, whose width is `spec.width * 2**index`.

    A bottleneck's residual stream is `expansion` times wider than its hidden layer; an inverted
    bottleneck's is `expansion` times narrower.
    """
    width = spec.width * 2**index
    if spec.inverted_bottleneck:
        return StageChannels(mid_chs=width * spec.expansion, out_chs=width)
    return StageChannels(mid_chs=width, out_chs=width * spec.expansion)


def _make_stem(spec: ArchSpec, in_chans: int, layers: Layers) -> nn.Module:
    """The stem: patchify (P x P/s P conv, biased; P = `patch_size`) or ResNet's (7x7/s2, max-pool).

    Either has the norm after its conv when `spec.stem_norm`; the conv's bias is the authors'
    (modeling_resnet.py:360 and :365).
    """
    norm = layers.norm if spec.stem_norm else None
    if spec.stem == "patchify":
        size = spec.patch_size
        return ConvNormAct(in_chans, spec.width, size, size, padding=0, norm_layer=norm, bias=True)
    stem = ConvNormAct(in_chans, spec.width, 7, 2, padding=3, norm_layer=norm, act_layer=layers.act)
    stem.add_module("pool", nn.MaxPool2d(3, 2, 1))
    return stem


def _make_stage(
    spec: ArchSpec,
    layers: Layers,
    index: int,
    in_chs: int,
    drop_path_rates: list[float],
    layer_scale_init: float | None,
) -> Stage:
    """Stage `index` (one block per rate in `drop_path_rates`), taking `in_chs` channels.

    Every stage but the first halves the resolution: in its first block's spatial conv, or, with
    `separate_downsampling`, in a norm + 2x2/s2 conv layer before the blocks.
    """
    mid_chs, out_chs = _stage_channels(spec, index)
    stride = 1 if index == 0 else 2
    downsample: nn.Module = nn.Identity()
    if spec.separate_downsampling and index > 0:
        downsample = nn.Sequential()
        downsample.add_module("norm", layers.norm(in_chs))
        downsample.add_module("conv", nn.Conv2d(in_chs, out_chs, 2, 2))  # biased, as both codes
        in_chs, stride = out_chs, 1
    blocks = []
    for rate in drop_path_rates:
        block = Block(
            in_chs,
            out_chs,
            mid_chs,
            stride,
            spec,
            layers,
            drop_path=rate,
            layer_scale_init=layer_scale_init,
        )
        blocks.append(block)
        in_chs, stride = out_chs, 1
    return Stage(downsample, blocks)


def _make_head(in_chs: int, num_classes: int, layers: Layers, with_norm: bool) -> nn.Sequential:
    """Global average pool, flatten, the 1-D norm if `with_norm`, classifier (none if 0)."""
    head = nn.Sequential()
    head.add_module("pool", nn.AdaptiveAvgPool2d(1))
    head.add_module("flatten", nn.Flatten(1))
    if with_norm:
        head.add_module("norm", layers.head_norm(in_chs))
    head.add_module("fc", nn.Linear(in_chs, num_classes) if num_classes else nn.Identity())
    return head


def _init_authors_roadmap(module: nn.Module) -> None:
    """The authors' roadmap code: trunc-normal (0.02) linears with zero bias, the rest as built.

    Convs keep PyTorch's default init (their `--resnet_init trunc` is in no step's command) and
    norms weight 1, bias 0: modeling_resnet.py:448-460, docs/design.md "Initialisation".
    """
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _init_trunc_normal(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) convs and linears with zero bias, as ConvNeXt (Table 5)."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _init_torchvision(module: nn.Module) -> None:
    """Torchvision's ResNet: Kaiming-normal convs (fan_out, ReLU gain), the rest as built.

    Norms keep weight 1 and bias 0 and linears PyTorch's default, as in
    `torchvision.models.ResNet`; biased convs (none in a ResNet) start at zero bias, as
    torchvision's VGG and MobileNets.
    """
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# The builder's `init` choices: a function applied to every module once the network is built.
INITS: dict[str, Callable[[nn.Module], None]] = {
    "authors_roadmap": _init_authors_roadmap,
    "trunc_normal": _init_trunc_normal,
    "torchvision": _init_torchvision,
}
if tuple(INITS) != INIT_NAMES:
    raise ImportError(f"roadmap.model: INITS {tuple(INITS)} differ from roadmap.spec.INIT_NAMES")


def build_model(
    spec: ArchSpec,
    num_classes: int = 1000,
    in_chans: int = 3,
    drop_path_rate: float = 0.0,
    layer_scale_init: float | None = 1e-6,
    init: str = "authors_roadmap",
) -> RoadmapNet:
    """Build the network of `spec` (see `RoadmapNet` for the arguments)."""
    return RoadmapNet(spec, num_classes, in_chans, drop_path_rate, layer_scale_init, init)
