"""`roadmap effects` (analysis/effects.py): planted effects come back, as statsmodels gives them."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from analysis_fixtures import write_run

from analysis.effects import (
    COLUMNS,
    factorial_effects,
    find_factorials,
    shapley_values,
    track_effects,
)
from roadmap.cli import main
from roadmap.designs import design_points, endpoint, on_path, planned_steps
from roadmap.steps import STEP_TABLE, Row, get_step, steps

steps_module = importlib.import_module("roadmap.steps")
TRACK = "resnet50"
SEEDS = (0, 1, 2, 3)
# A planted linear model: half-effects of two factors, their interaction, a seed block.
PLANTED = {"a": 0.8, "b": -0.5, "ab": 0.3}


def _factors(k: int) -> list[str]:
    """The last `k` on-path steps (the micro design ones on resnet50)."""
    return [s.name for s in on_path(TRACK)][-k:]


def _planted_values(factors: list[str], noise: float = 0.05) -> dict[str, dict[int, float]]:
    """Run values of a factorial at the endpoint from the planted model (plus seeded noise)."""
    rng = np.random.default_rng(7)
    out: dict[str, dict[int, float]] = {}
    for point in design_points("factorial", TRACK, factors):
        x1, x2 = (point.levels[f] for f in factors)
        for seed in SEEDS:
            y = 70 + PLANTED["a"] * x1 + PLANTED["b"] * x2 + PLANTED["ab"] * x1 * x2
            out.setdefault(point.run_name, {})[seed] = y + 0.2 * seed + rng.normal(0, noise)
    return out


def test_main_effects_and_interaction_equal_statsmodels_own() -> None:
    factors = _factors(2)
    values = _planted_values(factors)
    rows = pd.DataFrame(factorial_effects(TRACK, endpoint(TRACK), factors, 1, values))
    data = pd.DataFrame(
        [
            {"y": y, "seed": seed, "x1": p.levels[factors[0]], "x2": p.levels[factors[1]]}
            for p in design_points("factorial", TRACK, factors)
            for seed, y in values[p.run_name].items()
        ]
    )
    fit = smf.ols("y ~ x1 + x2 + x1:x2 + C(seed)", data=data).fit()
    ci = fit.conf_int(0.05)
    terms = {
        f"main:{factors[0]}": "x1",
        f"main:{factors[1]}": "x2",
        f"interaction:{factors[0]}*{factors[1]}": "x1:x2",
    }
    by_term = rows.set_index("term")
    for term, name in terms.items():
        row = by_term.loc[term]
        assert row["effect"] == pytest.approx(2 * fit.params[name], rel=1e-9)
        assert row["ci95_low"] == pytest.approx(2 * ci.loc[name, 0], rel=1e-9)
        assert row["ci95_high"] == pytest.approx(2 * ci.loc[name, 1], rel=1e-9)
        assert row["p"] == pytest.approx(fit.pvalues[name], rel=1e-9)
        assert row["n"] == len(data) and row["test"] == "ols"
    planted = [2 * PLANTED["a"], 2 * PLANTED["b"], 2 * PLANTED["ab"]]
    for term, value in zip(terms, planted, strict=True):
        assert by_term.loc[term, "ci95_low"] < value < by_term.loc[term, "ci95_high"]
    assert by_term.loc[list(terms)[2], "p"] < 0.001  # the planted interaction is found


def test_shapley_values_of_an_additive_fixture_equal_its_main_effects() -> None:
    factors = _factors(3)
    half = {f: 0.3 * (i + 1) * (-1) ** i for i, f in enumerate(factors)}
    values: dict[str, dict[int, float]] = {}
    for point in design_points("factorial", TRACK, factors):
        for seed in SEEDS:
            y = 60 + sum(half[f] * point.levels[f] for f in factors) + 0.5 * seed
            values.setdefault(point.run_name, {})[seed] = y
    rows = pd.DataFrame(factorial_effects(TRACK, endpoint(TRACK), factors, 1, values))
    main_ = rows[rows["kind"] == "main"].set_index("step")["effect"]
    shapley = rows[rows["kind"] == "shapley"].set_index("step")
    for f in factors:
        assert shapley.loc[f, "effect"] == pytest.approx(main_[f], abs=1e-9)
        assert shapley.loc[f, "effect"] == pytest.approx(2 * half[f], abs=1e-9)
        assert shapley.loc[f, "ci95_low"] <= shapley.loc[f, "effect"] <= shapley.loc[f, "ci95_high"]
    assert math.isnan(shapley["p"].iloc[0]) and set(shapley["test"]) == {"t"}


def test_shapley_values_share_out_an_interaction_and_sum_to_the_whole_change() -> None:
    means = {(-1, -1): 0.0, (1, -1): 1.0, (-1, 1): 2.0, (1, 1): 5.0}
    phi = shapley_values(means, 2)
    assert phi == pytest.approx([2.0, 3.0])  # each gets half of the interaction's 2
    assert sum(phi) == pytest.approx(means[(1, 1)] - means[(-1, -1)])


def test_a_factorial_is_found_only_when_complete() -> None:
    factors = _factors(2)
    values = _planted_values(factors)
    assert find_factorials(TRACK, values) == [(endpoint(TRACK), tuple(factors), 1)]
    missing = next(p.run_name for p in design_points("factorial", TRACK, factors) if p.moves)
    values.pop(missing)
    assert find_factorials(TRACK, values) == []


def test_end_and_start_effects_compare_the_right_runs() -> None:
    first, end = steps(TRACK)[0].name, endpoint(TRACK)
    step = on_path(TRACK)[3]
    loo = design_points("leave-one-out", TRACK)
    aoi = design_points("add-one-in", TRACK)
    point_end = next(p for p in loo if p.moves[0][1] == step.name).run_name
    point_start = next(p for p in aoi if p.moves[0][1] == step.name).run_name
    values = {
        end: {0: 80.0, 1: 81.0},
        point_end: {0: 78.0, 1: 78.6},
        first: {0: 70.0, 1: 70.5},
        point_start: {0: 69.0, 1: 69.9},
    }
    frame = track_effects(TRACK, values).set_index("term")
    assert frame.loc[f"end:{step.name}", "effect"] == pytest.approx(80.5 - 78.3)
    assert frame.loc[f"start:{step.name}", "effect"] == pytest.approx(69.45 - 70.25)
    assert frame.loc[f"end:{step.name}", "kind"] == "leave-one-out"
    assert frame.loc[f"start:{step.name}", "base"] == first
    assert set(frame["test"]) == {"paired"}


def test_a_new_step_gets_its_effects_with_no_code(monkeypatch) -> None:
    monkeypatch.setattr(
        steps_module,
        "STEP_TABLE",
        (*STEP_TABLE, Row("expansion_3", "micro design", True, {"expansion": 3}, (TRACK,))),
    )
    steps_module._resolve.cache_clear()
    try:
        chosen, _ = planned_steps("leave-one-out", TRACK)
        values = {s.name: {0: 70.0 + i, 1: 70.5 + i} for i, s in enumerate(chosen)}
        for step in steps(TRACK):
            values.setdefault(step.name, {0: 60.0, 1: 60.2})
        frame = track_effects(TRACK, values).set_index("term")
        assert "end:expansion_3" in frame.index and "path:expansion_3" in frame.index
        assert frame.loc["end:expansion_3", "base"] == "expansion_3"
    finally:
        steps_module._resolve.cache_clear()


def test_roadmap_effects_writes_tables_and_figures_and_the_staircase_still_draws(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    factors = _factors(2)
    values = _planted_values(factors, noise=0.1)
    for step in steps(TRACK):
        for seed in SEEDS[:2]:
            values.setdefault(step.name, {})[seed] = 50.0 + step.index + 0.1 * seed
    root = tmp_path / "runs"
    for name, by_seed in values.items():
        for seed, y in by_seed.items():
            write_run(root, TRACK, name, seed, top1=round(y, 4))
    out = tmp_path / "out"
    assert main(["effects", "--root", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 main" in printed and "1 interaction" in printed and "2 shapley" in printed
    frame = pd.read_csv(out / f"effects_{TRACK}.csv")
    assert list(frame.columns) == list(COLUMNS)
    assert {"path", "main", "interaction", "shapley"} <= set(frame["kind"])
    for suffix in ("md", "tex", "png", "pdf", "svg"):
        assert (out / f"effects_{TRACK}.{suffix}").stat().st_size > 0
    assert main(["staircase", "--root", str(root), "--out", str(out)]) == 0
    assert "run(s) of design points not drawn" in capsys.readouterr().out  # steps only
    assert get_step(endpoint(TRACK), TRACK).name in values
