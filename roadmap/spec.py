"""The architecture spec: one frozen dataclass holding every design toggle of the roadmap.

`ArchSpec` says what network a step is, and nothing of how it is trained: stochastic depth,
layer scale and initialisation are arguments of `roadmap.build_model`, which the training recipe
decides (experiments/recipe.py). Every field names the step of "A ConvNet for the 2020s" (Liu et
al., CVPR 2022, Section 2 and Appendix C) that changes it. Defaults describe torchvision's
ResNet-50 (same layers, same parameters), so a field that no step touches is neutral. A bad
value is a UserError naming the field, raised where the spec is made.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

from roadmap.errors import UserError

STEMS = ("resnet", "patchify")
# The names of norms (bn_to_ln) and activations (relu_to_gelu) a spec may give; each has its
# layers in `roadmap.layers` (NORM_LAYERS, ACT_LAYERS), which the builder alone imports, so that
# reading the step table needs no torch.
NORMS = ("bn", "ln")
ACTS = ("relu", "gelu")
# Not a spec field: the names of `roadmap.build_model`'s `init` (the recipe decides it), each a
# function in `roadmap.model.INITS`: the authors' roadmap code's (trunc-normal linears, convs at
# PyTorch's default), trunc-normal 0.02 for convs and linears (ConvNeXt's), or torchvision's.
INIT_NAMES = ("authors_roadmap", "trunc_normal", "torchvision")


@dataclass(frozen=True)
class ArchSpec:
    """A point in the ResNet -> ConvNeXt design space; build it with `roadmap.build_model`."""

    # stage_ratio: blocks per stage; ResNet-50 (3, 4, 6, 3) -> Swin-T's 1:1:3:1 as (3, 3, 9, 3).
    depths: tuple[int, ...] = (3, 4, 6, 3)
    # patchify_stem: "resnet" (7x7/s2 conv, norm, act, 3x3/s2 max-pool) or "patchify" (a bare
    # 4x4/s4 conv, like Swin's patch embedding and the authors' `patch_embed`).
    stem: str = "resnet"
    # Not a roadmap step: the isotropic ConvNeXts of Section 3.3 (roadmap.family) patchify with
    # 16x16. Side and stride of the patchify stem's conv (Swin's and ConvNeXt's 4); the ResNet
    # stem does not read it.
    patch_size: int = 4
    # patchify_stem (off) / separate_downsampling (on): a norm after the stem's conv; ResNet's
    # stem has one, the patchify stem gets its own with separate_downsampling (Section 2.6).
    stem_norm: bool = True
    # depthwise_conv: the block's spatial conv becomes depthwise (groups = channels, ResNeXt-ify).
    depthwise: bool = False
    # width_96: channels of the first stage (ResNet 64 -> Swin-T 96; 84 and 128 on the
    # ResNet-200 track); stage i has width * 2**i.
    width: int = 64
    # inverted_bottleneck: the block's hidden layer is wider than its input (MobileNetV2/MLP),
    # instead of narrower (ResNet bottleneck).
    inverted_bottleneck: bool = False
    # inverted_bottleneck: the ratio between the wide and the narrow channels in a block (4 in both
    # the ResNet bottleneck and the Transformer MLP).
    expansion: int = 4
    # move_up_dwconv: the spatial conv comes first in the block (like MSA before the MLP).
    dwconv_first: bool = False
    # kernel_5 / kernel_7 / kernel_9 / kernel_11: side of the block's spatial conv.
    kernel_size: int = 3
    # relu_to_gelu: the activation function, one of ACTS.
    act: str = "relu"
    # fewer_activations: one activation per block, between the two 1x1 convs (as in the MLP).
    fewer_activations: bool = False
    # fewer_norms: one norm per block, after its first conv.
    fewer_norms: bool = False
    # bn_to_ln: the normalization layer, "bn" (BatchNorm) or "ln" (LayerNorm over channels), one
    # of NORMS.
    norm: str = "bn"
    # separate_downsampling: norm + 2x2/s2 conv between stages instead of strided blocks (the
    # step also sets stem_norm and head_norm, Section 2.6).
    separate_downsampling: bool = False
    # final_norm (side step) / separate_downsampling: a norm after global average pooling, before
    # the classifier (the authors' `--resnet_final_norm`).
    head_norm: bool = False
    # Not a paper step: epsilon of the norm layers; None takes the norm's default in
    # `roadmap.layers.NORM_LAYERS` (1e-5 for BN, 1e-6 for LN as ConvNeXt).
    norm_eps: float | None = field(default=None)

    def __post_init__(self) -> None:
        """Check every field once, so a bad spec fails where it is written."""
        # JSON gives lists back; tuples keep the spec equal and hashable.
        for name in _tuple_fields(type(self)):
            value = _as_tuples(getattr(self, name))
            _check(isinstance(value, tuple), name, f"must be a tuple, got {value!r}")
            object.__setattr__(self, name, value)
        depths = self.depths
        _check(
            len(depths) >= 1 and all(_is_int(d) and d >= 1 for d in depths),
            "depths",
            f"must be a non-empty tuple of positive ints, got {self.depths!r}",
        )
        _check_choice("stem", self.stem, STEMS)
        _check_choice("act", self.act, ACTS)
        _check_choice("norm", self.norm, NORMS)
        _check(
            _is_int(self.width) and self.width >= 1,
            "width",
            f"must be a positive int, got {self.width!r}",
        )
        _check(
            _is_int(self.patch_size) and self.patch_size >= 1,
            "patch_size",
            f"must be a positive int, got {self.patch_size!r}",
        )
        _check(
            _is_int(self.expansion) and self.expansion >= 1,
            "expansion",
            f"must be a positive int, got {self.expansion!r}",
        )
        _check(
            _is_int(self.kernel_size) and self.kernel_size >= 1 and self.kernel_size % 2 == 1,
            "kernel_size",
            f"must be an odd int >= 1 (same padding), got {self.kernel_size!r}",
        )
        _check(
            self.norm_eps is None or float(self.norm_eps) > 0,
            "norm_eps",
            f"must be None or > 0, got {self.norm_eps!r}",
        )
        for name in BOOL_FIELDS:
            _check(isinstance(getattr(self, name), bool), name, "must be a bool")

    def replace(self, **changes: Any) -> ArchSpec:
        """Return a copy with `changes`; an unknown field name is an error naming it."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise UserError(
                f"ArchSpec has no field {', '.join(map(repr, unknown))}; "
                f"fields are: {', '.join(f.name for f in fields(self))}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict of every field."""
        return {k: _as_lists(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        """Inverse of `to_dict` (lists become tuples again); unknown keys are an error."""
        return cls().replace(**data)

    def to_json(self) -> str:
        """The spec as a JSON string (keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        """Inverse of `to_json`."""
        return cls.from_dict(json.loads(text))

    def diff(self, other: ArchSpec) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ, as {name: (self's, other's)}."""
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        }


# The on/off toggles: every field whose default is a bool, so a new one is checked with no extra
# line (read by `ArchSpec.__post_init__`, which runs only after this module is loaded).
BOOL_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(ArchSpec) if isinstance(f.default, bool)
)


