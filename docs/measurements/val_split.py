"""Seed-to-seed std of smoke top-1 against the size of the built-in validation split.

Trains nothing. ROOT is a smoke sweep run with `--set recipe.keep_final_checkpoint=true`;
every run's final checkpoint is evaluated on the built-in val split at each size, with the
trainer's own loaders and `Trainer.evaluate`. Training does not depend on the split (its images
come from their own stream), so every size measures the same trained models.

    python docs/measurements/val_split.py ROOT 30,60,120 OUT.csv
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from experiments.runs import records
from experiments.train.trainer import Trainer


def evaluate(run: Path, per_class: int) -> dict:
    """Top-1 of the run's final model on `per_class` val images per class, and the time."""
    config = records.read_json(run / records.CONFIG)
    config["recipe"]["builtin_val_per_class"] = per_class
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        (copy / records.CONFIG).write_text(json.dumps(config))
        (copy / records.CHECKPOINT_DIR).symlink_to(run / records.CHECKPOINT_DIR)
        trainer = Trainer(copy)
        if trainer.state["epoch"] != config["recipe"]["epochs"]:
            raise SystemExit(f"{run}: the newest checkpoint is not the final state")
        start = time.perf_counter()
        top1 = trainer.evaluate(trainer.model)["top1"]
    return {
        "step": config["step"],
        "seed": config["seed"],
        "val_per_class": per_class,
        "top1": top1,
        "eval_s": time.perf_counter() - start,
    }


def main(root: str, sizes: str, out: str) -> None:
    """Evaluate every run under `root` at every size; write the rows, print the stds."""
    rows = [evaluate(run, int(size)) for run in records.run_dirs(root) for size in sizes.split(",")]
    frame = pd.DataFrame(rows)
    frame.to_csv(out, index=False)
    print(frame.groupby(["step", "val_per_class"])["top1"].std().unstack().round(2))


if __name__ == "__main__":
    main(*sys.argv[1:4])
