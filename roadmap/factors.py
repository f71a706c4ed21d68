"""Design factors as spec-field changes at a base: a step's delta, or related steps as levels.

A step's delta is computed from the specs (`step_delta`: its parent's spec against its own), so
a step that a later step partly overwrites is handled. At a base spec a step is **held** where
the base still has one of its values; its factor is then the part it holds (`fields`), with
levels -1 (the parent's values: the `minus` move) and +1 (the base's); the fields a later step
set again are the factor's `overwritten` ones and stay as the base has them. A step the base does
not hold is a factor over its whole delta: -1 the base's values, +1 the step's (the `plus` move).
Steps with the same parent and the same changed fields (kernel 5/7/9/11) are also one
**multi-level** factor named by those fields (`kernel_size`: levels 3, 5, 7, 9, 11), each level
a step's values or the parent's. The factors of one design touch disjoint fields
(`check_disjoint`). docs/designs.md says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from roadmap.errors import UserError
from roadmap.spec import ArchSpec
from roadmap.steps import Step, get_step, step_names, steps

Move = tuple[str, str]  # (op, step), op "minus" or "plus"


@dataclass(frozen=True)
class Level:
    """One level of a factor: its code, the field values it sets, the move that makes it."""

    code: int | str  # -1 / +1 for a two-level factor; the value's text for a multi-level one
    values: tuple[tuple[str, Any], ...]  # (field, value), in the factor's field order
    move: Move | None  # None: the base's own values

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in self.values}
        return {"code": self.code, "values": values, "move": list(self.move or []) or None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Level:
        """Inverse of `to_dict`."""
        items = data["values"].items()
        values = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in items)
        return cls(data["code"], values, tuple(data["move"]) if data["move"] else None)


@dataclass(frozen=True)
class Factor:
    """A set of spec-field changes at a base, with its levels."""

    name: str  # a step, or the fields of a multi-level factor joined by "+"
    fields: tuple[str, ...]  # the fields its levels set
    levels: tuple[Level, ...]  # two-level: (-1, +1); multi-level: the parent's, then each step's
    overwritten: tuple[str, ...] = ()  # fields the step sets that a later step set again

    @property
    def two_level(self) -> bool:
        """Whether the levels are coded -1 / +1."""
        return [lv.code for lv in self.levels] == [-1, 1]

    def level(self, code: int | str) -> Level:
        """The level coded `code`."""
        for lv in self.levels:
            if lv.code == code:
                return lv
        raise UserError(f"factor {self.name!r} has no level {code!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (`from_dict` reads it back)."""
        return {
            "name": self.name,
            "fields": list(self.fields),
            "levels": [lv.to_dict() for lv in self.levels],
            "overwritten": list(self.overwritten),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Factor:
        """Inverse of `to_dict`."""
        levels = tuple(Level.from_dict(lv) for lv in data["levels"])
        return cls(data["name"], tuple(data["fields"]), levels, tuple(data["overwritten"]))


def step_delta(step: Step) -> dict[str, tuple[Any, Any]]:
    """The fields `step` changes against its parent, as {field: (parent's, step's)}."""
    if step.parent is None:
        return {}
    return get_step(step.parent, step.track).spec.diff(step.spec)


def held_fields(step: Step, spec: ArchSpec) -> list[str]:
    """The fields of the step's delta where `spec` still has the step's value."""
    return [k for k, (_, new) in step_delta(step).items() if getattr(spec, k) == new]


def _values(spec: ArchSpec, names: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    return tuple((k, getattr(spec, k)) for k in names)


def step_factor(step: Step, base: ArchSpec) -> Factor:
    """The two-level factor of `step` at the base spec (see the module doc)."""
    delta = step_delta(step)
    if not delta:
        raise UserError(f"step {step.name!r} changes no spec field: nothing to apply or revert")
    held = [k for k in delta if getattr(base, k) == delta[k][1]]
    if held:
        off = Level(-1, tuple((k, delta[k][0]) for k in held), ("minus", step.name))
        over = tuple(k for k in delta if k not in held)
        return Factor(step.name, tuple(held), (off, Level(1, _values(base, held), None)), over)
    names = tuple(delta)
    on = Level(1, tuple((k, delta[k][1]) for k in names), ("plus", step.name))
    return Factor(step.name, names, (Level(-1, _values(base, names), None), on))


def related_groups(track: str) -> dict[str, list[Step]]:
    """Multi-level factors: name -> steps changing the same fields from one parent.

    A step joins a group when its parent is the group's parent or one of its steps (side steps
    after an on-path one start from it: kernel 9 from kernel 7), so each level differs from the
    group's parent in those fields alone.
    """
    groups: dict[tuple[str, ...], list[list[Step]]] = {}
    for step in steps(track):
        key = tuple(sorted(step_delta(step)))
        if not key:
            continue
        for group in groups.setdefault(key, []):
            if step.parent in {group[0].parent} | {s.name for s in group}:
                group.append(step)
                break
        else:
            groups[key].append([step])
    out = {}
    for key, found in groups.items():
        for group in (g for g in found if len(g) > 1):
            out.setdefault("+".join(key), group)  # one group per field set: the first
    return out


def _code(values: tuple[tuple[str, Any], ...]) -> str:
    return "/".join(str(v) for _, v in values)


def group_factor(name: str, track: str, base: ArchSpec) -> Factor:
    """The multi-level factor `name` (see `related_groups`) at the base spec."""
    group = related_groups(track)[name]
    names = tuple(step_delta(group[0]))
    parent = get_step(group[0].parent, track).spec  # type: ignore[arg-type]
    held = [s for s in group if held_fields(s, base)]
    now = _values(base, names)
    levels = []
    candidates = [(_values(parent, names), None)] + [(_values(s.spec, names), s) for s in group]
    for values, step in candidates:
        if values == now:
            move = None
        elif step is not None:
            move = ("plus", step.name)
        elif held:
            move = ("minus", held[0].name)
        else:
            raise UserError(f"factor {name!r}: the base holds {_code(now)}, from none of its steps")
        if all(lv.values != values for lv in levels):
            levels.append(Level(_code(values), values, move))
    return Factor(name, names, tuple(levels))


def make_factor(name: str, track: str, base: ArchSpec) -> Factor:
    """A step's factor, or a multi-level one by its fields' name; unknown names suggest some."""
    if name in related_groups(track):
        return group_factor(name, track, base)
    if name in step_names(track):
        return step_factor(get_step(name, track), base)
    get_step(name, track)  # raises, naming the nearest step
    raise AssertionError("unreachable")


def check_disjoint(factors: Sequence[Factor], track: str) -> None:
    """Raise one line naming the field two factors share, and the multi-level factor to use."""
    for i, a in enumerate(factors):
        for b in factors[i + 1 :]:
            shared = [k for k in a.fields if k in b.fields]
            if shared:
                hint = ""
                for name, group in related_groups(track).items():
                    if shared[0] in name.split("+"):
                        parent = get_step(group[0].parent, track).spec  # type: ignore[arg-type]
                        specs = [parent] + [s.spec for s in group]
                        levels = ", ".join(_code(_values(x, [shared[0]])) for x in specs)
                        hint = f"; use the factor {name!r} (levels {levels})"
                raise UserError(
                    f"--factors: {a.name!r} and {b.name!r} both set field {shared[0]!r}: "
                    f"a design's factors must touch disjoint fields{hint}"
                )
