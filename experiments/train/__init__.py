"""Training one run: (track, step, seed, preset, overrides) -> a trained model and its record.

`prepare_run` checks everything and writes `<out>/config.json` (experiments/train/config.py);
`run(run_dir)`, or `Trainer(run_dir).fit()`, trains from it, resuming from the newest valid
checkpoint, and writes `log.jsonl` and `result.json` (experiments/runs/records.py).

Modules: `config` (the run's identity, its data check and config.json), `data` (the run's
datasets, seeded and resumable loaders), `shapes` (the built-in dataset), `parts` (timm's
transforms, optimizer, schedule, Mixup and loss for a recipe), `checkpoint` (crash-safe
checkpoints, RNG states), `signals` (handlers held during a step), `distributed` (torchrun /
submitit setup), `trainer` (the loop), `report` (what a run prints and records), `run` (one
run's life), `cli`.
"""

from experiments.recipe import resolve_recipe
from experiments.train.config import prepare_run, run_data
from experiments.train.data import dataset_size, validate_data
from experiments.train.run import Preempted, RunFailed, run
from experiments.train.trainer import Trainer

__all__ = [
    "Preempted",
    "RunFailed",
    "Trainer",
    "dataset_size",
    "prepare_run",
    "resolve_recipe",
    "run",
    "run_data",
    "validate_data",
]
