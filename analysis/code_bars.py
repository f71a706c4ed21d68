"""Bars whose runs trained with different model or training code (docs/one-bar.md).

Each done run's result.json names the code it trained with (`code`: a digest and one per file,
experiments/runs/code_digest.py); a bar whose runs differ in it is named, with the files.
`roadmap staircase --strict-code` refuses to draw such a bar.
"""

from __future__ import annotations

import pandas as pd

from analysis.collect import Selection
from analysis.paper import reference_name
from experiments.runs.code_digest import mixed_code


def bar_code(runs: pd.DataFrame) -> str | None:
    """How the runs of one bar differ in their code (`mixed_code`), or None."""
    codes = list(runs["code"]) if "code" in runs else [None] * len(runs)
    named = zip(runs["run"], codes, strict=True)
    return mixed_code({str(n): c if isinstance(c, dict) else None for n, c in named})


def mixed_code_bars(sel: Selection) -> list[str]:
    """One line per bar of `sel` (steps, then the reference row) of mixed code."""
    bars = [(str(step), runs) for step, runs in sel.runs.groupby("step", sort=False)]
    if len(sel.reference):
        bars.append((f"{reference_name(sel.track) or 'reference'} (reference)", sel.reference))
    lines = []
    for name, runs in bars:
        found = bar_code(runs)
        if found:
            lines.append(f"bar {name} pools runs of different code: {found}")
    return lines
