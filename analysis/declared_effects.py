"""Declared designs' terms with Holm over each declared family; every other term is exploratory.

A declaration (`experiments.runs.declared`, written by `roadmap sweep --design` before it ran)
fixes a design's points, the terms it tests, alpha and seeds. Its terms are computed from the
runs the staircase's selection keeps (`analysis.effects`), and their p are Holm-adjusted over
that family alone (`p_holm`, statsmodels). A declared fraction's runs are left out of the
exploratory search, so no other factorial is made of them. A design whose points have runs at
seeds it did not declare (or whose declaration was amended) has its terms labelled exploratory.
Nothing here names a toggle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from analysis.effects import (
    COLUMNS,
    EXPLORATORY,
    Values,
    factorial_effects,
    step_effects,
    track_effects,
)
from analysis.pooled import holm
from roadmap.designs import DESIGNS, Design
from roadmap.fractions import make_fraction

EXTENDED = "seeds extended after declaration: exploratory"


def design_terms(design: Design, family: Sequence[str], values: Values) -> list[dict]:
    """The rows of a declared design's family that its runs allow."""
    if design.name == DESIGNS[3]:
        base = design.to_dict()["base"]
        order = 2 if any(t.startswith("interaction") for t in family) else 1
        args = (design.track, base, design.factors, design.fraction, values)
        rows = factorial_effects(*args, order=order) if _complete(design, values) else []
    else:
        rows = step_effects(design.track, values)
    return [r for r in rows if r["term"] in family]


def _complete(design: Design, values: Values) -> bool:
    """Whether every valid point of the design has runs."""
    return all(values.get(p.run_name) for p in design.points() if p.valid)


def _extended(decl: dict[str, Any], values: Values) -> list[str]:
    """`point seed N` for each run of the design at a seed it did not declare."""
    names = {p["run_name"] for p in decl["design"]["points"] if p["valid"]}
    seeds = set(decl["seeds"])
    return sorted(f"{n} seed {s}" for n in names for s in values.get(n, {}) if s not in seeds)


def aliases(design: Design) -> str:
    """`2^(k-p) of resolution R; aliases: ...` for a declared fraction ("" otherwise)."""
    if design.name != DESIGNS[3] or design.fraction == 1:
        return ""
    fraction = make_fraction(len(design.factors), int(math.log2(design.fraction)))
    chains = "; ".join(fraction.aliases(design.factors))
    return f"2^({fraction.k}-{fraction.p}) of resolution {fraction.resolution}; aliases: {chains}"


def one_design(name: str, decl: dict[str, Any], values: Values) -> tuple[list[dict], list[str]]:
    """A declared design's rows (Holm over its family, or flagged) and what to say about it."""
    design = Design.from_dict(decl["design"])
    family = list(decl["family"])
    rows = design_terms(design, family, values)
    extended = _extended(decl, values)
    flagged = bool(extended or decl.get("amendments"))
    adjusted = holm([r["p"] for r in rows]) if rows and not flagged else [math.nan] * len(rows)
    for row, p in zip(rows, adjusted, strict=True):
        row["family"] = EXPLORATORY if flagged else name
        row["note"] = EXTENDED if flagged else f"declared, Holm over {len(family)}"
        row["p_holm"] = p
    head = f"declared design {name!r} ({decl['declared']}): {len(rows)} of {len(family)} terms"
    notes = [head + f", Holm over the family at alpha {decl['alpha']}"]
    if len(rows) < len(family):
        missing = sorted(set(family) - {r["term"] for r in rows})
        notes.append(f"  no runs (or an incomplete design) for: {', '.join(missing)}")
    if aliases(design):
        notes.append(f"  {aliases(design)}")
    if flagged:
        what = extended or [a["what"] for a in decl["amendments"]]
        notes.append(f"  {EXTENDED} ({', '.join(what)})")
    return rows, notes


def declared_effects(
    track: str, values: Values, declarations: Sequence[tuple[str, dict[str, Any]]]
) -> tuple[pd.DataFrame, list[str]]:
    """Every declared design's terms, then the exploratory ones (`COLUMNS` order), and notes."""
    rows, notes, fraction_runs = [], [], set()
    for name, decl in declarations:
        found, said = one_design(name, decl, values)
        rows += found
        notes += said
        if decl["design"]["fraction"] > 1:  # its runs make no exploratory factorial
            points = decl["design"]["points"]
            fraction_runs |= {p["run_name"] for p in points if "-" in p["run_name"]}
    taken = {r["term"] for r in rows}
    rest = track_effects(track, {k: v for k, v in values.items() if k not in fraction_runs})
    rest = rest[~rest["term"].isin(taken)]
    if not rows:
        return rest.reset_index(drop=True), notes
    frame = pd.concat([pd.DataFrame(rows, columns=list(COLUMNS)), rest], ignore_index=True)
    return frame, notes


def report(frame: pd.DataFrame, notes: Sequence[str], excluded: pd.DataFrame) -> list[str]:
    """What `roadmap effects` prints: notes, each declared term, duplicates and which was drawn."""
    out = list(notes)
    for r in frame[frame["family"] != EXPLORATORY].itertuples():
        out.append(
            f"  {r.term}: {r.effect:+.3f} (p {r.p:.3g}, Holm {r.p_holm:.3g}; "
            f"d_gflops {r.d_gflops:+.3f}, d_params {r.d_params:+,.0f})"
        )
    exploratory = int((frame["family"] == EXPLORATORY).sum())
    if exploratory:
        out.append(f"{exploratory} exploratory term(s): no Holm family claim (family column)")
    dup = excluded[excluded["reason"].astype(str).str.startswith("duplicate seed")]
    out += [f"duplicate (step, seed): {r.run} left out: {r.reason}" for r in dup.itertuples()]
    return out
