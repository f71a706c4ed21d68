"""Run records for the analysis tests, written through `experiments.runs.records`' own writers.

Accuracies are made up by `synthetic_top1` (a rising staircase with a seed spread); they are
not the paper's numbers and not measured. Params and GFLOPs are made up the same way.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from experiments.runs import records
from roadmap.designs import point_spec
from roadmap.steps import get_step, steps

RECIPE = {"epochs": 2, "lr": 0.004, "batch_size": 8, "ema": False, "warmup_epochs": 0}
PROVENANCE = {"git": {"commit": None, "dirty": None}, "host": "fixture", "slurm": None}


def synthetic_top1(index: int, seed: int) -> float:
    """A made-up top-1 (%): rises with the step index, varies with the seed."""
    return round(40.0 + 2.0 * index**0.7 + 0.4 * ((3 * seed + index) % 4 - 1.5), 3)


def synthetic_complexity(index: int) -> tuple[int, float]:
    """Made-up params and GFLOPs of the step at `index`."""
    return 20_000_000 + 250_000 * index, round(3.0 + 0.1 * index, 3)


def write_run(
    root: Path,
    track: str,
    step: str,
    seed: int,
    *,
    preset: str = "smoke",
    top1: float | None = None,
    status: str | None = "done",
    reason: str | None = None,
    recipe: dict[str, Any] | None = None,
    created: str = "2024-05-01T12:00:00",
    name: str | None = None,
    epochs: int = 2,
    device: str | None = None,
) -> Path:
    """Write one run's config.json, log.jsonl and (unless `status` is None) result.json."""
    run = Path(root) / track / preset / step / (name or f"seed{seed}")
    try:  # a step's or a design point's spec, as `roadmap train` records it
        spec = asdict(point_spec(step, track))
    except ValueError:
        spec = {}
    try:
        index = get_step(step, track).index
    except ValueError:
        index = 99
    config = {
        "track": track,
        "step": step,
        "seed": seed,
        "preset": preset,
        "overrides": {},
        "data": {"name": "synthetic"},
        "spec": spec,
        "recipe": dict(RECIPE if recipe is None else recipe),
        "provenance": PROVENANCE,
        "created": created,
        "out_dir": str(run),
    }
    records.atomic_write_json(run / records.CONFIG, config)
    if top1 is None:
        top1 = synthetic_top1(index, seed)
    for epoch in range(epochs):
        line = {
            "epoch": epoch,
            "lr": 0.004,
            "train_loss": 2.0 - epoch,
            "top1": top1 - 1 + epoch,
        }
        records.append_jsonl(run / records.LOG, line)
    if status is not None:
        params, gflops = synthetic_complexity(index)
        done = status == "done"
        records.write_result(
            run,
            dict.fromkeys(records.RESULT_KEYS)
            | {
                "status": status,
                "reason": reason,
                "top1": top1 if done else None,
                "top5": top1 + 15 if done else None,
                "best_top1": top1 + 0.1 if done else None,
                "ema_top1": None,
                "params": params,
                "gflops": gflops,
                "wall_s": 12.5,
                "img_s": 321.0,
                "device": device,
            },
        )
    return run


def build_root(
    root: Path,
    track: str = "resnet50",
    seeds: tuple[int, ...] = (0, 1, 2),
    preset: str = "smoke",
    skip: tuple[tuple[str, int], ...] = (),
) -> dict[tuple[str, int], float]:
    """Write a done run of every step and seed of `track`; return top-1 by (step, seed)."""
    written = {}
    for step in steps(track):
        for seed in seeds:
            if (step.name, seed) in skip:
                continue
            top1 = synthetic_top1(step.index, seed)
            write_run(root, track, step.name, seed, preset=preset, top1=top1)
            written[(step.name, seed)] = top1
    return written
