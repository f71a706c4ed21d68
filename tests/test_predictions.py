"""predictions.npz: each image's label, top-1 class and top-5 hit of the reported evaluation.

`accuracy` / `top5` of the stored arrays equal result.json's numbers exactly (both are the same
float64 counts, divided the same way: tolerance 0); the labels are the validation dataset's own,
in its order; two gloo ranks give the single-process arrays, also on a validation set that does
not split evenly over them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import crash_at_training_forward

from analysis.bars import dataset_key
from experiments.recipe import recipe_from_dict, resolve_recipe
from experiments.runs import predictions as preds
from experiments.runs import records
from experiments.train import Trainer, prepare_run
from experiments.train.data import build_loaders, builtin_dataset, datasets
from experiments.train.distributed import RankContext
from experiments.train.evaluate import PerImage, evaluate
from roadmap.steps import steps

EMA = ("recipe.ema=true", "recipe.ema_decay=0.9")
# 3 classes x 3 validation images: 9, odd; batch 2 (validation batches of 4): partial batches.
ODD_VAL = ("recipe.builtin_classes=3", "recipe.builtin_val_per_class=3", "recipe.batch_size=2")
NO_RUN = Path("/nonexistent-run")  # loaders read a run's events for skipped files: none here
MB = 1_000_000


class Killed(Exception):
    """A crash in the middle of a run."""


def _run(out: Path, overrides: tuple[str, ...]) -> Path:
    """A prepared smoke run of the track's first step."""
    return prepare_run("resnet50", steps("resnet50")[0].name, 0, "smoke", out, overrides=overrides)


def _dataset_labels(run_dir: Path) -> list[int]:
    """The run's validation labels, from its dataset itself, in the dataset's order."""
    config = records.read_config(run_dir)
    val = datasets(recipe_from_dict(config["recipe"]), config)[1]
    return [int(val[i][1]) for i in range(len(val))]


def _agree_with_result(run_dir: Path) -> dict[str, np.ndarray]:
    """The run's predictions, checked against its result.json and its dataset."""
    found, result = preds.read_predictions(run_dir), records.read_result(run_dir)
    assert found is not None
    assert (preds.accuracy(found), preds.top5(found)) == (result["top1"], result["top5"])
    if result["ema_top1"] is not None:
        ema = (preds.accuracy(found, ema=True), preds.top5(found, ema=True))
        assert ema == (result["ema_top1"], result["ema_top5"])
    assert found["label"].tolist() == _dataset_labels(run_dir)
    assert len(found["label"]) == result["dataset"]["val_images"]
    assert found["dataset"] == dataset_key(records.read_config(run_dir)) != ""
    return found


def test_a_run_writes_the_predictions_its_result_reports(tmp_path: Path, tiny_overrides) -> None:
    run_dir = _run(tmp_path / "r", (*tiny_overrides, *EMA))
    Trainer(run_dir).fit()
    found = _agree_with_result(run_dir)
    assert set(found) == {*preds.ARRAYS, *preds.EMA_ARRAYS, "dataset", "epoch"}
    assert found["epoch"] == records.read_result(run_dir)["epochs"]
    assert found["top5"].dtype == bool and found["pred"].dtype == np.int64
    last = records.read_log(run_dir)[-1]  # the final evaluation, not the first epoch's
    assert preds.accuracy(found) == last["top1"] and preds.top5(found, ema=True) == last["ema_top5"]


def test_a_resumed_run_ends_with_the_uninterrupted_runs_predictions(
    tmp_path: Path, tiny_overrides
) -> None:
    whole = _run(tmp_path / "whole", tiny_overrides)
    Trainer(whole).fit()
    cut = _run(tmp_path / "cut", (*tiny_overrides, "recipe.checkpoint_minutes=1e-9"))
    first = Trainer(cut)
    crash_at_training_forward(first.model, first.steps_per_epoch + 2, Killed)  # in epoch 2
    with pytest.raises(Killed):
        first.fit()
    epoch_1 = preds.read_predictions(cut)
    assert epoch_1 is not None and preds.accuracy(epoch_1) == records.read_log(cut)[0]["top1"]
    Trainer(cut).fit()  # resumes in epoch 2
    resumed, uninterrupted = _agree_with_result(cut), preds.read_predictions(whole)
    for key in preds.ARRAYS:
        assert np.array_equal(resumed[key], uninterrupted[key]), key
    path = cut / preds.PREDICTIONS
    before = (path.stat().st_mtime_ns, path.stat().st_ino, path.read_bytes())
    Trainer(cut).fit()  # done: returned as it is, nothing rewritten
    assert (path.stat().st_mtime_ns, path.stat().st_ino, path.read_bytes()) == before


