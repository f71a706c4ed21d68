"""The roadmap as data: per track, an ordered list of steps, each a cumulative delta on a spec.

A step's spec is its parent's spec with the step's `changes` applied (`ArchSpec.replace`, so a
misspelt field fails at import). On-path steps chain; side branches (kernel 5/9/11, tried and not
adopted) start from the on-path step before them and are never a parent, so the path continues
from kernel_7 exactly as in the paper's Figure 2. Nothing outside this file names a toggle.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from roadmap.spec import ArchSpec

GROUPS = (
    "baseline",
    "macro design",
    "resnext-ify",
    "inverted bottleneck",
    "large kernel",
    "micro design",
)


@dataclass(frozen=True)
class Step:
    """One design decision of the roadmap, resolved to the full spec it produces."""

    track: str
    index: int  # 1-based position in the track (the paper CSV's `order`)
    name: str
    group: str
    on_path: bool
    changes: MappingProxyType  # the delta against `parent`
    parent: str | None
    spec: ArchSpec = field(repr=False)

    @property
    def model_name(self) -> str:
        """Name under which the step is registered with timm: `<track>_<step>`."""
        return f"{self.track}_{self.name}"


# (name, group, on_path, changes). Side branches (on_path False) do not carry forward.
_RESNET50: list[tuple[str, str, bool, dict[str, Any]]] = [
    ("resnet50_modern_recipe", "baseline", True, {}),
    ("stage_ratio", "macro design", True, {"depths": (3, 3, 9, 3)}),
    ("patchify_stem", "macro design", True, {"stem": "patchify"}),
    ("depthwise_conv", "resnext-ify", True, {"depthwise": True}),
    ("width_96", "resnext-ify", True, {"width": 96}),
    ("inverted_bottleneck", "inverted bottleneck", True, {"inverted_bottleneck": True}),
    ("move_up_dwconv", "large kernel", True, {"spatial_first": True}),
    ("kernel_5", "large kernel", False, {"kernel_size": 5}),
    ("kernel_7", "large kernel", True, {"kernel_size": 7}),
    ("kernel_9", "large kernel", False, {"kernel_size": 9}),
    ("kernel_11", "large kernel", False, {"kernel_size": 11}),
    ("relu_to_gelu", "micro design", True, {"act": "gelu"}),
    ("fewer_activations", "micro design", True, {"fewer_activations": True}),
    ("fewer_norms", "micro design", True, {"fewer_norms": True}),
    ("bn_to_ln", "micro design", True, {"norm": "ln"}),
    ("separate_downsampling", "micro design", True, {"separate_downsampling": True}),
]

# Appendix C / Table 11: same sequence from ResNet-200; the stage ratio changes together with
# width 64 -> 84, and width becomes 128 after the depthwise step. Ends at ConvNeXt-B.
_RESNET200 = [
    ("resnet200_modern_recipe", "baseline", True, {}),
    (
        "stage_ratio_and_width_84",
        "macro design",
        True,
        {"depths": (3, 3, 27, 3), "width": 84},
    ),
    *[
        ("width_128", "resnext-ify", True, {"width": 128})
        if row[0] == "width_96"
        else row
        for row in _RESNET50[2:]
    ],
]

_BASES = {
    "resnet50": ArchSpec(depths=(3, 4, 6, 3)),
    "resnet200": ArchSpec(depths=(3, 24, 36, 3)),
}
_TABLES = {"resnet50": _RESNET50, "resnet200": _RESNET200}


def _resolve(track: str) -> tuple[Step, ...]:
    """Apply the deltas of one track in order."""
    spec, parent, out = _BASES[track], None, []
    for i, (name, group, on_path, changes) in enumerate(_TABLES[track], start=1):
        assert group in GROUPS, group
        step_spec = spec.replace(**changes)
        out.append(
            Step(
                track,
                i,
                name,
                group,
                on_path,
                MappingProxyType(dict(changes)),
                parent,
                step_spec,
            )
        )
        if on_path:
            spec, parent = step_spec, name
    return tuple(out)


TRACKS: dict[str, tuple[Step, ...]] = {track: _resolve(track) for track in _TABLES}
DEFAULT_TRACK = "resnet50"


def steps(track: str = DEFAULT_TRACK) -> tuple[Step, ...]:
    """All steps of `track`, in roadmap order."""
    if track not in TRACKS:
        raise ValueError(f"unknown track {track!r}; tracks are: {', '.join(TRACKS)}")
    return TRACKS[track]


def step_names(track: str = DEFAULT_TRACK) -> list[str]:
    """Step names of `track`, in roadmap order."""
    return [s.name for s in steps(track)]


def get_step(name: str, track: str = DEFAULT_TRACK) -> Step:
    """The step called `name`; an unknown name is an error suggesting the nearest one."""
    for step in steps(track):
        if step.name == name:
            return step
    names = step_names(track)
    near = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise ValueError(
        f"unknown step {name!r} on track {track!r}.{hint} Steps are: {', '.join(names)}"
    )


def get_spec(name: str, track: str = DEFAULT_TRACK) -> ArchSpec:
    """The full spec of step `name` on `track`."""
    return get_step(name, track).spec
