"""Training runs end to end: loss goes down, the record's schema, NaN stops, bad input errors."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest

from analysis.collect import load_runs
from experiments.runs import records
from experiments.train import Trainer, prepare_run
from experiments.train import config as train_config
from experiments.train.command_life import run
from roadmap.cli import main
from roadmap.steps import get_step, step_names


@pytest.mark.parametrize("step", [step_names()[0], step_names()[-1]])
def test_smoke_training_lowers_the_loss(tmp_path: Path, step: str, tiny_overrides) -> None:
    # 5 epochs: with the authors' roadmap init (convs at PyTorch's default) the endpoint's first
    # epochs sit above chance on these 40 images (3.66, 2.63, 2.38, 1.63, 1.44 at seed 0).
    overrides = (*tiny_overrides, "recipe.epochs=5")
    run_dir = prepare_run("resnet50", step, 0, "smoke", tmp_path / step, overrides=overrides)
    result = run(run_dir)
    losses = [row["train_loss"] for row in records.read_log(run_dir)]
    assert result["status"] == "done" and len(losses) == 5
    # Chance is ln(10) = 2.30 (label smoothing 0.1 cannot go below 0.5): the last epoch fits
    # the 40 training images clearly better than chance and than the first epoch.
    assert losses[-1] < min(losses[0], math.log(10)) - 0.2, losses


def test_run_record_schema(tmp_path: Path, tiny_overrides) -> None:
    runs = tmp_path / "runs"
    run_dir = prepare_run(
        "resnet50", "depthwise_conv", 1, "smoke", runs / "a", overrides=tiny_overrides
    )
    result = run(run_dir)
    config = records.read_json(run_dir / records.CONFIG)
    assert {
        "track",
        "step",
        "seed",
        "preset",
        "overrides",
        "data",
        "spec",
        "recipe",
        "provenance",
        "created",
        "out_dir",
    } <= set(config)
    assert config["overrides"]["recipe.builtin_train_per_class"] == 4
    assert len(config["overrides"]) == len(tiny_overrides)
    assert config["data"] is None and config["spec"]["depthwise"] is True
    # Drop path and layer scale are the recipe's alone; the spec is the step's, unchanged.
    assert config["recipe"]["drop_path"] == 0.0 and config["recipe"]["layer_scale"] == 0.1
    assert not {"drop_path_rate", "layer_scale_init"} & set(config["spec"])
    assert config["spec"] == get_step(config["step"], config["track"]).spec.to_dict()
    assert {"commit", "dirty"} <= set(config["provenance"]["git"])
    log = records.read_log(run_dir)
    assert [row["epoch"] for row in log] == [1, 2]
    for row in log:
        assert {"lr", "train_loss", "top1", "top5", "img_s", "seconds"} <= set(row)
    assert set(records.RESULT_KEYS) <= set(result)
    assert result == json.loads((run_dir / records.RESULT).read_text())
    assert result["status"] == "done" and result["reason"] is None
    assert result["ema_top1"] is None and result["top1"] == log[-1]["top1"]
    assert result["best_top1"] == max(row["top1"] for row in log)
    assert result["params"] > 1e6 and 0 < result["gflops"] < 0.2 and result["img_s"] > 0
    assert not (run_dir / "checkpoints").exists()  # smoke keeps no checkpoint once done
    assert run(run_dir) == result  # done: returned without training
    frame = load_runs(runs)
    assert len(frame) == 1 and frame.loc[0, "status"] == "done"
    config = records.read_config(run_dir)
    assert config["spec"]["kernel_size"] == 3 and config["recipe"]["epochs"] == 2


def test_nan_loss_ends_as_a_failed_record(tmp_path: Path, tiny_overrides) -> None:
    run_dir = prepare_run(
        "resnet50",
        "depthwise_conv",
        0,
        "smoke",
        tmp_path / "r",
        overrides=tiny_overrides,
    )
    trainer = Trainer(run_dir)
    calls = []

    def poison(module, inputs, output):
        if module.training:
            calls.append(1)
            if len(calls) == 7:  # iteration 7: the second step of epoch 2 (5 steps an epoch)
                return output * float("nan")
        return output

    trainer.model.register_forward_hook(poison)
    result = trainer.fit()
    assert result["status"] == "failed" and result["failed_iteration"] == 7
    assert "non-finite loss (nan) at iteration 7 (epoch 2, step 2/5" in result["reason"]
    assert records.read_json(run_dir / records.RESULT) == result
    assert [row["epoch"] for row in records.read_log(run_dir)] == [1]
    assert result["epochs"] == 1 and result["iterations"] == 6


def test_prepare_run_is_idempotent_and_refuses_another_run(tmp_path: Path) -> None:
    first = prepare_run("resnet50", "kernel_7", 0, "smoke", tmp_path / "r")
    config = (first / records.CONFIG).read_text()
    assert prepare_run("resnet50", "kernel_7", 0, "smoke", tmp_path / "r") == first
    assert (first / records.CONFIG).read_text() == config
    with pytest.raises(ValueError, match=r"different run \(seed 0 -> 1\)"):
        prepare_run("resnet50", "kernel_7", 1, "smoke", tmp_path / "r")
    with pytest.raises(ValueError, match=r"recipe.epochs 2 -> 5"):
        prepare_run(
            "resnet50",
            "kernel_7",
            0,
            "smoke",
            tmp_path / "r",
            overrides=["recipe.epochs=5"],
        )


def test_another_rank_writes_nothing_and_checks_rank_0s_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under torchrun every rank prepares the run; only rank 0 writes (a second writer's temp
    # file was deleted by rank 0's clean-up once it held the lock: a race CI hit).
    out = tmp_path / "r"
    writer = threading.Timer(0.5, prepare_run, ("resnet50", "kernel_7", 0, "smoke", out))
    writer.start()
    assert prepare_run("resnet50", "kernel_7", 0, "smoke", out, write=False) == out
    writer.join()
    assert sorted(p.name for p in out.iterdir()) == [records.CONFIG]
    with pytest.raises(ValueError, match=r"different run \(seed 0 -> 1\)"):
        prepare_run("resnet50", "kernel_7", 1, "smoke", out, write=False)
    monkeypatch.setattr(train_config, "RANK0_CONFIG_WAIT_S", 0.3)
    with pytest.raises(TimeoutError, match="rank 0 wrote no .*config.json in 0 s"):
        prepare_run("resnet50", "kernel_7", 0, "smoke", tmp_path / "alone", write=False)
    assert not (tmp_path / "alone").exists()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"step": "kernel7"}, ValueError, "Did you mean 'kernel_7'"),
        ({"track": "resnet101"}, ValueError, "unknown track"),
        ({"preset": "fast"}, ValueError, "unknown preset 'fast'"),
        ({"seed": -1}, ValueError, "seed must be a non-negative int"),
        ({"overrides": ["recipe.lr=1"]}, ValueError, "Valid keys: recipe.epochs"),
        ({"data": "/nonexistent/imagenet"}, FileNotFoundError, "does not exist"),
        (
            {"preset": "paper"},
            ValueError,
            "2000 training images cannot fill one optimizer",
        ),
    ],
)
def test_prepare_run_errors_before_writing(tmp_path: Path, kwargs, error, message) -> None:
    args = {"track": "resnet50", "step": "kernel_7", "seed": 0, "preset": "smoke"}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        prepare_run(out_dir=tmp_path / "r", **args)
    assert not (tmp_path / "r").exists()


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "r")
    assert main(["train", "--step", "kernel_7", "--out", out, "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("roadmap train: error:") and "has no train/ folder" in err
    assert main(["train", "--step", "kernel_7", "--out", out, "--set", "recipe.epoch=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'recipe.epoch'" in err and "recipe.builtin_seed" in err
    assert not (tmp_path / "r").exists()


def test_cli_trains_and_resumes_done_run(tmp_path: Path, capsys, tiny_overrides) -> None:
    sets = [a for o in tiny_overrides for a in ("--set", o)]
    argv = [
        "train",
        "--step",
        "depthwise_conv",
        "--seed",
        "3",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main([*argv, *sets, "--set", "recipe.epochs=1"]) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/1: train loss" in printed and "done: top-1" in printed
    assert main([*argv, *sets, "--set", "recipe.epochs=1"]) == 0  # already done: no training
    printed = capsys.readouterr().out
    assert "already done" in printed and "epoch 1/1" not in printed


def test_trains_on_an_image_folder(tmp_path: Path, tiny_overrides) -> None:
    from PIL import Image

    for split, count in (("train", 8), ("val", 2)):
        for c, colour in enumerate(((200, 30, 30), (30, 30, 200))):
            folder = tmp_path / "data" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 48), colour).save(folder / f"{i}.jpg")
    run_dir = prepare_run(
        "resnet50",
        "kernel_7",
        0,
        "smoke",
        tmp_path / "r",
        tmp_path / "data",
        tiny_overrides,
    )
    result = run(run_dir)
    assert result["status"] == "done" and result["iterations"] == 4  # 16 images / 8, 2 epochs
    assert result["dataset"]["name"] == "imagefolder" and result["dataset"]["classes"] == 2
    assert records.read_json(run_dir / records.CONFIG)["data"] == str(tmp_path / "data")


def test_progress_bar_only_on_a_terminal_that_has_a_width(monkeypatch):
    import os
    import sys
    from types import SimpleNamespace

    from experiments.train import run_output

    trainer = SimpleNamespace(
        main=True,
        steps_per_epoch=4,
        state={"step_in_epoch": 1, "epoch": 0},
        recipe=SimpleNamespace(epochs=2),
    )
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    size = os.terminal_size((0, 0))
    monkeypatch.setattr(os, "get_terminal_size", lambda *a: size)
    assert run_output.progress_bar(trainer) is None  # `script`: a tty of width 0
    size = os.terminal_size((120, 40))
    bar = run_output.progress_bar(trainer)
    assert bar is not None and (bar.n, bar.total) == (1, 4)
    bar.close()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert run_output.progress_bar(trainer) is None  # a pipe or a log file


def test_eval_every_evaluates_those_epochs_and_the_last(tmp_path: Path, tiny_overrides) -> None:
    overrides = (*tiny_overrides, "recipe.epochs=3", "recipe.eval_every=2")
    run_dir = prepare_run(
        "resnet50", step_names()[0], 0, "smoke", tmp_path / "r", overrides=overrides
    )
    result = run(run_dir)
    log = records.read_log(run_dir)
    assert [row["epoch"] for row in log if "top1" in row] == [2, 3]
    assert all("train_loss" in row for row in log) and len(log) == 3
    assert result["top1"] == log[-1]["top1"]
    assert result["best_top1"] == max(log[1]["top1"], log[2]["top1"])
