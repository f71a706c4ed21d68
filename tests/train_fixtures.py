"""Helpers of the training tests: runs on a shrunk model, weights, torchrun, step choice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from experiments.runs import records
from experiments.train import prepare_run
from roadmap.layers import NORM_LAYERS
from roadmap.steps import steps

# Float32's unit roundoff: float32 results are exact to a relative u before any summation.
U32 = 2.0**-24

# A model of the step's design at a fraction of its size: one block per stage, width 16.
TINY_MODEL = {"depths": [1, 1, 1, 1], "width": 16}


def crash_at_training_forward(model: nn.Module, n: int, error: type[Exception]) -> None:
    """Make the `n`-th training forward pass of `model` raise `error` (a crash mid-run)."""
    forwards = []

    def crash(module: nn.Module, inputs: Any, output: Any) -> Any:
        if module.training:
            forwards.append(1)
            if len(forwards) == n:
                raise error
        return output

    model.register_forward_hook(crash)


def norm_free_step(track: str = "resnet50") -> str:
    """The first step of the track with no BatchNorm (per-batch statistics) in it."""
    for step in steps(track):
        layer = NORM_LAYERS[step.spec.norm].layer_2d
        if not issubclass(layer, nn.modules.batchnorm._BatchNorm):
            return step.name
    raise AssertionError(f"track {track} has no step without BatchNorm")


def tiny_run(out: Path, step: str, overrides: Sequence[str], model: dict | None = None) -> Path:
    """A smoke run directory of `step`; with `model`, its spec changed (e.g. TINY_MODEL)."""
    run_dir = prepare_run("resnet50", step, 0, "smoke", out, overrides=tuple(overrides))
    if model:
        config = records.read_json(run_dir / records.CONFIG)
        config["spec"].update(model)
        records.atomic_write_json(run_dir / records.CONFIG, config)
    return run_dir


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The model of the run's newest checkpoint (keep_final_checkpoint=true: the end)."""
    newest = records.list_checkpoints(run_dir / records.CHECKPOINT_DIR)[0]
    return torch.load(newest, map_location="cpu", weights_only=True)["model"]


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest element-wise difference between two state dicts with the same keys."""
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def torchrun_train(
    out: Path, step: str, overrides: Sequence[str], ranks: int = 2
) -> subprocess.CompletedProcess:
    """`roadmap train` under torchrun with `ranks` CPU processes (gloo); fails on an error."""
    sets = [a for o in overrides for a in ("--set", o)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", str(ranks), "-m", "roadmap.cli", "train",
           "--step", step, "--out", str(out), *sets]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def epochs(run_dir: Path, *keys: str) -> list[tuple[Any, ...]]:
    """The given keys of every log.jsonl line."""
    return [tuple(row[k] for k in keys) for row in records.read_log(run_dir)]


def record_grad_norms(trainer: Any, monkeypatch: Any) -> list[float]:
    """The total gradient norm each optimizer step of `trainer` steps with (filled by fit)."""
    norms: list[float] = []
    step = trainer.optimizer.step

    def recording(*args: Any, **kwargs: Any) -> Any:
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norms.append(torch.nn.utils.get_total_norm(grads).item())
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", recording)
    return norms


def rerun_resumes(cmd: list[str], out: Path, meta: dict, iterations: int = 10) -> None:
    """Running `cmd` again resumes from the checkpoint `meta` describes and ends done."""
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming ckpt_{meta['step']:09d}.pt" in again.stdout
    result = records.read_json(out / records.RESULT)
    assert result["status"] == "done" and result["iterations"] == iterations
    assert [row["epoch"] for row in records.read_log(out)] == [1, 2]
