"""The ConvNeXt family of the paper: named models, each a delta on a track's endpoint spec.

ConvNeXt-T and -B are the endpoints of the two tracks; S, L and XL change their depths or width
(Section 3, "Configurations"); the isotropic ConvNeXt-S/B/L (Section 3.3) have one stage of
constant width after a 16x16 patchify stem. Names are the official code's (and timm's); timm
lists them as `roadmap_<name>` (`roadmap.registry`). Like the step table, this imports no torch.
See docs/design.md, "The ConvNeXt family", for what is checked against what.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from roadmap.spec import ArchSpec
from roadmap.steps import R50, R200, steps

if TYPE_CHECKING:
    from roadmap.model import RoadmapNet

# Every hierarchical ConvNeXt but T has ConvNeXt-B's stage ratio (Section 3: 3, 3, 27, 3).
DEPTHS_3_3_27_3 = (3, 3, 27, 3)


@dataclass(frozen=True)
class Member:
    """One model of the family: the endpoint spec of `track` with `changes` applied."""

    name: str  # the official code's model name (timm's, for the hierarchical ones)
    track: str  # the track whose endpoint (last on-path step) it changes
    changes: MappingProxyType = field(repr=False)  # ArchSpec fields set on that spec
    paper_params_m: float  # Table 1 (hierarchical, 224) or Table 3 (isotropic): millions
    paper_gflops: float  # the same tables' FLOPs at 224x224, one multiply-add as one
    # "<library>.<model>" that it equals weight for weight, converted with `source`; None where
    # no installed library builds it (the isotropic models: tests/test_family.py builds one).
    reference: str | None = None
    source: str = "timm_convnext"  # converter name in roadmap.convert.SOURCES
    # --layer_scale_init_value of the official training command (TRAINING.md): main.py's 1e-6,
    # except 0 (no gamma) for the isotropic S and B.
    layer_scale: float = 1e-6

    @property
    def spec(self) -> ArchSpec:
        """The full spec: the track's endpoint with this member's changes."""
        endpoint = [s for s in steps(self.track) if s.on_path][-1]
        return endpoint.spec.replace(**self.changes)

    @property
    def model_name(self) -> str:
        """Name under which it is registered with timm (timm's own names are not shadowed)."""
        return f"roadmap_{self.name}"

    def build(self, **kwargs: Any) -> RoadmapNet:
        """Build it; kwargs go to `roadmap.build_model` (layer scale: the official command's)."""
        from roadmap.model import build_model

        kwargs.setdefault("layer_scale_init", self.layer_scale)
        return build_model(self.spec, **kwargs)


def _isotropic(width: int, depth: int) -> dict[str, Any]:
    """Section 3.3: one stage of `depth` blocks at `width` channels after a 16x16 patchify."""
    # The official stem is a bare conv (convnext_isotropic.py); the head norm is the endpoint's.
    return {"depths": (depth,), "width": width, "patch_size": 16, "stem_norm": False}


def _member(name: str, track: str, changes: dict[str, Any], *args: Any, **kw: Any) -> Member:
    """A `Member` whose changes are read-only."""
    return Member(name, track, MappingProxyType(changes), *args, **kw)


FAMILY: tuple[Member, ...] = (
    _member("convnext_tiny", R50, {}, 28, 4.5, "timm.convnext_tiny"),
    _member("convnext_small", R50, {"depths": DEPTHS_3_3_27_3}, 50, 8.7, "timm.convnext_small"),
    _member("convnext_base", R200, {}, 89, 15.4, "timm.convnext_base"),
    _member("convnext_large", R200, {"width": 192}, 198, 34.4, "timm.convnext_large"),
    _member("convnext_xlarge", R200, {"width": 256}, 350, 60.9, "timm.convnext_xlarge"),
    _member("convnext_isotropic_small", R50, _isotropic(384, 18), 22, 4.3, layer_scale=0.0),
    _member("convnext_isotropic_base", R50, _isotropic(768, 18), 87, 16.9, layer_scale=0.0),
    _member("convnext_isotropic_large", R50, _isotropic(1024, 36), 306, 59.7),
)


def get_member(name: str) -> Member:
    """The family member called `name`; an unknown name is an error listing them."""
    for member in FAMILY:
        if member.name == name:
            return member
    raise ValueError(f"unknown model {name!r}; the family is: {', '.join(m.name for m in FAMILY)}")
