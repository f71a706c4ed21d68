"""Dependencies between the toggles, declared once beside the step table, each with its source.

A constraint is a predicate on an `ArchSpec` (its fields, never a step's name), a one-line
message naming the fields, and where it comes from. Every step of the table satisfies every
constraint (tests/test_constraints.py); a design point that violates one is invalid with that
message (`roadmap.designs`), so a design drops it and says what that costs. docs/designs.md
explains each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from roadmap.spec import ArchSpec

# The authors' roadmap code on GitHub (the anonymous release of the paper's ResNet -> ConvNeXt
# models), at the commit read.
_AUTHORS = "anonymous20222022/convnext @ 03c78ad, models/modeling_resnet.py"


@dataclass(frozen=True)
class Constraint:
    """A dependency between spec fields: `holds(spec)` or the point is invalid with `message`."""

    name: str
    fields: tuple[str, ...]  # the spec fields it reads
    holds: Callable[[ArchSpec], bool]
    message: str  # why a spec that breaks it is invalid, one line naming the fields
    source: str  # where the dependency is stated


CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint(
        "fewer_norms_needs_inverted_bottleneck",
        ("fewer_norms", "inverted_bottleneck"),
        lambda s: not s.fewer_norms or s.inverted_bottleneck,
        "fewer_norms=True needs inverted_bottleneck=True (one norm per block exists only in "
        "the inverted bottleneck)",
        f"{_AUTHORS} lines 95-99 (Bottleneck: `assert not reorg_norm`) and 342-343 "
        "(`if reorg_norm: assert block == InvertedBottleneck`)",
    ),
    Constraint(
        "fewer_norms_needs_dwconv_first",
        ("fewer_norms", "dwconv_first"),
        lambda s: not s.fewer_norms or s.dwconv_first,
        "fewer_norms=True needs dwconv_first=True (else the block's single norm would follow "
        "the 1x1 expansion)",
        f"{_AUTHORS} lines 204-206 (InvertedBottleneck without conv_first: "
        "`assert not self.reorg_norm`)",
    ),
)


def violations(spec: ArchSpec) -> list[Constraint]:
    """The constraints `spec` breaks, in declaration order."""
    return [c for c in CONSTRAINTS if not c.holds(spec)]


def invalid_reason(spec: ArchSpec) -> str:
    """`constraint <name>: <message>` for the first constraint broken, or "" when none is."""
    broken = violations(spec)
    return f"constraint {broken[0].name}: {broken[0].message}" if broken else ""
