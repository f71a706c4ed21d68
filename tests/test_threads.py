"""Torch threads have one owner, `Recipe.torch_threads`; the records say what a run applied."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from experiments.recipe import resolve_recipe
from experiments.runs import records
from experiments.sweep import local
from experiments.sweep.job import RunJob
from experiments.train.config import prepare_run


def test_a_sweep_job_records_the_threads_its_run_applies(
    tmp_path: Path, tiny_overrides: tuple[str, ...]
) -> None:
    assert "recipe.threads=1" in tiny_overrides  # the recipe names its count: the slot's yields
    run = prepare_run("resnet50", "kernel_7", 0, "smoke", tmp_path / "r", overrides=tiny_overrides)
    before = torch.get_num_threads()
    try:
        result = RunJob(str(run / records.CONFIG), threads=3)()  # a slot's share of 3 cores
    finally:
        torch.set_num_threads(before)
    start = records.read_events(run)[0]
    assert result["status"] == "done" and start["event"] == "start"
    # result.json's count is torch.get_num_threads() during the run: what was applied.
    assert start["threads"] == result["threads"] == 1


@pytest.mark.parametrize(("sets", "applied"), [((), 1), (("recipe.threads=0",), 4)])
def test_local_slots_hold_the_threads_their_runs_apply(
    monkeypatch: pytest.MonkeyPatch, sets: tuple[str, ...], applied: int
) -> None:
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda _pid: set(range(4)))
    monkeypatch.setattr(local, "_gpu_count", lambda: 0)
    recipe = resolve_recipe("smoke", sets)  # smoke runs one thread (docs/training.md)
    assert [s.threads for s in local.local_slots(1, recipe)] == [applied]  # job.json, estimate
    assert [s.threads for s in local.local_slots(1)] == [4]  # the share, without a recipe
