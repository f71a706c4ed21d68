"""The steps: names and order match the paper, deltas chain, side branches stay off the path."""

import csv
from pathlib import Path

import pytest
from strict_skips import skip_or_fail

from roadmap import ArchSpec, get_step, step_names, steps
from roadmap.paper import paper_rows
from roadmap.steps import TRACKS

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper_roadmap.csv"


def _paper_steps(track):
    """The paper's rows of `track` that are steps (not the original-recipe row), in order."""
    rows = [r for r in paper_rows() if r.track == track and r.order > 0]
    return sorted(rows, key=lambda r: r.order)


@pytest.mark.parametrize("track", list(TRACKS))
def test_the_papers_steps_are_steps_in_the_papers_order(track):
    # Steps of your own may stand anywhere between them; the paper's keep its order.
    paper = [r.step for r in _paper_steps(track)]
    assert [name for name in step_names(track) if name in paper] == paper
    # every paper row is a step, except the original-recipe baseline (a recipe, not a design)
    rows = {r.step for r in paper_rows() if r.track == track}
    assert rows - set(paper) == {f"{track}_original_recipe"}


@pytest.mark.parametrize("track", list(TRACKS))
def test_group_and_path_of_each_paper_step_join_the_paper_table(track):
    for row in _paper_steps(track):
        step = get_step(row.step, track)
        assert (step.group, step.on_path) == (row.group, row.on_path), row.step


def test_resnet200_track_follows_appendix_c():
    ratio = get_step("stage_ratio_and_width_84", "resnet200").spec
    assert (ratio.depths, ratio.width) == ((3, 3, 27, 3), 84)
    assert get_step("width_128", "resnet200").spec.width == 128
    assert "width_96" not in step_names("resnet200")
    assert "width_128" not in step_names("resnet50")


@pytest.mark.parametrize("track", list(TRACKS))
def test_index_is_the_position_in_the_track(track):
    assert [s.index for s in steps(track)] == list(range(1, len(steps(track)) + 1))
    assert [s.track for s in steps(track)] == [track] * len(steps(track))


def test_shipped_paper_numbers_equal_the_shared_reference():
    if not SHARED_CSV.exists():  # outside the repository: .ci/run checks it is there
        skip_or_fail(f"reference copy not found at {SHARED_CSV} (only beside the dev tree)")
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
