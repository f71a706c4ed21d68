"""Choosing steps: one parser (roadmap.select) and one list syntax for every `--steps`."""

from __future__ import annotations

import pytest

from roadmap.endpoints import ENDPOINTS
from roadmap.select import select_steps
from roadmap.steps import TRACKS, step_names, steps


def test_parse_steps_sets_names_and_order() -> None:
    assert [s.name for s in select_steps("all", "resnet50")] == step_names("resnet50")
    on_path = [s.name for s in select_steps("on-path", "resnet50")]
    assert on_path == [s.name for s in steps("resnet50") if s.on_path]
    assert "kernel_5" not in on_path and len(on_path) == 13
    # Roadmap order, whatever order they were given in; duplicates collapse.
    picked = select_steps("kernel_7,stage_ratio,kernel_7", "resnet50")
    assert [s.name for s in picked] == ["stage_ratio", "kernel_7"]


def test_parse_steps_unknown_name_suggests_nearest() -> None:
    with pytest.raises(ValueError, match="Did you mean 'patchify_stem'"):
        select_steps("stage_ratio,patchify_stm", "resnet50")
    with pytest.raises(ValueError, match="empty"):
        select_steps(" , ", "resnet50")


@pytest.mark.parametrize("track", list(TRACKS))
def test_commas_spaces_and_both_give_the_same_list(track: str) -> None:
    first, last = step_names(track)[0], step_names(track)[-1]
    expected = [first, last]
    for given in (f"{first},{last}", f"{first} {last}", f"{first}, {last}",
                  [first, last], [f"{first},", last], [f"{last},{first}"]):  # fmt: skip
        assert [s.name for s in select_steps(given, track)] == expected, given


@pytest.mark.parametrize("track", list(TRACKS))
def test_endpoints_are_the_steps_with_a_reference(track: str) -> None:
    names = [s.name for s in select_steps("endpoints", track)]
    assert names == [
        s.name for s in steps(track) if s.name in {e.step for e in ENDPOINTS if e.track == track}
    ]
    assert names  # every track has its endpoints


def test_a_set_name_stands_alone() -> None:
    with pytest.raises(ValueError, match="'all' stands alone"):
        select_steps("all,stage_ratio", "resnet50")
    with pytest.raises(ValueError, match="or one of: all, on-path, endpoints"):
        select_steps("kernel_77", "resnet50")
