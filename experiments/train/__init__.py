"""Training one run: (track, step, seed, preset, overrides) -> a trained model and its record.

`prepare_run` checks everything and writes `<out>/config.json` (experiments/train/config.py);
`command_life.run(run_dir)`, or `Trainer(run_dir).fit()`, trains from it, resuming from the
newest valid checkpoint, and writes `log.jsonl` and `result.json` (experiments/runs/records.py).

Modules: `config` (the run's identity, its data check and config.json), `data` (the run's
datasets, seeded and resumable loaders), `shapes` (the built-in dataset), `parts` (timm's
transforms, optimizer, schedule, Mixup and loss for a recipe), `checkpoint` (crash-safe
checkpoints, RNG states), `signals` (handlers held during a step), `distributed` (torchrun /
submitit setup), `trainer` (the loop), `run_output` (what a run prints and records), `run_life`
(one run's life, for train and sweep), `command_life` (`roadmap train`'s hooks on it),
`train_command` (`roadmap train`), `recipe_command` (`roadmap recipe`). The names below load on
first use, so the CLI imports no torch for --help.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the module of this package that defines it.
_WHERE = {
    "resolve_recipe": "experiments.recipe",
    "prepare_run": "experiments.train.config",
    "run_data": "experiments.train.config",
    "dataset_size": "experiments.train.data",
    "validate_data": "experiments.train.data",
    "Preempted": "experiments.train.command_life",
    "RunFailed": "experiments.train.command_life",
    "Trainer": "experiments.train.trainer",
}

__all__ = [
    "Preempted",
    "RunFailed",
    "Trainer",
    "dataset_size",
    "prepare_run",
    "resolve_recipe",
    "run_data",
    "validate_data",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    if name not in _WHERE:
        raise AttributeError(f"module 'experiments.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
