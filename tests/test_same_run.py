"""One identity of a run: a field added since keeps finished runs, in every command (issue 26).

A field added with a default is simulated generically: a recorded config loses a spec field and
a recipe field whose values today are their defaults (as a config written before they existed).
The oracle is the field's value written by the current code, not the rule under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from analysis_fixtures import write_run

from analysis.collect import load_runs, select_runs
from experiments.recipe import Recipe, recipe_dict, resolve_recipe
from experiments.runs import records, runstate
from experiments.sweep.plan import Request, make_plan
from experiments.train.config import prepare_run
from roadmap.cli import main
from roadmap.spec import ArchSpec
from roadmap.steps import steps

TRACK = "resnet50"
FIRST, SECOND, THIRD = (s.name for s in steps(TRACK)[:3])


def _added_fields(config: dict) -> tuple[str, str]:
    """A spec field and a recipe field of `config` that hold their dataclass defaults."""
    spec_default, recipe_default = ArchSpec().to_dict(), recipe_dict(Recipe())
    spec = next(k for k, v in config["spec"].items() if v == spec_default[k])
    recipe = next(k for k, v in config["recipe"].items() if v == recipe_default[k])
    return spec, recipe


def _finish(run_dir: Path, top1: float) -> None:
    """A done result.json, as a finished run leaves it."""
    result = dict.fromkeys(records.RESULT_KEYS) | {"status": "done", "top1": top1}
    records.write_result(run_dir, result | {"params": 1, "gflops": 1.0})


def _older(run_dir: Path, drop: tuple[str, str] | None = None) -> tuple[str, str]:
    """Rewrite the run's config as written before its spec and recipe fields `drop` existed."""
    config = records.read_json(run_dir / records.CONFIG)
    spec, recipe = drop or _added_fields(config)
    del config["spec"][spec], config["recipe"][recipe]
    records.atomic_write_json(run_dir / records.CONFIG, config)
    return spec, recipe


@pytest.fixture
def finished(tmp_path: Path, tiny_overrides) -> tuple[Path, tuple[str, str]]:
    """A root of done runs of two steps x two seeds; seed 0's configs of an older layout."""
    root = tmp_path / "runs"
    dropped = None
    for i, step in enumerate((FIRST, SECOND)):
        for seed in (0, 1):
            run = prepare_run(TRACK, step, seed, "smoke", root / TRACK / step / f"seed{seed}",
                              overrides=tiny_overrides)  # fmt: skip
            _finish(run, 50.0 + i + seed)
            if seed == 0:
                dropped = _older(run, dropped)
    return root, dropped


def test_a_field_added_with_its_default_keeps_every_run_the_same_in_every_command(
    finished, tiny_overrides, capsys
) -> None:
    root, (spec_field, recipe_field) = finished
    old = root / TRACK / FIRST / "seed0"
    assert spec_field not in records.read_config(old)["spec"]
    # roadmap train: the run is found, not refused
    assert prepare_run(TRACK, FIRST, 0, "smoke", old, overrides=tiny_overrides) == old
    # roadmap sweep: every finished run skipped, only the new step planned
    request = Request(root=root, preset="smoke", steps=(FIRST, SECOND, THIRD), seeds="0,1",
                      overrides=tiny_overrides)  # fmt: skip
    plan = make_plan(request)
    assert {(r.step.name, r.seed): r.action for r in plan.runs} == {
        (FIRST, 0): "skip", (FIRST, 1): "skip", (SECOND, 0): "skip", (SECOND, 1): "skip",
        (THIRD, 0): "submit", (THIRD, 1): "submit",
    }  # fmt: skip
    # the staircase: one bar per step, both layouts in it, nothing left out
    sel = select_runs(load_runs(root), TRACK)
    assert sel.excluded.empty and len(sel.runs) == 4 and not sel.notes
    # roadmap effects: the path term pools the four runs (two per step)
    assert main(["effects", "--root", str(root), "--out", str(root / "out")]) == 0
    effects = pd.read_csv(root / "out" / f"effects_{TRACK}.csv").set_index("term")
    assert effects.loc[f"path:{SECOND}", "n"] == 4
    assert "left out" not in capsys.readouterr().out
    # roadmap status: done, no note
    states = runstate.sweep_states(root)
    assert [s.status for s in states] == ["done"] * 4 and not any(s.notes for s in states)


