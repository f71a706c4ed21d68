"""A run's recipe as JSON: what decides whether two runs of a step trained the same way.

`recipe_json` is the run's recipe as recorded (drop path, layer scale and init included) plus
its spec's departures from the step's spec as the step table now gives it (none, unless the step
changed since the run), as one canonical JSON string: equal strings, equal training.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pandas as pd

from experiments.runs.same_run import ABSENT, normalised
from roadmap.steps import Step, steps


def _json(obj: Any) -> Any:
    """`obj` as JSON would give it back (tuples become lists)."""
    return json.loads(json.dumps(obj, default=str))


def recipe_json(config: dict[str, Any]) -> str:
    """A run's recipe as a canonical string: recipe plus its spec's departures from the step's.

    Equal strings mean equal training: a recipe recorded before a field existed has that
    field's default (`experiments.runs.same_run.normalised`).
    """
    delta: dict[str, Any] = {}
    step = find_step(config.get("track"), config.get("step"))
    if step is not None and isinstance(config.get("spec"), dict):
        ref = _json(asdict(step.spec))
        delta = {k: v for k, v in config["spec"].items() if k in ref and _json(v) != ref[k]}
    recipe = normalised(config)["recipe"]  # fields added since: their defaults
    recipe = None if recipe is ABSENT else recipe
    return json.dumps({"recipe": recipe, "spec": delta}, sort_keys=True)


def find_step(track: Any, name: Any) -> Step | None:
    """The roadmap step `name` of `track`, or None."""
    try:
        return next(s for s in steps(track) if s.name == name)
    except (ValueError, StopIteration):
        return None


def recipe_json_diff(recipes: list[str], width: int = 80) -> list[str]:
    """Per `recipe_json` string, the keys in which they differ as `key=value` (<= `width`)."""
    flats = [
        pd.json_normalize(json.loads(v), sep=".").to_dict(orient="records")[0] for v in recipes
    ]
    keys = sorted({k for f in flats for k in f if len({json.dumps(g.get(k)) for g in flats}) > 1})
    more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
    labels = [(", ".join(f"{k}={f.get(k)!r}" for k in keys[:4]) or "same keys") for f in flats]
    return [label[: width - 3] + "..." if len(label) > width else label + more for label in labels]
