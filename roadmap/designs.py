"""Designs beyond the path: named sets of points, each a spec derived from the track's steps.

A point is a base step with some steps' deltas applied (`plus`) or reverted to their parent's
values (`minus`); its name says so: `<base>-minus-<step>`, `<base>-plus-<step>`, and for more
than one move `<base>-minus-a-plus-b` (moves in table order). Step names hold no `-`, so a name
parses back to its spec (`point_spec`): a run's config needs nothing but the name.

- `path`: the track's steps, as `roadmap sweep` has always run them;
- `leave-one-out`: the base (default: the endpoint) minus one applied on-path step, for every
  on-path step after the first;
- `add-one-in`: the base (default: the first step) plus one later on-path step;
- `factorial`: all 2^k combinations of `factors` applied (+1) or reverted (-1) at the base
  (default: the endpoint); `fraction=2` keeps the half with the product of the levels +1
  (defining relation I = AB...K, resolution k: V or more from 5 factors on).

Reverting touches only the fields that still hold the step's values at the base (a later step
may have set one again: reverting the earlier one leaves it), applying sets the step's values.
Reverts go in reverse table order, then applies in table order. A point whose spec equals a
step's is that step (`same_as_step`: its runs are that step's runs); a point whose spec
`ArchSpec` refuses is invalid, with the spec's one-line reason. Nothing here names a toggle.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from roadmap.errors import UserError
from roadmap.spec import ArchSpec
from roadmap.steps import Step, get_step, steps

DESIGNS = ("path", "leave-one-out", "add-one-in", "factorial")
OPS = ("minus", "plus")
FRACTIONS = (1, 2)  # 1: the full factorial; 2: the half fraction of resolution k
MIN_RESOLUTION = 5  # a fraction must leave main effects and two-way interactions unaliased


@dataclass(frozen=True)
class Point:
    """One point of a design: a base step and the moves that make its spec."""

    track: str
    base: str
    moves: tuple[tuple[str, str], ...]  # (op, step), op in OPS, in table order
    spec: ArchSpec | None = field(repr=False)  # None: invalid
    reason: str = ""  # why invalid; "" when valid
    same_as_step: str | None = None  # the step whose spec this point's equals
    levels: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # factorial

    @property
    def name(self) -> str:
        """The point's stable name, made from what it changes."""
        return self.base + "".join(f"-{op}-{step}" for op, step in self.moves)

    @property
    def valid(self) -> bool:
        """Whether the spec builds."""
        return self.spec is not None

    @property
    def run_name(self) -> str:
        """The name its runs go by: the step it equals, else its own."""
        return self.same_as_step or self.name

    def changed(self) -> dict[str, tuple[Any, Any]]:
        """Fields that differ from the base, as {name: (base's, point's)}."""
        if self.spec is None:
            return {}
        return get_step(self.base, self.track).spec.diff(self.spec)

    def as_step(self) -> Step:
        """The step it equals, or a Step (index 0, off the path) named and specified by it."""
        if self.spec is None:
            raise UserError(f"design point {self.name!r} is invalid: {self.reason}")
        if self.same_as_step:
            return get_step(self.same_as_step, self.track)
        base = get_step(self.base, self.track)
        changes = MappingProxyType({k: v for k, (_, v) in self.changed().items()})
        return Step(self.track, 0, self.name, base.group, False, changes, self.base, self.spec)


def _parent_spec(step: Step) -> ArchSpec:
    """The spec a step's delta is applied to (its parent's)."""
    if step.parent is None:
        raise UserError(f"step {step.name!r} is the first of track {step.track!r}: no parent")
    return get_step(step.parent, step.track).spec


def is_applied(step: Step, spec: ArchSpec) -> bool:
    """Whether `spec` holds every value that `step` sets and no later on-path step sets again.

    (`patchify_stem` turns the stem norm off, `separate_downsampling` on again: ConvNeXt-T
    holds the patchify stem all the same.)
    """
    later = {k for s in on_path(step.track) if s.index > step.index for k in s.changes}
    own = {k: v for k, v in step.changes.items() if k not in later} or step.changes
    return all(getattr(spec, k) == v for k, v in own.items())


def _revert(spec: ArchSpec, step: Step) -> ArchSpec:
    """`spec` with the fields that still hold `step`'s values set to its parent's."""
    parent = _parent_spec(step)
    held = {k: getattr(parent, k) for k, v in step.changes.items() if getattr(spec, k) == v}
    return spec.replace(**held)


def _check_mover(step: Step) -> None:
    """A step that a design moves must change something."""
    if not step.changes:
        raise UserError(f"step {step.name!r} changes no spec field: nothing to apply or revert")


def make_point(track: str, base: str, moves: Sequence[tuple[str, str]]) -> Point:
    """The point `base` with `moves` ((op, step) pairs), checked and put in table order."""
    names = [s.name for s in steps(track)]
    get_step(base, track)
    for op, name in moves:
        if op not in OPS:
            raise UserError(f"design point move {op!r}: must be one of {OPS}")
        _check_mover(get_step(name, track))
    if len({name for _, name in moves}) != len(moves):
        raise UserError(f"design point {base!r}: a step moved twice in {list(moves)}")
    ordered = tuple(sorted(moves, key=lambda m: names.index(m[1])))
    spec = get_step(base, track).spec
    try:
        for _, name in reversed([m for m in ordered if m[0] == "minus"]):
            spec = _revert(spec, get_step(name, track))
        for _, name in [m for m in ordered if m[0] == "plus"]:
            spec = spec.replace(**get_step(name, track).changes)
    except ValueError as err:  # ArchSpec's one line naming the field
        return Point(track, base, ordered, None, str(err).splitlines()[0])
    same = next((s.name for s in steps(track) if s.spec == spec), None)
    return Point(track, base, ordered, spec, "", same)


