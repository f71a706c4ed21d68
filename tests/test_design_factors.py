"""Factors as field changes, constraints and fractions (roadmap/factors.py, constraints.py,
fractions.py): overlapping steps, multi-level factors, invalid points and their cost."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from roadmap.cli import main
from roadmap.constraints import CONSTRAINTS, invalid_reason, violations
from roadmap.designs import (
    Design,
    design_factors,
    design_points,
    endpoint,
    lost_points,
    on_path,
)
from roadmap.factors import Factor, make_factor
from roadmap.fractions import Fraction, make_fraction
from roadmap.spec import ArchSpec
from roadmap.steps import TRACKS, get_step, steps

R50, R200 = "resnet50", "resnet200"


def _end(track: str) -> ArchSpec:
    return get_step(endpoint(track), track).spec


def test_resnet200_leave_one_out_lists_every_on_path_step() -> None:
    points = design_points("leave-one-out", R200)
    assert [p.moves[0][1] for p in points] == [s.name for s in on_path(R200)[1:]]
    assert len(points) == len(design_points("leave-one-out", R50))
    sr = next(p for p in points if p.moves[0][1] == "stage_ratio_and_width_84")
    # the endpoint holds width 128 (width_128's), not 84: reverting reverts the depths alone
    assert sr.valid and sr.spec == _end(R200).replace(depths=steps(R200)[0].spec.depths)
    assert sr.changed() == {"depths": ((3, 3, 27, 3), (3, 24, 36, 3))}


def test_overlapping_steps_make_four_distinct_cells_at_the_endpoint() -> None:
    points = design_points("factorial", R200, ["stage_ratio_and_width_84", "width_128"])
    deep, shallow = _end(R200).depths, steps(R200)[0].spec.depths
    want = {
        (1, 1): _end(R200),
        (1, -1): _end(R200).replace(width=84),
        (-1, 1): _end(R200).replace(depths=shallow),
        (-1, -1): _end(R200).replace(depths=shallow, width=84),
    }
    assert {tuple(p.levels.values()): p.spec for p in points} == want
    assert want[(1, 1)].depths == deep
    factor = design_factors(R200, endpoint(R200), ["stage_ratio_and_width_84"])[0]
    assert factor.fields == ("depths",) and factor.overwritten == ("width",)


def test_shared_fields_are_refused_naming_the_field_and_the_kernel_factor(capsys) -> None:
    argv = ["design", "show", "factorial", "--track", R50, "--factors", "kernel_5,kernel_9"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "field 'kernel_size'" in err
    assert "use the factor 'kernel_size' (levels 3, 5, 7, 9, 11)" in err
    first = steps(R200)[0].name  # neither step is held there: both change width from it
    with pytest.raises(ValueError, match="both set field 'width'"):
        design_factors(R200, first, ["stage_ratio_and_width_84", "width_128"])


def test_a_multi_level_factor_crosses_kernel_sizes_with_a_toggle() -> None:
    points = design_points("factorial", R50, ["kernel_size", "bn_to_ln"])
    want = {
        (str(k), lv): _end(R50).replace(kernel_size=k, norm="ln" if lv == 1 else "bn")
        for k, lv in itertools.product((3, 5, 7, 9, 11), (-1, 1))
    }
    assert {tuple(p.levels.values()): p.spec for p in points} == want
    assert all(p.valid for p in points) and len({p.name for p in points}) == 10
    assert [lv.code for lv in make_factor("kernel_size", R50, _end(R50)).levels] == [
        "3", "5", "7", "9", "11",
    ]  # fmt: skip


def test_every_step_keeps_every_constraint_and_a_broken_one_is_named() -> None:
    for track in TRACKS:
        for step in steps(track):
            assert violations(step.spec) == [], (track, step.name)
    bad = ArchSpec(fewer_norms=True)  # a ResNet bottleneck with one norm
    assert [c.name for c in violations(bad)] == [c.name for c in CONSTRAINTS]
    assert invalid_reason(bad).startswith("constraint fewer_norms_needs_inverted_bottleneck")
    assert all("modeling_resnet.py" in c.source for c in CONSTRAINTS)
    ok = ArchSpec(fewer_norms=True, inverted_bottleneck=True, dwconv_first=True)
    assert invalid_reason(ok) == ""


def test_a_factorial_that_breaks_a_constraint_says_what_it_loses() -> None:
    points = design_points("factorial", R50, ["move_up_dwconv", "fewer_norms"])
    bad = [p for p in points if not p.valid]
    assert [dict(p.levels) for p in bad] == [{"move_up_dwconv": -1, "fewer_norms": 1}]
    assert "fewer_norms_needs_dwconv_first" in bad[0].reason
    assert "loses 1 cell" in lost_points(points)
    assert lost_points(design_points("factorial", R50, ["relu_to_gelu", "bn_to_ln"])) == ""


def _resolution_from_rows(rows: np.ndarray) -> int:
    """The shortest set of columns whose product is constant (an oracle for the generators)."""
    k = rows.shape[1]
    for r in range(1, k + 1):
        for cols in itertools.combinations(range(k), r):
            if len(set(np.prod(rows[:, cols], axis=1))) == 1:
                return r
    return k + 1


@pytest.mark.parametrize(("k", "p", "runs"), [(4, 1, 8), (5, 1, 16), (6, 2, 16), (7, 3, 16)])
def test_fractions_have_the_resolution_their_runs_show(k: int, p: int, runs: int) -> None:
    fraction = make_fraction(k, p)
    rows = np.array(fraction.rows())
    assert rows.shape == (runs, k) and len({tuple(r) for r in rows}) == runs
    assert fraction.resolution == _resolution_from_rows(rows) >= 4
    assert (rows.sum(axis=0) == 0).all()  # balanced columns


def test_a_fraction_under_resolution_four_is_refused_and_aliases_are_named() -> None:
    with pytest.raises(ValueError, match="resolution 3"):
        make_fraction(5, 2)
    aliases = make_fraction(4, 1).aliases(["A", "B", "C", "D"])
    assert "A*B = C*D" in aliases and "A = B*C*D" in aliases


def test_factors_and_fractions_round_trip_through_json() -> None:
    for name, track in [("kernel_size", R50), ("stage_ratio_and_width_84", R200)]:
        factor = make_factor(name, track, _end(track))
        assert Factor.from_dict(json.loads(json.dumps(factor.to_dict()))) == factor
    fraction = make_fraction(6, 2)
    assert Fraction.from_dict(json.loads(json.dumps(fraction.to_dict()))) == fraction


def test_a_design_round_trips_through_json_and_notices_a_changed_table() -> None:
    design = Design("factorial", R50, ("relu_to_gelu", "fewer_norms", "bn_to_ln", "kernel_7"),
                    fraction=2)  # fmt: skip
    data = json.loads(json.dumps(design.to_dict()))
    assert data["base"] == endpoint(R50) and data["generators"]["generators"][-1] == "abc"
    assert len(data["points"]) == 8 and len(data["resolved_factors"]) == 4
    assert Design.from_dict(data) == Design(**{**design.__dict__, "base": endpoint(R50)})
    data["points"][0]["name"] = "separate_downsampling-minus-width_96"
    with pytest.raises(ValueError, match="its points changed since it was written"):
        Design.from_dict(data)
