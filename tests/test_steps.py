"""The steps: names and order match the paper, deltas chain, side branches stay off the path."""

import csv
import os
from pathlib import Path

import pytest

from roadmap import ArchSpec, get_step, step_names, steps
from roadmap.paper import paper_rows
from roadmap.steps import TRACKS

SHARED_CSV = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper_roadmap.csv"
)

RESNET50 = [
    "resnet50_modern_recipe", "stage_ratio", "patchify_stem", "depthwise_conv", "width_96",
    "inverted_bottleneck", "move_up_dwconv", "kernel_5", "kernel_7", "kernel_9", "kernel_11",
    "relu_to_gelu", "fewer_activations", "fewer_norms", "bn_to_ln", "separate_downsampling",
]  # fmt: skip


def test_resnet50_step_names_in_roadmap_order():
    assert step_names("resnet50") == RESNET50


def test_resnet200_track_follows_appendix_c():
    names = step_names("resnet200")
    assert names[:2] == ["resnet200_modern_recipe", "stage_ratio_and_width_84"]
    assert names[4] == "width_128"
    assert names[2:] == [("width_128" if n == "width_96" else n) for n in RESNET50[2:]]
    assert get_step("stage_ratio_and_width_84", "resnet200").spec.depths == (
        3,
        3,
        27,
        3,
    )
    assert get_step("stage_ratio_and_width_84", "resnet200").spec.width == 84
    assert get_step("width_128", "resnet200").spec.width == 128


@pytest.mark.parametrize("track", list(TRACKS))
def test_names_index_group_and_path_join_the_paper_table(track):
    paper = {r.step: r for r in paper_rows() if r.track == track}
    for step in steps(track):
        row = paper[step.name]
        assert (step.index, step.group, step.on_path) == (
            row.order,
            row.group,
            row.on_path,
        )
    # every paper row is a step, except the original-recipe baseline (a recipe, not a design)
    assert set(paper) - set(step_names(track)) == {f"{track}_original_recipe"}


def test_shipped_paper_numbers_equal_the_shared_reference():
    if not SHARED_CSV.exists():
        # CI lays shared/ beside the clone; elsewhere (an installed copy) it may be absent.
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the reference copy is missing: {SHARED_CSV}")
        pytest.skip(f"reference copy not found at {SHARED_CSV} (only in the dev tree)")
    shipped = Path(__file__).resolve().parents[1] / "roadmap/data/paper_roadmap.csv"
    assert shipped.read_text() == SHARED_CSV.read_text()
    assert len(list(csv.DictReader(SHARED_CSV.open()))) == len(paper_rows())


@pytest.mark.parametrize("track", list(TRACKS))
def test_consecutive_on_path_specs_differ_exactly_by_the_delta(track):
    path = [s for s in steps(track) if s.on_path]
    for prev, cur in zip(path, path[1:], strict=False):
        assert cur.parent == prev.name
        diff = prev.spec.diff(cur.spec)
        assert diff, f"{cur.name} changes nothing"
        assert {k: v[1] for k, v in diff.items()} == dict(cur.changes)


@pytest.mark.parametrize("track", list(TRACKS))
def test_side_branches_start_from_the_path_and_do_not_carry_forward(track):
    by_name = {s.name: s for s in steps(track)}
    expected_parent = {"kernel_5": "move_up_dwconv", "kernel_9": "kernel_7",
                       "kernel_11": "kernel_7"}  # fmt: skip
    for name, parent in expected_parent.items():
        side = by_name[name]
        assert not side.on_path and side.parent == parent
        assert side.spec == by_name[parent].spec.replace(**side.changes)
        # all kernel sizes are alternatives to the same moved-up block
        assert side.spec == by_name["move_up_dwconv"].spec.replace(**side.changes)
    assert not any(s.parent in expected_parent for s in steps(track))
    assert by_name["kernel_7"].parent == "move_up_dwconv"
    assert by_name["relu_to_gelu"].parent == "kernel_7"
    assert by_name["relu_to_gelu"].spec.kernel_size == 7


def test_first_step_is_the_default_spec_and_last_is_convnext_t():
    assert get_step("resnet50_modern_recipe").spec == ArchSpec()
    last = get_step("separate_downsampling").spec
    assert (last.depths, last.width, last.kernel_size, last.norm, last.act) == (
        (3, 3, 9, 3), 96, 7, "ln", "gelu",
    )  # fmt: skip


def test_unknown_step_suggests_the_nearest_name():
    with pytest.raises(ValueError, match="Did you mean 'kernel_7'"):
        get_step("kernel7")
    with pytest.raises(ValueError, match="unknown track"):
        steps("vgg16")