def test_a_failure_after_an_evaluation_it_does_not_report_drops_them(
    tmp_path: Path, tiny_overrides, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = _run(tmp_path / "r", tiny_overrides)
    trainer, ends = Trainer(run_dir), []
    real = Trainer._end_epoch

    def end_epoch(self: Trainer, *args: object) -> None:
        ends.append(1)
        if len(ends) == 2:  # epoch 2 evaluated (predictions written), its end not recorded
            raise OSError("disk gone")
        real(self, *args)

    monkeypatch.setattr(Trainer, "_end_epoch", end_epoch)
    with pytest.raises(OSError):
        trainer.fit()
    written = preds.read_predictions(run_dir)
    assert written is not None  # epoch 2's
    trainer.record_failure("disk gone")
    result = records.read_result(run_dir)
    assert result["status"] == "failed" and result["epochs"] == 1
    assert written["epoch"] == 2 and preds.reported_epoch(run_dir) == 1
    assert not preds.matches(written, result, 1)  # what would be left without drop_unmatched
    assert not (run_dir / preds.PREDICTIONS).exists()


def _linear(classes: int, size: int) -> torch.nn.Module:
    """A seeded linear classifier of the images: its top-1 class varies from image to image."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * size * size, classes))


def _scores(rank: int, world: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """This rank's evaluation of `_linear` on the ODD_VAL built-in set (ranks: gloo started)."""
    recipe = resolve_recipe("smoke", (*ODD_VAL, "recipe.threads=1"))
    config = {"seed": 0, "data": None, "dataset": builtin_dataset(recipe)}
    loaders = build_loaders(recipe, config, NO_RUN, rank, world, 1)
    ctx = RankContext(rank, world, torch.device("cpu"), torch.float32, False, world > 1)
    images = PerImage(loaders.val.indices(), loaders.info["val_images"])
    classes = loaders.info["classes"]
    metrics = evaluate(_linear(classes, recipe.image_size), loaders.val, ctx, classes, images)
    return metrics, images.arrays


def _rank(rank: int, store: str, out: str) -> None:
    """One of 2 gloo ranks: evaluate, save what it got."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    metrics, arrays = _scores(rank, 2)
    np.savez(Path(out, f"{rank}.npz"), **arrays, top1_pct=metrics["top1"], top5_pct=metrics["top5"])
    dist.destroy_process_group()


def test_two_ranks_give_the_single_process_arrays(tmp_path: Path) -> None:
    alone, arrays = _scores(0, 1)
    assert len(arrays["label"]) % 2 == 1 and len(set(arrays["pred"].tolist())) > 1
    torch.multiprocessing.spawn(_rank, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        with np.load(tmp_path / f"{rank}.npz") as got:
            for key in preds.ARRAYS:
                assert np.array_equal(got[key], arrays[key]), (rank, key)
            counts = (float(got["top1_pct"]), float(got["top5_pct"]))
            assert counts == (alone["top1"], alone["top5"])
    stored = {**arrays, "dataset": ""}
    assert (preds.accuracy(stored), preds.top5(stored)) == (alone["top1"], alone["top5"])


def test_an_image_scored_twice_or_never_is_refused() -> None:
    ctx = RankContext(0, 1, torch.device("cpu"), torch.float32, False, False)
    model = torch.nn.Flatten()  # 2 "classes": the two pixels
    batch = (torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 0, 0]))
    good = PerImage([2, 0, 1], 3)
    evaluate(model, [batch], ctx, 2, good)
    assert good.arrays["label"].tolist() == [0, 0, 1] and good.arrays["pred"].tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match=r"2 of 3 validation images scored \[0, 2\] times"):
        evaluate(model, [batch], ctx, 2, PerImage([0, 1, 1], 3))  # a sampler's padding
    with pytest.raises(ValueError, match="3 images scored on rank 0, its sampler has 2"):
        evaluate(model, [batch], ctx, 2, PerImage([0, 1], 3))


def test_matches_sees_another_evaluation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 10, 40)
    arrays = {"label": label, "pred": np.where(rng.random(40) < 0.5, label, 0), "top5": label < 7}
    preds.write_predictions(tmp_path, arrays, "abc")  # no epoch: as analysis tests write them
    found = preds.read_predictions(tmp_path)
    hits = int(np.sum(arrays["pred"] == label))
    result = {"top1": 100 * hits / 40, "top5": 100 * int(np.sum(label < 7)) / 40}
    assert preds.matches(found, result, None) and found["dataset"] == "abc"
    assert not preds.matches(found, result, 1)
    assert not preds.matches(found, {**result, "top1": 100 * (hits - 1) / 40}, None)
    assert not preds.matches(found, {**result, "ema_top1": 1.0, "ema_top5": 2.0}, None)
    assert not preds.drop_unmatched(tmp_path, result)  # no log.jsonl: no epoch reported
    assert (tmp_path / preds.PREDICTIONS).exists()
    preds.write_predictions(tmp_path, arrays, "abc", epoch=3)
    assert preds.read_predictions(tmp_path)["epoch"] == 3
    assert preds.matches(preds.read_predictions(tmp_path), result, 3)
    assert preds.drop_unmatched(tmp_path, result)  # the same numbers, but not epoch 3's
    assert preds.read_predictions(tmp_path) is None


def test_imagenet_sized_predictions_take_well_under_a_megabyte(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)  # random: the worst case for the compression
    n, classes = 50_000, 1000
    arrays = {k: rng.integers(0, classes, n) for k in ("label", "pred", "ema_pred")}
    arrays.update(top5=rng.random(n) < 0.5, ema_top5=rng.random(n) < 0.5)
    path = preds.write_predictions(tmp_path, arrays, "0123456789ab")
    size = path.stat().st_size
    print(f"predictions.npz of {n} images x {classes} classes, with EMA's: {size} bytes")
    assert size < MB
