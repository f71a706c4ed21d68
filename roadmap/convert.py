"""Strict weight converters from the reference implementations to roadmap models.

Users start from pretrained endpoints, and exact logits after conversion are the strongest test
of the builder: torchvision's / timm's ResNets load into a track's first step, timm's ConvNeXt
into its last. Every source tensor must be used and every target tensor filled, with equal
shapes; anything else is an error that lists the offenders.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import nn

from roadmap.errors import UserError

Rule = tuple[str, str, Callable[[torch.Tensor], torch.Tensor] | None]


def _linear_to_conv(w: torch.Tensor) -> torch.Tensor:
    """A Linear weight (out, in) as a 1x1 conv weight (out, in, 1, 1)."""
    return w.reshape(*w.shape, 1, 1) if w.ndim == 2 else w


# torchvision.models.resnet and timm.models.resnet share these names (Bottleneck, v1.5).
RESNET_RULES: list[Rule] = [
    (r"^conv1\.(.*)$", r"stem.conv.\1", None),
    (r"^bn1\.(.*)$", r"stem.norm.\1", None),
    (
        r"^layer(\d+)\.(\d+)\.conv(\d)\.(.*)$",
        r"stages.{L}.blocks.\2.conv\3.conv.\4",
        None,
    ),
    (
        r"^layer(\d+)\.(\d+)\.bn(\d)\.(.*)$",
        r"stages.{L}.blocks.\2.conv\3.norm.\4",
        None,
    ),
    (
        r"^layer(\d+)\.(\d+)\.downsample\.0\.(.*)$",
        r"stages.{L}.blocks.\2.shortcut.conv.\3",
        None,
    ),
    (
        r"^layer(\d+)\.(\d+)\.downsample\.1\.(.*)$",
        r"stages.{L}.blocks.\2.shortcut.norm.\3",
        None,
    ),
    (r"^fc\.(.*)$", r"head.fc.\1", None),
]

# timm.models.convnext (ConvNeXtBlock with conv_mlp=False: LayerNorm and Linear MLP).
CONVNEXT_RULES: list[Rule] = [
    (r"^stem\.0\.(.*)$", r"stem.conv.\1", None),
    (r"^stem\.1\.(.*)$", r"stem.norm.\1", None),
    (r"^stages\.(\d+)\.downsample\.0\.(.*)$", r"stages.\1.downsample.norm.\2", None),
    (r"^stages\.(\d+)\.downsample\.1\.(.*)$", r"stages.\1.downsample.conv.\2", None),
    (
        r"^stages\.(\d+)\.blocks\.(\d+)\.conv_dw\.(.*)$",
        r"stages.\1.blocks.\2.conv1.conv.\3",
        None,
    ),
    (
        r"^stages\.(\d+)\.blocks\.(\d+)\.norm\.(.*)$",
        r"stages.\1.blocks.\2.conv1.norm.\3",
        None,
    ),
    (
        r"^stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.(.*)$",
        r"stages.\1.blocks.\2.conv2.conv.\3",
        _linear_to_conv,
    ),
    (
        r"^stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.(.*)$",
        r"stages.\1.blocks.\2.conv3.conv.\3",
        _linear_to_conv,
    ),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.gamma$", r"stages.\1.blocks.\2.gamma", None),
    (r"^head\.norm\.(.*)$", r"head.norm.\1", None),
    (r"^head\.fc\.(.*)$", r"head.fc.\1", None),
]

SOURCES: dict[str, list[Rule]] = {
    "torchvision_resnet": RESNET_RULES,
    "timm_resnet": RESNET_RULES,
    "timm_convnext": CONVNEXT_RULES,
}


def _rename(key: str, rules: list[Rule]) -> tuple[str, Callable | None] | None:
    for pattern, repl, fn in rules:
        m = re.match(pattern, key)
        if m:
            new = m.expand(repl)
            if "{L}" in new:  # torchvision's layer1..4 are our stages.0..3
                new = new.replace("{L}", str(int(m.group(1)) - 1))
            return new, fn
    return None


def convert_state_dict(
    state_dict: Mapping[str, torch.Tensor], source: str, target: nn.Module
) -> dict[str, torch.Tensor]:
    """Map a reference `state_dict` of kind `source` onto `target`'s names and shapes, strictly."""
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r}; sources are: {', '.join(SOURCES)}")
    rules = SOURCES[source]
    wanted = target.state_dict()
    out: dict[str, torch.Tensor] = {}
    unused, mismatched = [], []
    for key, value in state_dict.items():
        hit = _rename(key, rules)
        if hit is None or hit[0] not in wanted:
            unused.append(key)
            continue
        new, fn = hit
        value = fn(value) if fn is not None else value
        if tuple(value.shape) != tuple(wanted[new].shape):
            mismatched.append(f"{key} {tuple(value.shape)} -> {new} {tuple(wanted[new].shape)}")
            continue
        out[new] = value
    missing = sorted(set(wanted) - set(out))
    problems = []
    if unused:
        problems.append(
            f"unused source tensors: {', '.join(unused[:10])}"
            + (f" (+{len(unused) - 10} more)" if len(unused) > 10 else "")
        )
    if mismatched:
        problems.append(f"shape mismatches: {'; '.join(mismatched[:10])}")
    if missing:
        problems.append(
            f"target tensors not filled: {', '.join(missing[:10])}"
            + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        )
    if problems:
        raise UserError(f"cannot convert {source} weights: " + " | ".join(problems))
    return out


def load_reference(target: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load a reference implementation's weights into `target` (strict, see module doc)."""
    target.load_state_dict(convert_state_dict(state_dict, source, target), strict=True)
