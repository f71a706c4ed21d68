"""The roadmap as data: one table of steps, each a cumulative delta on its parent's spec.

Every row names the tracks it belongs to; a track's steps are the rows that name it, in table
order. A step's spec is its parent's spec with the step's `changes` applied. On-path steps chain;
side branches (kernel 5/9/11, tried and not adopted) start from the on-path step before them and
are never a parent, so the path continues from kernel_7 exactly as in the paper's Figure 2.
Nothing outside this file names a toggle.

A track is resolved on first use (`steps`, `TRACKS[track]`), not at import, so that a mistake
in the table breaks no command that does not read it (`roadmap --help`); the mistake is then one
line naming the track, the step and the field (`StepTableError`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from types import MappingProxyType
from typing import Any, NamedTuple

from roadmap.errors import UserError
from roadmap.spec import ArchSpec

GROUPS = (
    "baseline",
    "macro design",
    "resnext-ify",
    "inverted bottleneck",
    "large kernel",
    "micro design",
)
R50, R200 = "resnet50", "resnet200"
BOTH = (R50, R200)


class Row(NamedTuple):
    """One row of the step table, as written."""

    name: str
    group: str  # one of GROUPS
    on_path: bool  # False: a side branch (tried, not adopted); nothing follows from it
    changes: dict[str, Any]  # ArchSpec fields set by this step
    tracks: tuple[str, ...]  # the tracks this step belongs to (keys of _BASES)


# Appendix C / Table 11: the resnet200 track is the same sequence from ResNet-200, except that
# the stage ratio changes together with width 64 -> 84 and width becomes 128 (not 96) after the
# depthwise step. It ends at ConvNeXt-B.
STEP_TABLE: tuple[Row, ...] = (
    Row("resnet50_modern_recipe", "baseline", True, {}, (R50,)),
    Row("resnet200_modern_recipe", "baseline", True, {}, (R200,)),
    Row("stage_ratio", "macro design", True, {"depths": (3, 3, 9, 3)}, (R50,)),
    Row(
        "stage_ratio_and_width_84",
        "macro design",
        True,
        {"depths": (3, 3, 27, 3), "width": 84},
        (R200,),
    ),
    # The authors' patchify stem is a bare conv (modeling_resnet.py:365); its norm comes with
    # separate_downsampling (Section 2.6), with the head's.
    Row("patchify_stem", "macro design", True, {"stem": "patchify", "stem_norm": False}, BOTH),
    Row("depthwise_conv", "resnext-ify", True, {"depthwise": True}, BOTH),
    Row("width_96", "resnext-ify", True, {"width": 96}, (R50,)),
    Row("width_128", "resnext-ify", True, {"width": 128}, (R200,)),
    Row(
        "inverted_bottleneck",
        "inverted bottleneck",
        True,
        {"inverted_bottleneck": True},
        BOTH,
    ),
    Row("move_up_dwconv", "large kernel", True, {"dwconv_first": True}, BOTH),
    Row("kernel_5", "large kernel", False, {"kernel_size": 5}, BOTH),
    Row("kernel_7", "large kernel", True, {"kernel_size": 7}, BOTH),
    Row("kernel_9", "large kernel", False, {"kernel_size": 9}, BOTH),
    Row("kernel_11", "large kernel", False, {"kernel_size": 11}, BOTH),
    Row("relu_to_gelu", "micro design", True, {"act": "gelu"}, BOTH),
    Row("fewer_activations", "micro design", True, {"fewer_activations": True}, BOTH),
    Row("fewer_norms", "micro design", True, {"fewer_norms": True}, BOTH),
    Row("bn_to_ln", "micro design", True, {"norm": "ln"}, BOTH),
    # The authors' `--resnet_final_norm` step (README "Final norm"); the paper folds this norm
    # into separate_downsampling, so it is a side step here and Tables 10/11 have no row for it.
    Row("final_norm", "micro design", False, {"head_norm": True}, BOTH),
    Row(
        "separate_downsampling",
        "micro design",
        True,
        {"separate_downsampling": True, "stem_norm": True, "head_norm": True},
        BOTH,
    ),
)

# The modules each ArchSpec field is about, as patterns (re.search) of the builder's parameter
# and buffer names: a step may add, remove or reshape only tensors whose names match a pattern of
# a field it changes (tests/test_step_modules.py). A field a step changes must have an entry.
_BLOCK = r"stages\.\d+\.blocks\.\d+\."
FIELD_MODULES: dict[str, tuple[str, ...]] = {
    "depths": (_BLOCK,),  # blocks come and go
    "stem": (r"^stem\.",),
    "stem_norm": (r"^stem\.norm\.",),
    "depthwise": (_BLOCK + r"conv\d\.conv\.weight$",),  # the spatial conv's groups
    "width": (r"",),  # every tensor's shape
    "inverted_bottleneck": (r"^stages\.", r"^head\."),  # every block's shape, the classifier's
    "expansion": (r"^stages\.", r"^head\."),
    "dwconv_first": (_BLOCK + r"conv\d\.",),  # the block's convs and their norms swap shapes
    "kernel_size": (_BLOCK + r"conv\d\.conv\.weight$",),
    "act": (),  # activations have no tensors
    "fewer_activations": (),
    "fewer_norms": (_BLOCK + r"conv[23]\.norm\.",),
    "norm": (r"\.norm\.", _BLOCK + r"conv\d\.conv\.bias$"),  # every norm, block conv biases
    "separate_downsampling": (
        r"^stages\.\d+\.downsample\.",
        _BLOCK + r"shortcut\.",
        r"^stages\.[1-9]\d*\.blocks\.0\.",  # a stage's first block no longer downsamples
    ),
    "head_norm": (r"^head\.norm\.",),
    "norm_eps": (),
}

# The spec each track starts from (the spec of its first step is this one changed by it).
_BASES = {
    R50: ArchSpec(depths=(3, 4, 6, 3)),
    R200: ArchSpec(depths=(3, 24, 36, 3)),
}
DEFAULT_TRACK = R50


class StepTableError(UserError):
    """A mistake in `STEP_TABLE`, as one line naming the track, the step and the field."""


@dataclass(frozen=True)
class Step:
    """One design decision of the roadmap, resolved to the full spec it produces."""

    track: str
    index: int  # 1-based position in the track (run folders are numbered by it)
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


def _nearest(word: str, choices: list[str]) -> str:
    """` (did you mean 'x'?)` for the choice nearest `word`, or nothing."""
    near = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _check_tracks() -> None:
    """Raise StepTableError for a row that names no track or an unknown one."""
    for row in STEP_TABLE:
        unknown = [name for name in row.tracks if name not in _BASES]
        if unknown or not row.tracks:
            near = _nearest(unknown[0], list(_BASES)) if unknown else ""
            raise StepTableError(
                f"step table, step {row.name!r}: tracks must be among {tuple(_BASES)}, "
                f"got {tuple(row.tracks)!r}{near}"
            )


def _check_row(track: str, row: Row) -> None:
    """Raise StepTableError for a row whose group, on_path or field names are wrong."""
    where = f"step table, track {track!r}, step {row.name!r}"
    if row.group not in GROUPS:
        raise StepTableError(
            f"{where}: unknown group {row.group!r}{_nearest(row.group, list(GROUPS))}"
        )
    if not isinstance(row.on_path, bool):
        raise StepTableError(f"{where}: on_path must be True or False")
    names = [f.name for f in fields(ArchSpec)]
    for key in row.changes:
        if key not in names:
            raise StepTableError(f"{where}: ArchSpec has no field {key!r}{_nearest(key, names)}")


def _check_changes(track: str, row: Row, start: ArchSpec, end: ArchSpec, first: bool) -> None:
    """Raise StepTableError for a step that changes nothing (it would train its parent again).

    Every field it sets must differ from the spec it starts from; only a track's first step
    (its baseline) may set none.
    """
    where = f"step table, track {track!r}, step {row.name!r}"
    if not row.changes and not first:
        raise StepTableError(f"{where}: changes nothing (it sets no ArchSpec field)")
    for key, value in row.changes.items():
        if getattr(start, key) == getattr(end, key):
            raise StepTableError(
                f"{where}: {key}={value!r} changes nothing (the spec it starts from has it)"
            )


def _rows(track: str) -> list[Row]:
    """The rows of `track`, in table order (no checks: names only)."""
    return [row for row in STEP_TABLE if track in row.tracks]


@cache
def _resolve(track: str) -> tuple[Step, ...]:
    """Check the rows of `track` and apply their deltas in order."""
    _check_tracks()
    spec, parent, out = _BASES[track], None, []
    seen: set[str] = set()
    for i, row in enumerate(_rows(track), start=1):
        _check_row(track, row)
        if row.name in seen:
            raise StepTableError(f"step table, track {track!r}: two steps {row.name!r}")
        seen.add(row.name)
        try:
            step_spec = spec.replace(**row.changes)
        except ValueError as err:  # ArchSpec's message names the field and the value
            raise StepTableError(f"step table, track {track!r}, step {row.name!r}: {err}") from None
        _check_changes(track, row, spec, step_spec, first=i == 1)
        changes = MappingProxyType(dict(row.changes))
        out.append(Step(track, i, row.name, row.group, row.on_path, changes, parent, step_spec))
        if row.on_path:
            spec, parent = step_spec, row.name
    return tuple(out)


class _Tracks(Mapping[str, tuple[Step, ...]]):
    """Track name -> its steps: the names are known at import, the steps resolved on use."""

    def __getitem__(self, track: str) -> tuple[Step, ...]:
        if track not in _BASES:
            raise KeyError(track)
        return _resolve(track)

    def __iter__(self) -> Iterator[str]:
        return iter(_BASES)

    def __len__(self) -> int:
        return len(_BASES)


TRACKS: Mapping[str, tuple[Step, ...]] = _Tracks()


def steps(track: str = DEFAULT_TRACK) -> tuple[Step, ...]:
    """All steps of `track`, in roadmap order."""
    if track not in TRACKS:
        raise UserError(f"unknown track {track!r}; tracks are: {', '.join(TRACKS)}")
    return TRACKS[track]


def step_names(track: str = DEFAULT_TRACK) -> list[str]:
    """Step names of `track`, in roadmap order."""
    return [s.name for s in steps(track)]


def row_names(track: str) -> list[str]:
    """Step names of `track` as the table writes them, read without resolving any spec.

    For registering the steps with timm at import (`roadmap.registry`): a mistake in the table
    must not break `import roadmap`; building a model resolves the track and reports it.
    """
    return [row.name for row in _rows(track)]


def get_step(name: str, track: str = DEFAULT_TRACK) -> Step:
    """The step called `name`; an unknown name is an error suggesting the nearest one."""
    for step in steps(track):
        if step.name == name:
            return step
    names = step_names(track)
    near = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise UserError(
        f"unknown step {name!r} on track {track!r}.{hint} Steps are: {', '.join(names)}"
    )


def get_spec(name: str, track: str = DEFAULT_TRACK) -> ArchSpec:
    """The full spec of step `name` on `track`."""
    return get_step(name, track).spec
