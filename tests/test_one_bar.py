"""A bar is one step's current spec, one recipe and one dataset: the staircase never pools
runs of two datasets or of a spec the step table no longer has, and says why in a line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from analysis_fixtures import build_root, write_run

from analysis.collect import aggregate, load_runs, select_runs
from experiments.runs import records
from roadmap.cli import main
from roadmap.steps import steps

TRACK = "resnet50"
LONGEST = 300  # characters of one message line


def _record(run: Path, **fields: object) -> None:
    """Change fields of a written run's config.json."""
    config = records.read_json(run / records.CONFIG)
    records.atomic_write_json(run / records.CONFIG, {**config, **fields})


def _dataset(classes: int, sha: str) -> dict:
    return {"name": "imagefolder", "classes": [f"c{i}" for i in range(classes)],
            "train": {"images": 10 * classes, "sha256": sha}}  # fmt: skip


def test_runs_of_one_step_on_two_datasets_are_never_one_bar(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    step = steps(TRACK)[2].name
    tops = {0: 40.0, 1: 70.0, 2: 41.0}
    for seed, top1 in tops.items():
        run = write_run(root, TRACK, step, seed, top1=top1)
        _record(run, dataset=_dataset(10, "a" * 64) if seed != 1 else _dataset(6, "b" * 64))
    sel = select_runs(load_runs(root), TRACK)
    assert sorted(sel.runs["seed"]) == [0, 2]
    (reason,) = sel.excluded["reason"]
    assert reason.startswith("other dataset: 6 classes, fingerprint ") and "10 classes" in reason
    row = aggregate(sel).set_index("step").loc[step]
    assert row["n"] == 2 and row["top1_mean"] == pytest.approx(40.5)
    assert any("datasets differ" in n for n in sel.notes)
    mixed = select_runs(load_runs(root), TRACK, allow_mixed=True)  # pools no datasets
    assert sorted(mixed.runs["seed"]) == [0, 2]
    # One run each: no majority, an error naming both, in one short line.
    (root / TRACK / "smoke" / step / "seed2").rename(tmp_path / "away")
    with pytest.raises(ValueError, match="runs of several datasets: 10 classes") as err:
        select_runs(load_runs(root), TRACK)
    assert len(str(err.value)) < LONGEST and "\n" not in str(err.value)


def test_an_on_path_insert_draws_the_untouched_steps_and_names_the_stale_field(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, out = tmp_path / "runs", tmp_path / "out"
    build_root(root, TRACK, seeds=(0, 1))
    track = steps(TRACK)
    first = next(s for s in track if s.on_path and s.index > 3)  # the insert goes before it
    later = [s for s in track if s.index >= first.index]
    for step in later:  # as recorded before the step table gained a width change there
        for seed in (0, 1):
            run = root / TRACK / "smoke" / step.name / f"seed{seed}"
            spec = records.read_json(run / records.CONFIG)["spec"]
            _record(run, spec={**spec, "width": spec["width"] - 8})
    assert main(["staircase", "--root", str(root), "--out", str(out), "--formats", "png"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / f"staircase_{TRACK}.csv")
    drawn = set(table.loc[table["n"] > 0, "step"])
    assert drawn == {s.name for s in track if s.index < first.index}
    excluded = pd.read_csv(out / f"staircase_{TRACK}_excluded.csv")
    assert len(excluded) == 2 * len(later)
    for step in later:
        width = step.spec.width
        reason = f"stale spec: spec.width {width - 8} -> {width} (the step table changed"
        assert all(r.startswith(reason) for r in excluded.loc[excluded["step"] == step.name,
                                                               "reason"])  # fmt: skip
    assert max(len(r) for r in excluded["reason"]) < LONGEST
    assert "stale spec: spec.width" in printed
    # --allow-mixed pools recipes, never a stale spec
    sel = select_runs(load_runs(root), TRACK, allow_mixed=True)
    assert set(sel.runs["step"]) == drawn


def test_a_tie_of_recipes_names_the_keys_in_one_short_line(tmp_path: Path) -> None:
    step = steps(TRACK)[1].name
    big = {f"key{i}": list(range(40)) for i in range(30)}  # a recipe dict of ~4,000 characters
    for seed, epochs in ((0, 2), (1, 9)):
        write_run(tmp_path, TRACK, step, seed, recipe={**big, "epochs": epochs})
    with pytest.raises(ValueError, match="recipe.epochs=2 .1 run.*recipe.epochs=9") as err:
        select_runs(load_runs(tmp_path), TRACK)
    assert len(str(err.value)) < LONGEST


def test_train_names_the_keys_of_a_different_run_in_one_short_line(tmp_path: Path) -> None:
    from experiments.train import prepare_run

    out = tmp_path / "run"
    prepare_run(TRACK, steps(TRACK)[1].name, 0, "smoke", out)
    other = ("recipe.epochs=7", "recipe.mixup=0.1", "recipe.cutmix=0.2", "recipe.smoothing=0.3",
             "recipe.reprob=0.4", "recipe.betas=0.8,0.9")  # fmt: skip
    with pytest.raises(ValueError, match="already holds a different run") as err:
        prepare_run(TRACK, steps(TRACK)[2].name, 0, "smoke", out, overrides=other)
    message = str(err.value).replace(str(out), "OUT")
    assert "step " in message and "recipe.epochs " in message and " more" in message
    assert len(message) < LONGEST and "\n" not in message


def test_a_staircase_that_fails_writes_nothing_into_out(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, out = tmp_path / "runs", tmp_path / "out"
    write_run(root, TRACK, steps(TRACK)[1].name, 0, status="failed", reason="loss is NaN")
    assert main(["staircase", "--root", str(root), "--out", str(out)]) == 2
    assert "no runs to draw" in capsys.readouterr().err
    assert not out.exists()
