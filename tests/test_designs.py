"""Designs beyond the path (roadmap/designs.py): points, names, `design show`, `sweep --design`."""

from __future__ import annotations

import csv
import importlib
import io
import itertools
import math
from pathlib import Path

import pytest

from experiments.sweep.plan import Request, make_plan
from experiments.train.config import prepare_run, run_identity
from roadmap.cli import main
from roadmap.designs import (
    DESIGNS,
    design_points,
    endpoint,
    on_path,
    parse_point,
    planned_steps,
    point_spec,
)
from roadmap.spec import ArchSpec
from roadmap.steps import STEP_TABLE, TRACKS, Row, get_step, steps

TRACK = "resnet50"
steps_module = importlib.import_module("roadmap.steps")  # `roadmap.steps` is also a function
MICRO = [s.name for s in on_path(TRACK) if s.group == "micro design"]


def _csv(capsys: pytest.CaptureFixture, *argv: str) -> list[dict[str, str]]:
    """Rows of `roadmap design show ... --format csv`."""
    assert main(["design", "show", *argv, "--format", "csv"]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch):
    """Add rows to the step table for one test (as a researcher adds a step)."""

    def add(*rows: Row) -> None:
        monkeypatch.setattr(steps_module, "STEP_TABLE", STEP_TABLE + rows)
        steps_module._resolve.cache_clear()

    yield add
    steps_module._resolve.cache_clear()


def test_leave_one_out_has_a_point_per_on_path_step_after_the_first(capsys) -> None:
    rows = _csv(capsys, "leave-one-out", "--track", TRACK)
    moved = [s.name for s in on_path(TRACK)[1:]]
    end = get_step(endpoint(TRACK), TRACK)
    assert [r["point"] for r in rows] == [f"{end.name}-minus-{m}" for m in moved]
    # fewer_norms needs the inverted bottleneck with the spatial conv first (the authors' asserts)
    needed = {"inverted_bottleneck", "move_up_dwconv"}
    bad = [r for r in rows if r["valid"] == "False"]
    assert {r["point"].rsplit("-", 1)[1] for r in bad} == needed
    assert all(r["reason"].startswith("constraint fewer_norms_needs_") for r in bad)
    good = [r for r in rows if r["valid"] == "True"]
    assert len(good) == len(rows) - 2 and all(r["params"] and r["gflops"] for r in good)
    last = rows[-1]  # the endpoint minus its own step is its parent
    assert last["same_as_step"] == end.parent == "bn_to_ln"
    assert [r for r in rows if r["same_as_step"]] == [last]


def test_a_three_factor_factorial_lists_eight_points(capsys) -> None:
    factors = MICRO[:3]
    rows = _csv(capsys, "factorial", "--track", TRACK, "--factors", ",".join(factors))
    assert len(rows) == 8 == len({r["point"] for r in rows})
    levels = {r["levels"] for r in rows}
    expected = {
        " ".join(f"{f}={v:+d}" for f, v in zip(factors, combo, strict=True))
        for combo in itertools.product((-1, 1), repeat=3)
    }
    assert levels == expected
    assert sum(r["same_as_step"] == endpoint(TRACK) for r in rows) == 1


@pytest.mark.parametrize("track", list(TRACKS))
def test_every_point_name_parses_back_to_its_spec(track: str) -> None:
    factors = [s.name for s in on_path(track)][-3:]
    for name in DESIGNS:
        for point in design_points(name, track, factors if name == "factorial" else ()):
            assert parse_point(point.name, track).spec == point.spec
            if point.valid:
                assert point_spec(point.name, track) == point.spec
            else:  # a point that breaks a constraint is no run's spec
                with pytest.raises(ValueError, match="is invalid: constraint"):
                    point_spec(point.name, track)
            assert "-" not in point.run_name or not point.same_as_step


def test_add_one_in_starts_at_the_first_step_and_meets_the_path() -> None:
    points = design_points("add-one-in", TRACK)
    first, second = steps(TRACK)[0], on_path(TRACK)[1]
    assert all(p.base == first.name for p in points)
    assert points[0].same_as_step == second.name  # the first step plus the next is the next


def test_planned_steps_run_each_spec_once_with_the_base_first() -> None:
    chosen, invalid = planned_steps("leave-one-out", TRACK)
    assert chosen[0].name == endpoint(TRACK) and len(invalid) == 2
    assert len({s.name for s in chosen}) == len(chosen)
    assert len({s.spec for s in chosen}) == len(chosen)
    points = [s for s in chosen if s.index == 0]
    assert all(not s.on_path and "-minus-" in s.name for s in points)


def test_a_point_the_spec_refuses_is_invalid_and_skipped(monkeypatch, capsys) -> None:
    original = ArchSpec.__post_init__
    end = get_step(endpoint(TRACK), TRACK).spec

    def refuse(self: ArchSpec) -> None:
        original(self)
        if self.act != end.act and self.norm != end.norm:
            raise ValueError(f"ArchSpec.norm {self.norm!r} needs act {end.act!r}\nmore")

    monkeypatch.setattr(ArchSpec, "__post_init__", refuse)
    factors = ["relu_to_gelu", "bn_to_ln"]
    rows = _csv(capsys, "factorial", "--track", TRACK, "--factors", ",".join(factors))
    bad = [r for r in rows if r["valid"] == "False"]
    assert len(bad) == 1 and bad[0]["reason"] == "ArchSpec.norm 'bn' needs act 'gelu'"
    assert bad[0]["params"] == "" and bad[0]["gflops"] == ""
    chosen, invalid = planned_steps("factorial", TRACK, factors)
    assert [p.name for p in invalid] == [bad[0]["point"]]
    assert bad[0]["point"] not in {s.name for s in chosen} and len(chosen) == 3


