"""Designs declared before they run, and `roadmap effects` over what was declared.

Run records are fake (`analysis_fixtures.write_run`); the sweep's launcher is replaced by one
that only checks the declaration is already on disk. The oracles are statsmodels' Holm,
planted effects and models built here (`roadmap.build_model`, `count_params`, `count_gflops`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import write_run
from statsmodels.stats.multitest import multipletests

import experiments.sweep.cli as sweep_cli
from analysis.declared_effects import EXTENDED, declared_effects
from analysis.effects import EXPLORATORY, cost_change
from experiments.runs import declared
from experiments.runs.runstate import RunState
from experiments.sweep.plan import _action
from roadmap import build_model, count_gflops, count_params
from roadmap.cli import main
from roadmap.designs import Design, design_points, point_spec

TRACK = "resnet50"
FACTORS = ("relu_to_gelu", "fewer_activations", "bn_to_ln", "separate_downsampling")
NAME = "micro-half"
PLANTED = {"relu_to_gelu": 0.6, "fewer_activations": 0.0, "bn_to_ln": -0.4}  # half-effects


def _sweep(root: Path, *more: str) -> int:
    """`roadmap sweep` of the declared 2^(4-1) on smoke (the launcher is the test's)."""
    factors = ",".join(FACTORS)
    return main(["sweep", "--design", "factorial", "--factors", factors, "--fraction", "2",
                 "--declare", NAME, "--preset", "smoke", "--root", str(root), *more])  # fmt: skip


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Replace the launcher: record the declaration found on disk when it is called."""
    seen: list[dict] = []

    def fake_launch(plan) -> int:
        path = declared.path_of(plan.request.root, TRACK, NAME)
        seen.append(json.loads(path.read_text()))  # fails if not declared first
        return 0

    monkeypatch.setattr(sweep_cli, "launch", fake_launch)
    return seen


def test_the_sweep_declares_before_it_submits_and_refuses_another_design(
    tmp_path: Path, launches: list[dict], capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "runs"
    assert _sweep(root, "--dry-run") == 0 and not (root / TRACK / "designs").exists()
    assert "dry run: nothing declared" in capsys.readouterr().out
    assert _sweep(root, "--seeds", "0,1,2") == 0
    decl = launches[0]
    assert decl["family"] == [f"main:{f}" for f in FACTORS]
    assert decl["seeds"] == [0, 1, 2] and decl["alpha"] == 0.05 and decl["amendments"] == []
    assert decl["design"]["fraction"] == 2 and len(decl["design"]["points"]) == 8
    assert decl["digest"] == declared.digest(decl)
    path = declared.path_of(root, TRACK, NAME)
    before = path.read_bytes()
    assert _sweep(root, "--seeds", "0,1,2") == 0 and path.read_bytes() == before  # a no-op
    assert "already declared" in capsys.readouterr().out
    other = ["--factors", ",".join(FACTORS[:3]), "--fraction", "1"]
    assert _sweep(root, *other) == 2
    err = capsys.readouterr().err
    assert f"design {NAME!r} is declared" in err and len(err.strip().splitlines()) == 1
    assert _sweep(root, "--seeds", "0-3") == 0  # a seed added later: an amendment
    amended = json.loads(path.read_text())["amendments"]
    assert len(amended) == 1 and "seed 3" in amended[0]["what"] and amended[0]["when"]


def test_interactions_of_a_fraction_are_refused_in_one_line() -> None:
    design = Design("factorial", TRACK, FACTORS, None, 2)
    with pytest.raises(ValueError, match="aliased in pairs"):
        declared.family(design, interactions=True)


def test_a_done_run_is_never_resubmitted_even_with_retry_failed(tmp_path: Path) -> None:
    done = RunState(tmp_path, TRACK, FACTORS[0], 9, 0, "done")
    assert _action(done, retry_failed=True) == "skip"


def _write_fraction(root: Path, seeds=(0, 1, 2)) -> dict[str, dict[int, float]]:
    """Runs of the declared half fraction with planted main effects; the declaration too."""
    design = Design("factorial", TRACK, FACTORS, None, 2)
    content = declared.declaration(design, [0, 1, 2], 0.05, 0.1, interactions=False)
    declared.declare(root, TRACK, NAME, content)
    rng = np.random.default_rng(3)
    values: dict[str, dict[int, float]] = {}
    for point in design_points("factorial", TRACK, FACTORS, None, 2):
        mean = 70 + sum(PLANTED.get(f, 0.0) * point.levels[f] for f in FACTORS)
        for seed in seeds:
            y = round(mean + 0.2 * seed + rng.normal(0, 0.05), 4)
            values.setdefault(point.run_name, {})[seed] = y
            write_run(root, TRACK, point.run_name, seed, top1=y)
    return values


def test_a_declared_half_fraction_gives_its_main_effects_holm_and_aliases_only(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, out = tmp_path / "runs", tmp_path / "out"
    _write_fraction(root)
    assert main(["effects", "--root", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"declared design {NAME!r}" in printed and "resolution 4; aliases:" in printed
    assert "relu_to_gelu*fewer_activations = bn_to_ln*separate_downsampling" in printed
    frame = pd.read_csv(out / f"effects_{TRACK}.csv")
    mine = frame[frame["family"] == NAME].set_index("term")
    assert sorted(mine.index) == sorted(f"main:{f}" for f in FACTORS)
    assert list(mine["p_holm"]) == pytest.approx(multipletests(mine["p"], method="holm")[1])
    for factor, half in PLANTED.items():
        assert mine.loc[f"main:{factor}", "effect"] == pytest.approx(2 * half, abs=0.15)
    md = (out / f"effects_{TRACK}.md").read_text()
    assert "| p Holm | dGFLOPs | dparams (M) | family |" in md and f"| {NAME} |" in md
    factorial_kinds = {"main", "interaction", "shapley"}
    assert not (frame["kind"].isin(factorial_kinds) & (frame["family"] != NAME)).any()


def test_undeclared_terms_are_exploratory_and_extended_seeds_are_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "runs"
    values = _write_fraction(root, seeds=(0, 1, 2, 3))
    decls = [(d["name"], d) for _, d in declared.declared(root, TRACK)]
    frame, notes = declared_effects(TRACK, values, decls)
    mains = frame[frame["kind"] == "main"]
    assert len(mains) == 4 and set(mains["family"]) == {EXPLORATORY}
    assert set(mains["note"]) == {EXTENDED} and mains["p_holm"].isna().all()
    assert any(EXTENDED in n and "seed 3" in n for n in notes)
    alone, _ = declared_effects(TRACK, values, [])  # nothing declared: nothing confirmatory
    assert set(alone["family"]) <= {EXPLORATORY}


def test_a_duplicate_point_and_seed_is_named_with_the_run_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "runs"
    _write_fraction(root)
    point = next(p.run_name for p in design_points("factorial", TRACK, FACTORS, None, 2))
    write_run(root, TRACK, point, 1, created="2023-01-01T00:00:00", name="again")
    assert main(["effects", "--root", str(root), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    older, newer = f"{TRACK}/smoke/{point}/again", f"{TRACK}/smoke/{point}/seed1"
    assert f"duplicate (step, seed): {older} left out" in printed
    assert f"the newer run {newer} is drawn" in printed


def _built(name: str) -> tuple[int, float]:
    """Params and GFLOPs of the model built here from the run name's spec."""
    model = build_model(point_spec(name, TRACK))
    return count_params(model), count_gflops(model)


def test_cost_columns_equal_the_built_models_differences(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    values = _write_fraction(root)
    decls = [(d["name"], d) for _, d in declared.declared(root, TRACK)]
    frame = declared_effects(TRACK, values, decls)[0].set_index("term")
    costs = {
        p.run_name: (_built(p.run_name), p.levels)
        for p in design_points("factorial", TRACK, FACTORS, None, 2)
    }
    for factor in FACTORS:
        hi = [c for c, lv in costs.values() if lv[factor] > 0]
        lo = [c for c, lv in costs.values() if lv[factor] < 0]
        d_params = np.mean([c[0] for c in hi]) - np.mean([c[0] for c in lo])
        d_gflops = np.mean([c[1] for c in hi]) - np.mean([c[1] for c in lo])
        assert frame.loc[f"main:{factor}", "d_params"] == pytest.approx(d_params)
        assert frame.loc[f"main:{factor}", "d_gflops"] == pytest.approx(d_gflops)
    a, b = "separate_downsampling", "bn_to_ln"
    (pa, ga), (pb, gb) = _built(a), _built(b)
    assert cost_change(TRACK, a, b) == pytest.approx({"d_gflops": ga - gb, "d_params": pa - pb})


def test_a_declared_leave_one_out_tests_exactly_its_family(tmp_path: Path) -> None:
    design = Design("leave-one-out", TRACK)
    content = declared.declaration(design, [0, 1, 2], 0.05, 0.1, interactions=False)
    declared.declare(tmp_path, TRACK, "loo", content)
    rng = np.random.default_rng(5)
    names = {p.run_name for p in design.points() if p.valid} | {design.to_dict()["base"]}
    values = {n: {s: 70 + rng.normal() for s in (0, 1, 2)} for n in names}
    decls = [(d["name"], d) for _, d in declared.declared(tmp_path, TRACK)]
    frame, _ = declared_effects(TRACK, values, decls)
    mine = frame[frame["family"] == "loo"]
    assert sorted(mine["term"]) == sorted(content["family"]) and len(mine) >= 10
    assert list(mine["p_holm"]) == pytest.approx(multipletests(mine["p"], method="holm")[1])
    assert set(frame.loc[frame["family"] != "loo", "family"]) <= {EXPLORATORY}
