"""Two-level fractional factorials 2^(k-p) from pyDOE3, with their resolution and aliasing.

The generators are pyDOE3's minimum-aberration ones (`fracfact_opt`; for p = 1 the single word
of all k factors, which is that); the rows are `fracfact` of them and the alias structure is
`fracfact_aliasing`'s, with the letters a, b, ... replaced by the factors' names. The resolution
is the length of the shortest word of the defining relation, computed here from the generators.
pyDOE3 is imported when a fraction is made, not with the step table.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from roadmap.errors import UserError

MIN_RESOLUTION = 4  # IV: main effects are aliased with no two-way interaction
MAX_FACTORS = 12  # pyDOE3's search for generators grows fast beyond this


@dataclass(frozen=True)
class Fraction:
    """A 2^(k-p) design: its generators (pyDOE3's words) and what follows from them."""

    k: int
    p: int
    generators: tuple[str, ...]  # one word per column, e.g. ("a", "b", "c", "abc")

    @property
    def words(self) -> list[str]:
        """The defining relation I = ...: every product of the generated columns' words."""
        base = [g + string.ascii_lowercase[j] for j, g in enumerate(self.generators) if len(g) > 1]
        out = set()
        for r in range(1, len(base) + 1):
            for combo in itertools.combinations(base, r):
                word: set[str] = set()
                for w in combo:
                    word ^= set(w)
                out.add("".join(sorted(word)))
        return sorted(out, key=lambda w: (len(w), w))

    @property
    def resolution(self) -> int:
        """The length of the shortest word of the defining relation (k + 1 when p = 0)."""
        return len(self.words[0]) if self.words else self.k + 1

    def rows(self) -> list[tuple[int, ...]]:
        """The 2^(k-p) runs, each a tuple of -1 / +1 per factor."""
        from pyDOE3 import fracfact

        return [tuple(int(v) for v in row) for row in fracfact(" ".join(self.generators))]

    def aliases(self, names: Sequence[str]) -> list[str]:
        """pyDOE3's alias chains of main effects and two-way interactions, in factor names."""
        if self.p == 0:
            return []
        import numpy as np
        from pyDOE3 import fracfact_aliasing

        chains, _ = fracfact_aliasing(np.array(self.rows(), dtype=float))
        letter = dict(zip(string.ascii_lowercase, names, strict=False))
        out = []
        for chain in chains:
            terms = chain.split(" = ")
            if len(terms) > 1 and len(terms[0]) <= 2:
                out.append(" = ".join("*".join(letter[c] for c in t) for t in terms))
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"k": self.k, "p": self.p, "generators": list(self.generators)}

    @classmethod
    def from_dict(cls, data: dict) -> Fraction:
        """Inverse of `to_dict`."""
        return cls(int(data["k"]), int(data["p"]), tuple(data["generators"]))


@cache
def make_fraction(k: int, p: int) -> Fraction:
    """The 2^(k-p) design; a resolution under IV is one line naming it."""
    if not 0 <= p < k or k > MAX_FACTORS:
        raise UserError(f"--fraction: 2^({k}-{p}) is not a design (0 <= p < k <= {MAX_FACTORS})")
    letters = string.ascii_lowercase[:k]
    if p == 0:
        gens = tuple(letters)
    elif p == 1:
        gens = (*letters[: k - 1], letters[: k - 1])
    else:
        from pyDOE3 import fracfact_opt

        gens = tuple(fracfact_opt(k, p)[0].split())
    fraction = Fraction(k, p, gens)
    if fraction.resolution < MIN_RESOLUTION:
        raise UserError(
            f"--fraction {2**p} with {k} factors (2^({k}-{p})) has resolution "
            f"{fraction.resolution}: main effects would be aliased with two-way interactions; "
            f"use more factors or a smaller fraction (resolution {MIN_RESOLUTION} or more)"
        )
    return fraction