def test_a_half_fraction_needs_resolution_four() -> None:
    five = [s.name for s in on_path(TRACK)][-5:]
    points = design_points("factorial", TRACK, five, fraction=2)
    assert len(points) == 16
    assert all(math.prod(p.levels.values()) == 1 for p in points)
    four = design_points("factorial", TRACK, five[:4], fraction=2)  # 2^(4-1), I = ABCD
    assert len(four) == 8 and all(math.prod(p.levels.values()) == 1 for p in four)
    with pytest.raises(ValueError, match="resolution 3"):
        design_points("factorial", TRACK, five[:3], fraction=2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["factorial", "--factors", "relu_to_gelu"], "two or more steps"),
        (["factorial", "--factors", "relu_to_gleu,bn_to_ln"], "Did you mean 'relu_to_gelu'"),
        (["leave-one-out", "--factors", "relu_to_gelu,bn_to_ln"], "--factors is for"),
        (["factorial", "--factors", f"{steps(TRACK)[0].name},bn_to_ln"], "changes no spec"),
    ],
)
def test_bad_design_options_are_one_line(argv, message, capsys) -> None:
    assert main(["design", "show", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_new_step_joins_every_design_with_no_code(table, capsys) -> None:
    table(Row("expansion_3", "micro design", True, {"expansion": 3}, (TRACK,)))
    assert endpoint(TRACK) == "expansion_3"
    rows = _csv(capsys, "leave-one-out", "--track", TRACK)
    assert len(rows) == len(on_path(TRACK)) - 1
    assert rows[-1]["point"] == "expansion_3-minus-expansion_3"
    assert rows[-1]["same_as_step"] == get_step("expansion_3", TRACK).parent
    points = design_points("factorial", TRACK, ["expansion_3", "bn_to_ln"])
    assert len(points) == 4 and {p.base for p in points} == {"expansion_3"}


def test_a_point_is_a_run_train_and_sweep_agree_on(tmp_path: Path, tiny_overrides) -> None:
    point = design_points("leave-one-out", TRACK)[0]
    identity = run_identity(TRACK, point.name, 0, "smoke", overrides=tiny_overrides)
    spec = ArchSpec.from_dict(identity["spec"])
    assert spec == point.spec  # the point's spec, unchanged (the recipe holds drop path)
    out = tmp_path / TRACK / point.name / "seed0"
    prepare_run(TRACK, point.name, 0, "smoke", out, overrides=tiny_overrides)
    factors = ("relu_to_gelu", "bn_to_ln")
    request = Request(
        root=tmp_path,
        preset="smoke",
        seeds="0,1",
        overrides=tuple(tiny_overrides),
        design="factorial",
        factors=factors,
        dry_run=True,
    )
    plan = make_plan(request)
    names = {r.step.name for r in plan.runs}
    assert len(plan.runs) == 8 and len(names) == 4 and endpoint(TRACK) in names
    assert all(r.run_dir == tmp_path / TRACK / r.step.name / f"seed{r.seed}" for r in plan.runs)
    request = Request(root=tmp_path, preset="smoke", seeds="0", overrides=tuple(tiny_overrides))
    assert make_plan(request).runs  # the path plans as ever beside a design point's run
    with pytest.raises(ValueError, match="need --design"):
        make_plan(Request(root=tmp_path, preset="smoke", factors=factors))


def test_a_found_point_run_is_not_planned_again(tmp_path: Path, tiny_overrides) -> None:
    point = design_points("leave-one-out", TRACK)[0]
    out = tmp_path / "elsewhere" / "x" / "seed0"
    prepare_run(TRACK, point.name, 0, "smoke", out, overrides=tiny_overrides)
    request = Request(
        root=tmp_path,
        preset="smoke",
        seeds="0",
        overrides=tuple(tiny_overrides),
        design="leave-one-out",
    )
    runs = {r.step.name: r for r in make_plan(request).runs}
    assert runs[point.name].run_dir == out  # found by its identity, wherever its folder is


@pytest.mark.parametrize("track", ["resnet50", "resnet200"])
def test_a_step_whose_field_a_later_step_sets_again_is_still_held(track: str) -> None:
    # patchify_stem's stem norm (off) is turned on by separate_downsampling, and on resnet200
    # stage_ratio_and_width_84's width is width_128's: the endpoint holds both steps all the same.
    moved = [p.moves[0][1] for p in design_points("leave-one-out", track)]
    assert moved == [s.name for s in on_path(track)[1:]]
    point = next(p for p in design_points("leave-one-out", track) if "patchify" in p.name)
    assert (point.spec.stem, point.spec.stem_norm) == ("resnet", True)
