"""One row per run, from its records only: config.json and result.json, each read once.

Analysis never asks a scheduler or an executor: a run with no result.json is `UNFINISHED`
(running, pending or interrupted: `roadmap status` tells which), one whose config or result
cannot be used is `unreadable` with the reason, named by its folder (`<track>/<step>/seed<k>`).
What makes a run's bar (`analysis.bars`) comes from its config normalised by the one rule of a
run's identity (`experiments.runs.same_run`): a spec or recipe field added since takes its
default, so such a run stays in the bar of the runs configured after the field was added.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from analysis.bars import dataset_key, dataset_label
from analysis.variants import recipe_json
from experiments.runs import records
from experiments.runs.records import ConfigRecord, ResultRecord
from experiments.runs.same_run import spec_change
from roadmap.steps import step_names

UNFINISHED = "unfinished"  # no result.json: running, pending or interrupted (`roadmap status`)


def run_row(root: Path, run_dir: Path) -> dict[str, Any]:
    """The row of the run in `run_dir`: who it is, what makes its bar, then its result keys."""
    config, problem = records.read_or_reason(records.read_config, run_dir)
    result: ResultRecord | None = None
    if config is not None:
        result, problem = records.read_or_reason(records.read_result, run_dir)
    named = _named(config, run_dir)
    row: dict[str, Any] = {
        "run_dir": str(run_dir),
        "run": os.path.relpath(run_dir, root),
        **named,
        "index": _index(named["track"], named["step"]),
        "preset": (config or {}).get("preset"),
        "created": (config or {}).get("created"),
    }
    outcome: dict[str, Any] = dict.fromkeys(records.RESULT_KEYS)
    if problem:
        outcome.update(status="unreadable", reason=problem)
    elif result is None:
        outcome.update(status=UNFINISHED, reason="no result yet (see roadmap status)")
    else:
        outcome.update(result)
    return {**row, **outcome, **_bar(config)}  # the bar's `dataset`, not the result's


def _named(config: ConfigRecord | None, run_dir: Path) -> dict[str, Any]:
    """Track, step and seed: the config's, or (unreadable) the folder's."""
    if config is not None:
        return {"track": config["track"], "step": config["step"], "seed": config["seed"]}
    number = run_dir.name.removeprefix("seed")
    seed = int(number) if number.isdigit() else -1
    return {"track": run_dir.parent.parent.name, "step": run_dir.parent.name, "seed": seed}


def _bar(config: ConfigRecord | None) -> dict[str, Any]:
    """What makes the run's bar: recipe, stale spec, dataset (`analysis.bars`)."""
    found = dict(config or {})
    return {
        "recipe_json": recipe_json(found),
        "spec_change": spec_change(found) if config is not None else None,
        "dataset": dataset_key(found),
        "dataset_label": dataset_label(found),
    }


def _index(track: str, step: str) -> int:
    """The step's 1-based position in its track now; 0 for a design point or unknown step."""
    try:
        names = step_names(track)
    except ValueError:
        return 0
    return names.index(step) + 1 if step in names else 0
