"""Designs beyond the path: named sets of points, each a spec derived from the track's steps.

A point is a base step with some steps' deltas applied (`plus`) or reverted to their parent's
values (`minus`); its name says so: `<base>-minus-<step>`, `<base>-plus-<step>`, and for more
than one move `<base>-minus-a-plus-b` (moves in table order). Step names hold no `-`, so a name
parses back to its spec (`point_spec`): a run's config needs nothing but the name.

- `path`: the track's steps, as `roadmap sweep` has always run them;
- `leave-one-out`: the base (default: the endpoint) minus one applied on-path step, for every
  on-path step after the first;
- `add-one-in`: the base (default: the first step) plus one later on-path step;
- `factorial`: every combination of the `factors`' levels at the base (default: the endpoint); a
  factor is a step's field changes at the base, or related steps as one multi-level factor
  (`roadmap.factors`), and the factors touch disjoint fields. `fraction=2**p` keeps pyDOE3's
  2^(k-p) fraction of two-level factors, of resolution IV or more (`roadmap.fractions`).

Reverting touches only the fields that still hold the step's values at the base (a later step
may have set one again: reverting the earlier one leaves it; the step is applied at a spec that
holds any of its values), applying sets the step's values. Reverts go in reverse table order,
then applies in table order. A point whose spec equals a step's is that step (`same_as_step`:
its runs are that step's runs); a point whose spec `ArchSpec` refuses, or that breaks a
dependency of `roadmap.constraints`, is invalid with the one-line reason. Nothing here names a
toggle.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from roadmap.constraints import invalid_reason
from roadmap.errors import UserError
from roadmap.factors import Factor, check_disjoint, held_fields, make_factor
from roadmap.fractions import make_fraction
from roadmap.spec import ArchSpec
from roadmap.steps import Step, get_step, steps

DESIGNS = ("path", "leave-one-out", "add-one-in", "factorial")
OPS = ("minus", "plus")
FRACTIONS = (1, 2, 4, 8, 16)  # 1/fraction of the factorial's runs: 2^(k-p) with fraction 2^p


@dataclass(frozen=True)
class Point:
    """One point of a design: a base step and the moves that make its spec."""

    track: str
    base: str
    moves: tuple[tuple[str, str], ...]  # (op, step), op in OPS, in table order
    spec: ArchSpec | None = field(repr=False)  # None: invalid
    reason: str = ""  # why invalid; "" when valid
    same_as_step: str | None = None  # the step whose spec this point's equals
    # factorial: each factor's level code (-1/+1, or a multi-level factor's value)
    levels: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

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
    """Whether `spec` still holds any value of the step's delta (then reverting it is a move)."""
    return bool(held_fields(step, spec))


def _revert(spec: ArchSpec, step: Step, base: ArchSpec) -> ArchSpec:
    """`spec` with the fields where the base still holds `step`'s values set to its parent's."""
    parent = _parent_spec(step)
    return spec.replace(**{k: getattr(parent, k) for k in held_fields(step, base)})


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
    spec = start = get_step(base, track).spec
    try:
        for _, name in reversed([m for m in ordered if m[0] == "minus"]):
            spec = _revert(spec, get_step(name, track), start)
        for _, name in [m for m in ordered if m[0] == "plus"]:
            spec = spec.replace(**get_step(name, track).changes)
    except ValueError as err:  # ArchSpec's one line naming the field
        return Point(track, base, ordered, None, str(err).splitlines()[0])
    if invalid_reason(spec):
        return Point(track, base, ordered, None, invalid_reason(spec))
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
    """Leave-one-out with a point for every on-path step up to the base (none silently gone).

    A step of which the base holds nothing (every field set again later) is an invalid point.
    """
    names = [s.name for s in steps(track)]
    spec, out = get_step(base, track).spec, []
    for step in on_path(track)[1:]:
        if names.index(step.name) > names.index(base):
            break
        if is_applied(step, spec):
            out.append(make_point(track, base, [("minus", step.name)]))
        else:
            why = f"{base} holds none of its values (a later step set every field it sets)"
            out.append(Point(track, base, (("minus", step.name),), None, why))
    return out


