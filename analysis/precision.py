"""The precision a bar trained in, from its runs' records, never from today's preset.

A run's precision is what it computed in (`experiments.recipe.compute_dtype`): its recorded
recipe's `amp_dtype` on CUDA, float32 on the CPU (its result's `device`); a bar's is its runs'
one precision, `mixed` if they differ, "" where no run records one (docs/statistics.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from experiments.recipe import compute_dtype

# The short names tables and figures show, by `recipe.amp_dtype`.
LABELS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
MIXED = "mixed"  # a bar (or a figure) whose runs trained in more than one precision
AMP_FIELD = "amp_dtype"  # the recorded recipe's field, read from each run's `recipe_json`


def run_precision(amp_dtype: Any, device: Any) -> str:
    """One run's precision label (`fp32`, `bf16`, `fp16`); "" if its recipe records none.

    A run with a recorded device that is not CUDA computed in float32 whatever its recipe says.
    """
    kind = device.split(":")[0] if isinstance(device, str) and device else "cuda"
    if kind == "cuda" and not isinstance(amp_dtype, str):
        return ""
    dtype = compute_dtype(amp_dtype if isinstance(amp_dtype, str) else "", kind)
    return LABELS.get(dtype, dtype)


def one_label(labels: Iterable[str]) -> str:
    """The one label of `labels`, `mixed` if they differ, "" if there are none."""
    found = set(labels)
    return found.pop() if len(found) == 1 else MIXED if found else ""


def bar_precision(runs: pd.DataFrame) -> str:
    """The precision of the bar made of `runs` (rows of `analysis.collect.load_runs`)."""
    if runs.empty:
        return ""
    recipes = runs["recipe_json"] if "recipe_json" in runs else [None] * len(runs)
    amp = [_recorded_amp(r) for r in recipes]
    device = runs["device"] if "device" in runs else [None] * len(runs)
    return one_label(run_precision(a, d) for a, d in zip(amp, device, strict=True))


def _recorded_amp(recipe: Any) -> Any:
    """The `amp_dtype` of a run's normalised recipe (`analysis.variants.recipe_json`), or None."""
    if not isinstance(recipe, str):
        return None
    found = (json.loads(recipe).get("recipe") or {}) if recipe else {}
    return found.get(AMP_FIELD) if isinstance(found, dict) else None


def figure_precision(frame: pd.DataFrame) -> str:
    """The precision line of a staircase figure: `precision fp32`, or mixed and per bar; "".

    "" where no bar records a precision (the paper's own staircase).
    """
    labels = bar_labels(frame)
    label = one_label(labels)
    if label != MIXED:
        return f"precision {label}" if label else ""
    named = ", ".join(sorted(set(labels) - {MIXED}))
    return f"precision {MIXED}{f': {named}' if named else ''} (per bar)"


def bar_labels(frame: pd.DataFrame) -> list[str]:
    """The recorded precision of each bar of a staircase (its reference row left out)."""
    if "precision" not in frame:
        return []
    return [p for p in frame.loc[~frame["reference"].astype(bool), "precision"] if p]


def varies(frame: pd.DataFrame) -> bool:
    """Whether the bars of a staircase trained in more than one precision (or a bar is mixed)."""
    return one_label(bar_labels(frame)) == MIXED