@cache
def _tuple_fields(cls: type) -> tuple[str, ...]:
    """The fields of dataclass `cls` annotated as tuples (`tuple[int, ...]`, ...)."""
    hints = typing.get_type_hints(cls)
    return tuple(f.name for f in fields(cls) if typing.get_origin(hints[f.name]) is tuple)


# The tuple-typed fields, from the annotations: a list given for one becomes a tuple, so a spec
# read back from JSON equals and hashes as the original, with no per-field code.
TUPLE_FIELDS: tuple[str, ...] = _tuple_fields(ArchSpec)


def _as_tuples(value: Any) -> Any:
    """`value` with every list, at any depth, turned into a tuple."""
    if isinstance(value, list | tuple):
        return tuple(_as_tuples(v) for v in value)
    return value


def _as_lists(value: Any) -> Any:
    """`value` with every tuple, at any depth, turned into a list (as JSON gives it)."""
    if isinstance(value, list | tuple):
        return [_as_lists(v) for v in value]
    return value


def _is_int(value: Any) -> bool:
    """Whether `value` is an int and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, name: str, message: str) -> None:
    """Raise a UserError naming the field `name` unless `ok`."""
    if not ok:
        raise UserError(f"ArchSpec.{name} {message}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Check that the field `name` is one of `choices`; the error lists them."""
    _check(value in choices, name, f"must be one of {choices}, got {value!r}")