def _add_one_in(track: str, base: str) -> list[Point]:
    """The base plus each later on-path step that it does not hold."""
    names = [s.name for s in steps(track)]
    spec = get_step(base, track).spec
    later = [s for s in on_path(track) if names.index(s.name) > names.index(base)]
    fresh = [s for s in later if s.changes and not is_applied(s, spec)]
    return [make_point(track, base, [("plus", s.name)]) for s in fresh]


def _factorial(track: str, base: str, names: Sequence[str], fraction: int) -> list[Point]:
    """Every combination of the factors' levels at the base (or pyDOE3's 2^(k-p) fraction)."""
    if len(names) < 2:
        raise UserError("--factors: a factorial needs two or more steps, e.g. --factors a,b")
    if len(set(names)) != len(names):
        raise UserError(f"--factors {','.join(names)}: a factor named twice")
    factors = design_factors(track, base, names)
    if fraction not in FRACTIONS:
        raise UserError(f"--fraction must be one of {FRACTIONS} (1/fraction of the runs)")
    if fraction == 1:
        combos = list(itertools.product(*[[lv.code for lv in f.levels] for f in factors]))
    else:
        multi = [f.name for f in factors if not f.two_level]
        if multi:
            raise UserError(f"--fraction: factor {multi[0]!r} has more than two levels")
        combos = make_fraction(len(factors), int(math.log2(fraction))).rows()
    points = []
    for combo in combos:
        chosen = [f.level(c) for f, c in zip(factors, combo, strict=True)]
        point = make_point(track, base, [lv.move for lv in chosen if lv.move])
        coded = MappingProxyType({f.name: c for f, c in zip(factors, combo, strict=True)})
        points.append(replace(point, levels=coded))
    return points


def design_factors(track: str, base: str, names: Sequence[str]) -> list[Factor]:
    """The factors called `names` at `base`, checked to touch disjoint fields."""
    spec = get_step(base, track).spec
    factors = [make_factor(n, track, spec) for n in names]
    check_disjoint(factors, track)
    return factors


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


@dataclass(frozen=True)
class Design:
    """A design by its options; `to_dict` adds what they resolve to, for a run root's record."""

    name: str
    track: str
    factors: tuple[str, ...] = ()
    base: str | None = None  # None: the design's default
    fraction: int = 1

    def points(self) -> list[Point]:
        """The design's points (`design_points`)."""
        return design_points(self.name, self.track, self.factors, self.base, self.fraction)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the options with the base resolved, the factors, fraction and points."""
        base = design_base(self.name, self.track, self.base)
        factorial = self.name == DESIGNS[3]
        k, p = len(self.factors), int(math.log2(self.fraction))
        return {
            "name": self.name,
            "track": self.track,
            "factors": list(self.factors),
            "base": base,
            "fraction": self.fraction,
            "resolved_factors": (
                [f.to_dict() for f in design_factors(self.track, base, self.factors)]
                if factorial and base
                else []
            ),
            "generators": make_fraction(k, p).to_dict() if factorial and p else None,
            "points": [
                {
                    "name": q.name,
                    "run_name": q.run_name,
                    "valid": q.valid,
                    "reason": q.reason,
                    "levels": dict(q.levels),
                }
                for q in self.points()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Design:
        """Inverse of `to_dict`; refused when the step table no longer gives the same points."""
        design = cls(
            data["name"], data["track"], tuple(data["factors"]), data["base"], data["fraction"]
        )
        now = [q["name"] for q in design.to_dict()["points"]]
        then = [q["name"] for q in data["points"]]
        if now != then:
            first = next((a, b) for a, b in itertools.zip_longest(then, now) if a != b)
            raise UserError(
                f"design {design.name!r} on {design.track}: its points changed since it was "
                f"written (the step table changed): {first[0]!r} is now {first[1]!r}"
            )
        return design


def lost_points(points: Sequence[Point]) -> str:
    """What the invalid points cost a design, in one line ("" when every point is valid)."""
    bad = [p for p in points if not p.valid]
    if not bad:
        return ""
    head = f"{len(bad)} of {len(points)} points are invalid and dropped"
    if any(p.levels for p in points):
        return (
            f"{head}: the factorial loses {len(bad)} cell(s), so it is no longer orthogonal: "
            "its effects are estimated from the cells left and may be aliased with one another"
        )
    moved = ", ".join(s for p in bad for _, s in p.moves)
    return f"{head}: no term for {moved}"


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
