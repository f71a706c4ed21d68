"""Designs declared before they run: `<root>/<track>/designs/<name>.design.json`.

`roadmap sweep --design` writes the declaration before it submits anything: the design (its
factors, base, fraction and points), the test family (which terms are tested), alpha, the
equivalence margin, the seeds, when it was declared and a digest of that content. Declaring the
same design again is a no-op; another design under the same name is refused. A sweep that later
runs a declared point at a seed the declaration does not hold appends an amendment (what, when):
`roadmap effects` then labels the design's terms exploratory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from experiments.runs import records
from experiments.runs.files import atomic_write_json, read_json
from roadmap.designs import DESIGNS, Design, design_base, endpoint
from roadmap.errors import UserError
from roadmap.steps import steps

FOLDER = "designs"
SUFFIX = ".design.json"  # never a run record's name (runs are found by their config.json)
# What a declaration fixes; the seeds may grow later (an amendment), the rest may not.
FIXED = ("design", "family", "alpha", "margin")


def family(design: Design, interactions: bool) -> list[str]:
    """The terms the design tests, named as `roadmap effects` names them."""
    base = design_base(design.name, design.track, design.base)
    if design.name == DESIGNS[3]:
        if interactions and design.fraction > 1:
            raise UserError(
                "--interactions: the two-way interactions of a 2^(k-p) fraction are aliased "
                "in pairs; declare its main effects only (or run the full factorial)"
            )
        at = "" if base == endpoint(design.track) else f"@{base}"
        fs = design.factors
        out = [f"main{at}:{f}" for f in fs]
        if interactions:
            out += [f"interaction{at}:{a}*{b}" for i, a in enumerate(fs) for b in fs[i + 1 :]]
        return out
    if interactions:
        raise UserError("--interactions is for a factorial design")
    if design.name == DESIGNS[0]:
        return [f"path:{s.name}" for s in steps(design.track) if s.parent is not None]
    kind, default = (
        ("end", endpoint(design.track))
        if design.name == DESIGNS[1]
        else ("start", steps(design.track)[0].name)
    )
    label = kind if base == default else f"{kind}@{base}"
    return [f"{label}:{step}" for p in design.points() if p.valid for _, step in p.moves]


def declaration(
    design: Design, seeds: Sequence[int], alpha: float, margin: float, interactions: bool
) -> dict[str, Any]:
    """The content a sweep declares (no time or digest yet)."""
    return {
        "design": design.to_dict(),
        "family": family(design, interactions),
        "alpha": alpha,
        "margin": margin,
        "seeds": sorted(seeds),
    }


def digest(content: dict[str, Any]) -> str:
    """sha256 of the declared content (design, family, alpha, margin, seeds) as sorted JSON."""
    keys = (*FIXED, "seeds")
    text = json.dumps({k: content[k] for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def path_of(root: Path, track: str, name: str) -> Path:
    """Where the declaration `name` of `track` lives."""
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"--declare {name!r}: a design's name is a plain file name")
    return Path(root) / track / FOLDER / f"{name}{SUFFIX}"


def declare(root: Path, track: str, name: str, content: dict[str, Any]) -> str:
    """Write the declaration unless the same one is there; another one is refused. Says what."""
    path = path_of(root, track, name)
    old = read_json(path) if path.is_file() else None
    if old is None:
        atomic_write_json(
            path,
            {
                "name": name,
                **content,
                "declared": records.now(),
                "digest": digest(content),
                "amendments": [],
            },
        )
        return f"declared design {name!r} in {path} before any run"
    if any(old[k] != content[k] for k in FIXED):
        first = next(k for k in FIXED if old[k] != content[k])
        raise UserError(
            f"design {name!r} is declared in {path} with another {first}: declare this one "
            "under another name (--declare NAME)"
        )
    return f"design {name!r} already declared in {path} ({old['declared']})"


def amend(root: Path, track: str, runs: Iterable[tuple[str, int]]) -> list[str]:
    """Record, in each declared design of `track`, the (point, seed) runs beyond its seeds."""
    runs = list(runs)
    notes = []
    for path, old in declared(root, track):
        names = {p["run_name"] for p in old["design"]["points"]}
        extra = sorted({(n, s) for n, s in runs if n in names and s not in old["seeds"]})
        if not extra:
            continue
        what = "seeds extended after declaration: " + ", ".join(f"{n} seed {s}" for n, s in extra)
        old["amendments"].append({"what": what, "when": records.now()})
        atomic_write_json(path, old)
        notes.append(f"design {old['name']!r}: amended ({what})")
    return notes


def declared(root: Path, track: str) -> list[tuple[Path, dict[str, Any]]]:
    """The declarations of `track` under `root`, by name."""
    folder = Path(root) / track / FOLDER
    paths = sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []
    return [(p, read_json(p)) for p in paths]
