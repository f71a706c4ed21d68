"""recipe.tensorboard: each epoch's log.jsonl numbers as TensorBoard events, read back."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from experiments.recipe import resolve_recipe
from experiments.runs import records
from experiments.train import prepare_run
from experiments.train.command_life import run
from experiments.train.run_output import TENSORBOARD_DIR, record_epoch
from roadmap.steps import step_names


def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(logdir))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_every_logged_number_is_an_event_at_its_epoch(tmp_path, tiny_overrides):
    overrides = (*tiny_overrides, "recipe.tensorboard=true")
    run_dir = prepare_run(
        "resnet50", step_names()[0], 0, "smoke", tmp_path / "r", overrides=overrides
    )
    assert run(run_dir)["status"] == "done"
    log = records.read_log(run_dir)
    scalars = _scalars(run_dir / TENSORBOARD_DIR)
    for key in ("top1", "top5", "val_loss", "train_loss", "lr", "img_s"):
        expected = [(row["epoch"], row[key]) for row in log]
        assert [s for s, _ in scalars[key]] == [s for s, _ in expected]
        assert [v for _, v in scalars[key]] == pytest.approx(
            [v for _, v in expected],
            rel=1e-6,  # events store float32
        )


def test_off_by_default_and_an_error_without_the_package(tmp_path, monkeypatch):
    assert resolve_recipe("smoke").tensorboard is False
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    with pytest.raises(ValueError, match=r"pip install 'convnext-roadmap\[tensorboard\]'"):
        resolve_recipe("smoke", ["recipe.tensorboard=true"])


def test_an_epoch_trained_again_after_a_resume_replaces_its_events(tmp_path):
    trainer = SimpleNamespace(run_dir=tmp_path, recipe=resolve_recipe("smoke"))
    trainer.recipe = dataclasses.replace(trainer.recipe, tensorboard=True, epochs=3)
    row = {"train_loss": 2.0, "top1": 10.0, "top5": 50.0, "lr": 1e-3, "img_s": 1.0}
    row["seconds"] = 1.0
    for epoch, top1 in ((1, 10.0), (2, 20.0), (3, 30.0), (2, 21.0)):  # resumed at 1
        record_epoch(trainer, {**row, "epoch": epoch, "top1": top1})
    assert _scalars(tmp_path / TENSORBOARD_DIR)["top1"] == [(1, 10.0), (2, 21.0)]