def parse_point(name: str, track: str) -> Point:
    """The point called `name` (`<base>[-minus-<step>|-plus-<step>]...`)."""
    parts = name.split("-")
    if len(parts) % 2 == 0 or any(op not in OPS for op in parts[1::2]):
        raise UserError(
            f"design point {name!r}: expected <base>-minus-<step> or <base>-plus-<step>, ..."
        )
    return make_point(track, parts[0], list(zip(parts[1::2], parts[2::2], strict=True)))


def point_spec(name: str, track: str) -> ArchSpec:
    """The spec of a step or of a design point, by name; an unknown one is a UserError."""
    if "-" not in name:
        return get_step(name, track).spec
    point = parse_point(name, track)
    if point.spec is None:
        raise UserError(f"design point {name!r} is invalid: {point.reason}")
    return point.spec


def on_path(track: str) -> list[Step]:
    """The on-path steps of `track`, in order."""
    return [s for s in steps(track) if s.on_path]


def endpoint(track: str) -> str:
    """The last on-path step of `track`."""
    return on_path(track)[-1].name


def _leave_one_out(track: str, base: str) -> list[Point]:
    """The base minus each on-path step after the first that the base holds."""
    spec = get_step(base, track).spec
    movers = [s for s in on_path(track)[1:] if s.changes and is_applied(s, spec)]
    return [make_point(track, base, [("minus", s.name)]) for s in movers]


def _add_one_in(track: str, base: str) -> list[Point]:
    """The base plus each later on-path step that it does not hold."""
    names = [s.name for s in steps(track)]
    spec = get_step(base, track).spec
    later = [s for s in on_path(track) if names.index(s.name) > names.index(base)]
    fresh = [s for s in later if s.changes and not is_applied(s, spec)]
    return [make_point(track, base, [("plus", s.name)]) for s in fresh]


def _factorial(track: str, base: str, factors: Sequence[str], fraction: int) -> list[Point]:
    """Every combination of the factors' levels (+1 applied, -1 reverted) at the base."""
    if len(factors) < 2:
        raise UserError("--factors: a factorial needs two or more steps, e.g. --factors a,b")
    chosen = sorted((get_step(f, track) for f in factors), key=lambda s: s.index)
    if len({s.name for s in chosen}) != len(chosen):
        raise UserError(f"--factors {','.join(factors)}: a step named twice")
    for step in chosen:
        _check_mover(step)
    _check_fraction(fraction, len(chosen))
    spec = get_step(base, track).spec
    points = []
    for levels in itertools.product((-1, 1), repeat=len(chosen)):
        if fraction == 2 and math.prod(levels) != 1:
            continue
        moves = []
        for step, level in zip(chosen, levels, strict=True):
            held = is_applied(step, spec)
            if level == 1 and not held:
                moves.append(("plus", step.name))
            elif level == -1 and held:
                moves.append(("minus", step.name))
        point = make_point(track, base, moves)
        coded = MappingProxyType({s.name: lv for s, lv in zip(chosen, levels, strict=True)})
        points.append(replace(point, levels=coded))
    return points


def _check_fraction(fraction: int, k: int) -> None:
    """The fraction must be one of FRACTIONS; a half fraction needs resolution V or more."""
    if fraction not in FRACTIONS:
        raise UserError(f"--fraction must be one of {FRACTIONS} (1/fraction of the runs)")
    if fraction == 2 and k < MIN_RESOLUTION:
        raise UserError(
            f"--fraction 2 with {k} factors has resolution {k}: two-way interactions would be "
            f"aliased; use {MIN_RESOLUTION} or more factors, or the full factorial"
        )


def design_points(
    name: str,
    track: str,
    factors: Sequence[str] = (),
    base: str | None = None,
    fraction: int = 1,
) -> list[Point]:
    """The points of design `name` on `track` (see the module doc); bad options raise."""
    if name not in DESIGNS:
        raise UserError(f"unknown design {name!r}; designs are: {', '.join(DESIGNS)}")
    if factors and name != "factorial":
        raise UserError(f"--factors is for the factorial design, not {name!r}")
    if name == "path":
        if base:
            raise UserError("--base is not for the path design")
        return [make_point(track, s.name, []) for s in steps(track)]
    if name == "add-one-in":
        return _add_one_in(track, get_step(base or steps(track)[0].name, track).name)
    base = get_step(base or endpoint(track), track).name
    if name == "leave-one-out":
        return _leave_one_out(track, base)
    return _factorial(track, base, factors, fraction)


def design_base(name: str, track: str, base: str | None = None) -> str | None:
    """The step a design's points compare with (None for the path)."""
    if name == "path":
        return None
    if name == "add-one-in":
        return base or steps(track)[0].name
    return base or endpoint(track)


def planned_steps(
    name: str,
    track: str,
    factors: Sequence[str] = (),
    base: str | None = None,
    fraction: int = 1,
) -> tuple[list[Step], list[Point]]:
    """What a sweep of the design trains, and the invalid points (skipped).

    The base comes first; every valid point follows as a Step (`Point.as_step`), each run once.
    """
    points = design_points(name, track, factors, base, fraction)
    start = design_base(name, track, base)
    out = [get_step(start, track)] if start else []
    for point in points:
        if point.valid and point.run_name not in {s.name for s in out}:
            out.append(point.as_step())
    return out, [p for p in points if not p.valid]