def test_a_real_difference_is_refused_in_one_line_naming_it(finished, tiny_overrides) -> None:
    root, _ = finished
    run = root / TRACK / FIRST / "seed1"
    config = records.read_json(run / records.CONFIG)
    config["spec"]["width"] += 8
    records.atomic_write_json(run / records.CONFIG, config)
    wanted = f"spec.width {config['spec']['width']} -> {config['spec']['width'] - 8}"
    with pytest.raises(ValueError) as err:
        prepare_run(TRACK, FIRST, 1, "smoke", run, overrides=tiny_overrides)
    assert "\n" not in str(err.value) and wanted in str(err.value)
    request = Request(root=root, preset="smoke", steps=(FIRST,), seeds="0,1",
                      overrides=tiny_overrides)  # fmt: skip
    with pytest.raises(ValueError) as err:
        make_plan(request)
    assert "\n" not in str(err.value) and wanted in str(err.value)
    sel = select_runs(load_runs(root), TRACK)
    (reason,) = sel.excluded["reason"]
    assert reason.startswith(f"stale spec: {wanted}")
    (state,) = [s for s in runstate.sweep_states(root) if s.run_dir == run]
    assert any(wanted in note for note in state.notes)


def test_a_missing_key_is_a_difference_even_where_the_wanted_value_is_none(
    tmp_path: Path, tiny_overrides
) -> None:
    run = prepare_run(TRACK, FIRST, 0, "smoke", tmp_path / "r", overrides=tiny_overrides)
    config = records.read_json(run / records.CONFIG)
    assert config["data"] is None  # the built-in data
    del config["data"]
    records.atomic_write_json(run / records.CONFIG, config)
    with pytest.raises(ValueError, match=r"data \(absent\) -> None"):
        prepare_run(TRACK, FIRST, 0, "smoke", run, overrides=tiny_overrides)


def _dataset(run_dir: Path, name: str) -> None:
    """Record the run as trained on the dataset `name` (its class map and fingerprint)."""
    config = records.read_json(run_dir / records.CONFIG)
    config["dataset"] = {"name": name, "classes": ["a", "b"], "fingerprint": name}
    records.atomic_write_json(run_dir / records.CONFIG, config)


def test_effects_leaves_out_what_the_staircase_leaves_out(tmp_path: Path, capsys) -> None:
    for step, top1 in ((FIRST, 50.0), (SECOND, 52.0)):
        for seed in (0, 1, 2):
            _dataset(write_run(tmp_path, TRACK, step, seed, top1=top1 + seed / 10), "one")
        # the second dataset: far off, so pooled it would move the effect
        _dataset(write_run(tmp_path, TRACK, step, 3, top1=top1 - 30 * (step == SECOND)), "two")
    stale = write_run(tmp_path, TRACK, SECOND, 4, top1=0.0)
    _dataset(stale, "one")
    config = records.read_json(stale / records.CONFIG)
    config["spec"]["width"] += 8  # the step table changed since it ran
    records.atomic_write_json(stale / records.CONFIG, config)
    sel = select_runs(load_runs(tmp_path), TRACK)
    left = dict(zip(sel.excluded["run"], sel.excluded["reason"], strict=True))
    assert len(left) == 3 and any(r.startswith("stale spec") for r in left.values())
    assert main(["effects", "--root", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    row = pd.read_csv(tmp_path / "out" / f"effects_{TRACK}.csv").set_index("term")
    assert row.loc[f"path:{SECOND}", "n"] == 6
    assert row.loc[f"path:{SECOND}", "effect"] == pytest.approx(2.0)
    assert "left out 3 runs" in capsys.readouterr().out


def test_effects_refuses_a_preset_tie_as_the_staircase_does(tmp_path: Path, capsys) -> None:
    for preset in ("smoke", "debug"):
        for step in (FIRST, SECOND):
            write_run(tmp_path, TRACK, step, 0, preset=preset)
    out = tmp_path / "out"
    assert main(["staircase", "--root", str(tmp_path), "--out", str(out)]) == 2
    said = capsys.readouterr().err.partition("error: ")[2]
    assert said.startswith("runs of several presets on resnet50: debug (2 runs), smoke (2 runs)")
    assert main(["effects", "--root", str(tmp_path), "--out", str(out)]) == 2
    assert capsys.readouterr().err.partition("error: ")[2] == said


def test_the_recipe_of_an_older_layout_is_drawn_with_the_current_one() -> None:
    from analysis.variants import recipe_json

    recipe = recipe_dict(resolve_recipe("smoke"))
    field = next(k for k, v in recipe.items() if v == recipe_dict(Recipe())[k])
    config = {"track": TRACK, "step": FIRST, "recipe": recipe}
    older = {**config, "recipe": {k: v for k, v in recipe.items() if k != field}}
    assert json.loads(recipe_json(older)) == json.loads(recipe_json(config))
