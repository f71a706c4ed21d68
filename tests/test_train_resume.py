"""Resume is bit-exact on the CPU: stop a run inside an epoch, resume, compare every tensor."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from train_fixtures import crash_at_training_forward

from experiments.runs import records
from experiments.train import Trainer, prepare_run

# Every source of randomness on: RandAugment, random erasing, Mixup/CutMix, drop path, EMA.
RANDOM = (
    "recipe.auto_augment=rand-m9-mstd0.5-inc1",
    "recipe.reprob=0.25",
    "recipe.mixup=0.8",
    "recipe.cutmix=1.0",
    "recipe.drop_path=0.1",
    "recipe.ema=true",
    "recipe.ema_decay=0.9",
    "recipe.keep_final_checkpoint=true",
    "recipe.builtin_train_per_class=3",  # 30 images: 3 steps of 8 an epoch
)


class Killed(Exception):
    """What the test's signal handler raises after checkpointing, like a requeued job exiting."""


def _tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every tensor of the training state, by a flat name."""
    out = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    out.update({f"ema.{k}": v for k, v in trainer.ema.state_dict().items()})
    for pid, state in trainer.optimizer.state_dict()["state"].items():
        out.update({f"opt.{pid}.{k}": v for k, v in state.items() if torch.is_tensor(v)})
    return out


def _log(run_dir: Path) -> list[dict]:
    """log.jsonl without the wall-clock fields."""
    drop = {"time", "seconds", "img_s"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records.read_log(run_dir)]


def test_signal_inside_an_epoch_then_resume_is_bit_exact(tmp_path: Path, tiny_overrides) -> None:
    sets = (*tiny_overrides, *RANDOM)
    step = "depthwise_conv"
    whole = prepare_run("resnet50", step, 0, "smoke", tmp_path / "whole", overrides=sets)
    a = Trainer(whole)
    result_a = a.fit()

    # The same run with a loader worker process; SIGUSR2 lands in the middle of iteration 5
    # (epoch 2, step 2 of 3). The handler (as submitit's) checkpoints and exits: it must see
    # the state after iteration 5, not a half-done one.
    cut = prepare_run(
        "resnet50",
        step,
        0,
        "smoke",
        tmp_path / "cut",
        overrides=(*sets, "recipe.workers=1"),
    )
    b = Trainer(cut)
    forwards = []

    def send_signal(module, inputs, output):
        if module.training:
            forwards.append(1)
            if len(forwards) == 5:
                os.kill(os.getpid(), signal.SIGUSR2)
        return output

    def handler(signum, frame):
        b.save_checkpoint("preempted")
        raise Killed

    b.model.register_forward_hook(send_signal)
    previous = signal.signal(signal.SIGUSR2, handler)
    try:
        with pytest.raises(Killed):
            b.fit()
    finally:
        signal.signal(signal.SIGUSR2, previous)
    newest = records.list_checkpoints(cut / records.CHECKPOINT_DIR)[0]
    meta = records.read_json(newest.with_suffix(".json"))
    assert (meta["step"], meta["epoch"], meta["step_in_epoch"]) == (5, 1, 2)
    assert not (cut / records.RESULT).exists()

    c = Trainer(cut)  # a new process would do the same: read config, resume
    assert c.resumed_from == newest and c.state["global_step"] == 5
    result_c = c.fit()

    tensors_a, tensors_c = _tensors(a), _tensors(c)
    assert tensors_a.keys() == tensors_c.keys() and len(tensors_a) > 100
    different = [k for k in tensors_a if not torch.equal(tensors_a[k], tensors_c[k])]
    assert not different, different[:5]
    assert _log(whole) == _log(cut)
    for key in ("top1", "top5", "best_top1", "ema_top1", "iterations", "epochs"):
        assert result_a[key] == result_c[key], key


def test_crash_after_periodic_checkpoint_resumes_bit_exact(tmp_path: Path, tiny_overrides) -> None:
    # A checkpoint after every step (checkpoint_minutes ~ 0), then a crash in iteration 5 (the
    # process dies mid-step: nothing is saved). Resume restarts from iteration 4's checkpoint.
    sets = (
        *tiny_overrides,
        "recipe.checkpoint_minutes=1e-9",
        "recipe.keep_checkpoints=1",
        "recipe.builtin_train_per_class=3",
    )
    step = "depthwise_conv"
    whole = prepare_run("resnet50", step, 0, "smoke", tmp_path / "whole", overrides=sets)
    a = Trainer(whole)
    a.fit()

    cut = prepare_run("resnet50", step, 0, "smoke", tmp_path / "cut", overrides=sets)
    b = Trainer(cut)
    crash_at_training_forward(b.model, 5, Killed)
    with pytest.raises(Killed):
        b.fit()
    c = Trainer(cut)
    assert c.state["global_step"] == 4 and c.state["epoch"] == 1
    c.fit()
    ta, tc = a.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(ta[k], tc[k]) for k in ta)
    assert _log(whole) == _log(cut)
