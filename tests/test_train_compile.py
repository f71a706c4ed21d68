"""`recipe.compile`: torch.compile (inductor) trains a tiny model of a step as eager does, on CPU.

Inductor fuses and reorders float32 arithmetic, so the losses agree to a relative 1e-5, not
bitwise (measured: 5e-8 at most over 10 steps of 16 images, torch 2.14); top-1 on the 50
validation images agrees exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from train_fixtures import TINY_MODEL, epochs, norm_free_step, tiny_run

from experiments.runs import records
from experiments.train import Trainer

SETS = (
    "recipe.builtin_train_per_class=8",
    "recipe.builtin_val_per_class=5",
    "recipe.batch_size=16",
    "recipe.base_batch=16",
    "recipe.epochs=2",
    "recipe.warmup_epochs=0.5",
    "recipe.threads=1",
    "recipe.eval_every=1",  # evaluate every epoch (smoke: the last only)
)


@pytest.mark.slow
def test_compiled_training_follows_eager_on_a_tiny_model(tmp_path: Path) -> None:
    step = norm_free_step()
    runs = {}
    for name, extra in (("eager", ()), ("compiled", ("recipe.compile=true",))):
        runs[name] = tiny_run(tmp_path / name, step, (*SETS, *extra), TINY_MODEL)
        trainer = Trainer(runs[name])
        assert (type(trainer.train_model).__name__ == "OptimizedModule") == bool(extra)
        result = trainer.fit()
        assert result["status"] == "done" and result["iterations"] == 10
    eager, compiled = (epochs(runs[n], "train_loss", "val_loss") for n in runs)
    for a, b in zip(eager, compiled, strict=True):
        assert b == pytest.approx(a, rel=1e-5), (a, b)
    top1 = [epochs(runs[n], "top1") for n in runs]
    assert top1[0] == top1[1]
    assert records.read_json(runs["compiled"] / records.CONFIG)["recipe"]["compile"]
