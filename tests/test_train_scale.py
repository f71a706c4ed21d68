"""World-size invariance: one process at batch 2b = b x 2 accumulation = two DDP ranks of b.

With augmentation that does not depend on the batch (no Mixup/CutMix, no drop path; each
sample's augmentation is seeded from (seed, epoch, index)), the three see the same samples in
the same optimizer steps, so a step without BatchNorm ends with the same weights up to float32
summation order. The tolerances, derived from float32's unit roundoff u = 2**-24 and AdamW's
step size:

- weights: 5e-3 x T x lr. AdamW moves a weight by at most ~lr per step (|m/sqrt(v)| <= 1), so
  T steps bound its whole path by T x lr; the tolerance is 0.5% of that path. Summing a batch
  in another order changes a gradient by a few u relative (more where its terms cancel), which
  measured 1.8e-6 after 10 steps (T x lr = 0.02: 55x below the tolerance); moving one sample
  into another step (the negative control below) measured 1.0e-2, 100x above it.
- losses: relative 2 x 32 u (3.8e-6): a float32 sum of n <= 32 positive per-sample losses is
  within (n - 1) u of exact (Higham), once for each of the two runs compared; measured <= 2.2e-7.
- top-1 / top-5: exact. Counts are summed over ranks in float64 (experiments/train/evaluate.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from train_fixtures import (
    TINY_MODEL,
    U32,
    epochs,
    final_weights,
    max_abs_diff,
    norm_free_step,
    record_grad_norms,
    tiny_run,
    torchrun_train,
)

from experiments.recipe import resolve_recipe
from experiments.runs import records
from experiments.train import Trainer
from experiments.train import data as train_data

LOSS_RTOL = 2 * 32 * U32
B = 8  # images per device and micro-batch; the large batch is 2B
COMMON = (
    "recipe.builtin_train_per_class=8",  # 80 images: 5 steps of 16 per epoch
    "recipe.builtin_val_per_class=5",  # 50 validation images
    "recipe.base_batch=8",  # lr at batch 16 is twice the base lr: the scaling is checked
    "recipe.epochs=2",
    "recipe.warmup_epochs=0.5",
    "recipe.threads=1",
    "recipe.keep_final_checkpoint=true",
    "recipe.eval_every=1",  # evaluate every epoch (smoke: the last only)
)
LARGE = ("recipe.batch_size=16", "recipe.accum_steps=1")  # (a) 1 process x 16
ACCUM = ("recipe.batch_size=8", "recipe.accum_steps=2")  # (b) 1 process x 8 x 2
RANKS = ("recipe.batch_size=8", "recipe.accum_steps=1")  # (c) 2 ranks x 8


def builtin_config(recipe) -> dict:
    """The config keys the loaders read: seed 0, the built-in data and its recorded identity."""
    return {"seed": 0, "data": None, "dataset": train_data.builtin_dataset(recipe)}


NO_RUN = Path("/nonexistent-run")  # loaders read a run's events for skipped files: none here


def weight_tolerance(result: dict) -> float:
    """0.5% of the longest path AdamW lets a weight travel in the run: 5e-3 x T x lr."""
    return 5e-3 * result["iterations"] * result["lr"]


def step_sets(world: int, batch: int, accum: int, epoch: int) -> list[frozenset[int]]:
    """The sample indices of each optimizer step of `epoch`, over all ranks."""
    recipe = resolve_recipe("smoke", (*COMMON, f"recipe.batch_size={batch}"))
    per_step = batch * accum
    steps: list[set[int]] = []
    for rank in range(world):
        loaders = train_data.build_loaders(
            recipe, builtin_config(recipe), NO_RUN, rank, world, accum
        )
        loaders.sampler.set_epoch(epoch)
        mine = [index for _, index in loaders.sampler]
        for i in range(0, len(mine), per_step):
            if len(steps) <= i // per_step:
                steps.append(set())
            steps[i // per_step].update(mine[i : i + per_step])
    return [frozenset(s) for s in steps]


def test_every_layout_of_an_optimizer_step_sees_the_same_samples() -> None:
    layouts = [(1, 16, 1), (1, 8, 2), (2, 8, 1), (4, 4, 1), (2, 4, 2), (1, 4, 4)]
    for epoch in (0, 1):
        reference = step_sets(*layouts[0], epoch)
        assert len(reference) == 5 and all(len(s) == 16 for s in reference)
        for layout in layouts[1:]:
            assert step_sets(*layout, epoch) == reference, (layout, epoch)
    assert step_sets(1, 16, 1, 0) != step_sets(1, 16, 1, 1)  # a new order each epoch


def test_sharded_validation_covers_every_image_once() -> None:
    recipe = resolve_recipe("smoke", (*COMMON, *ACCUM))
    for world in (1, 2, 3):
        seen = []
        for rank in range(world):
            loaders = train_data.build_loaders(
                recipe, builtin_config(recipe), NO_RUN, rank, world, 1
            )
            sampler = loaders.val.loader.sampler
            seen += [index for _, index in sampler]
        assert sorted(seen) == list(range(50)), world


def _compare(a: Path, b: Path) -> float:
    """Assert that runs a and b agree (losses, counts, lr, batch); their weight difference."""
    ra, rb = (records.read_json(d / records.RESULT) for d in (a, b))
    for key in ("lr", "effective_batch", "iterations", "top1", "top5"):
        assert ra[key] == rb[key], key
    assert epochs(a, "top1", "top5") == epochs(b, "top1", "top5")
    for (la, va), (lb, vb) in zip(
        epochs(a, "train_loss", "val_loss"),
        epochs(b, "train_loss", "val_loss"),
        strict=True,
    ):
        assert la == pytest.approx(lb, rel=LOSS_RTOL), (la, lb)
        assert va == pytest.approx(vb, rel=LOSS_RTOL), (va, vb)
    return max_abs_diff(final_weights(a), final_weights(b))


def test_accumulation_equals_the_large_batch_on_a_tiny_model(tmp_path: Path) -> None:
    step = norm_free_step()
    runs = {}
    for name, layout in (("large", LARGE), ("accum", ACCUM)):
        runs[name] = tiny_run(tmp_path / name, step, (*COMMON, *layout), TINY_MODEL)
        Trainer(runs[name]).fit()
    result = records.read_json(runs["accum"] / records.RESULT)
    assert (result["accum_steps"], result["effective_batch"]) == (2, 16)
    assert result["lr"] == pytest.approx(resolve_recipe("smoke").base_lr * 16 / 8)
    assert _compare(runs["large"], runs["accum"]) <= weight_tolerance(result)


@pytest.mark.slow
def test_one_process_accumulation_and_two_ranks_end_with_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BatchNorm steps differ by design: their statistics are per micro-batch and rank.
    step = norm_free_step()
    large = tiny_run(tmp_path / "large", step, (*COMMON, *LARGE))
    accum = tiny_run(tmp_path / "accum", step, (*COMMON, *ACCUM))
    for run_dir in (large, accum):
        Trainer(run_dir).fit()
    ranks = tmp_path / "ranks"
    torchrun_train(ranks, step, (*COMMON, *RANKS))
    layouts = {d: records.read_json(d / records.RESULT) for d in (large, accum, ranks)}
    assert [(r["world_size"], r["accum_steps"]) for r in layouts.values()] == [
        (1, 1), (1, 2), (2, 1)
    ]  # fmt: skip
    assert {r["effective_batch"] for r in layouts.values()} == {16}
    assert layouts[ranks]["lr"] == pytest.approx(resolve_recipe("smoke").base_lr * 2)
    tolerance = weight_tolerance(layouts[ranks])
    measured = {}
    for a, b in itertools.combinations(layouts, 2):
        measured[f"{a.name} vs {b.name}"] = diff = _compare(a, b)
        assert diff <= tolerance, (a.name, b.name, diff)
    print(f"weights: tolerance {tolerance:.2g}, measured {measured}")

    # The two ranks' evaluation sums to the single-process count of the same weights.
    # Done: it resumes its final checkpoint. Its validation batch (2B) is the ranks'.
    single = Trainer(accum)
    single.model.load_state_dict(final_weights(ranks))
    alone = single.evaluate(single.model)
    last = records.read_log(ranks)[-1]
    assert (alone["top1"], alone["top5"]) == (last["top1"], last["top5"])

    # Negative control: one sample of step 1 swapped with one of step 2 (epoch 1 only).
    indices = train_data.EpochSampler.indices

    def swapped(self: train_data.EpochSampler) -> list[int]:
        order = indices(self)
        if self.shuffle and self.epoch == 0:
            order[0], order[16] = order[16], order[0]
        return order

    monkeypatch.setattr(train_data.EpochSampler, "indices", swapped)
    moved = tiny_run(tmp_path / "moved", step, (*COMMON, *ACCUM))
    Trainer(moved).fit()
    control = max_abs_diff(final_weights(large), final_weights(moved))
    print(f"negative control: {control:.2g}")
    assert control > 10 * tolerance


def test_clipping_bounds_every_step_and_applies_after_accumulation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step, clip = norm_free_step(), 0.05
    norms: dict[str, list[float]] = {}
    for name, extra in (("free", ()), ("clipped", (f"recipe.clip_grad={clip}",))):
        run_dir = tiny_run(tmp_path / name, step, (*COMMON, *ACCUM, *extra), TINY_MODEL)
        trainer = Trainer(run_dir)
        norms[name] = record_grad_norms(trainer, monkeypatch)
        trainer.fit()
    assert len(norms["free"]) == len(norms["clipped"]) == 10
    assert min(norms["free"]) > 2 * clip  # clipping has work to do at every step
    assert max(norms["clipped"]) <= clip * (1 + 1e-5)
    assert min(norms["clipped"]) >= clip * (1 - 1e-5)  # clipped, not zeroed
