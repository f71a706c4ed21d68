"""The step table explains its mistakes, names its tracks, and keeps tuple fields by type."""

import importlib
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from roadmap.registry import MODEL_NAMES
from roadmap.spec import TUPLE_FIELDS, ArchSpec
from roadmap.steps import (
    R50,
    R200,
    STEP_TABLE,
    TRACKS,
    Row,
    StepTableError,
    step_names,
    steps,
)

# The module itself (`roadmap.steps` as an attribute is the package's function `steps`).
steps_module = importlib.import_module("roadmap.steps")


@pytest.fixture
def table(monkeypatch):
    """Add rows to the step table for one test (the resolved tracks are cached: cleared)."""

    def add(*rows: Row) -> None:
        monkeypatch.setattr(steps_module, "STEP_TABLE", STEP_TABLE + rows)
        steps_module._resolve.cache_clear()

    yield add
    steps_module._resolve.cache_clear()


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            Row("kernel_3x", "large kernel", False, {"kernel": 3}, (R50,)),
            "step table, track 'resnet50', step 'kernel_3x': ArchSpec has no field "
            "'kernel' (did you mean 'kernel_size'?)",
        ),
        (
            Row("kernel_4", "large kernel", False, {"kernel_size": 4}, (R50,)),
            "step table, track 'resnet50', step 'kernel_4': ArchSpec.kernel_size must be "
            "an odd int >= 1 (same padding), got 4",
        ),
        (
            Row("wide", "macro desing", True, {"width": 128}, (R50,)),
            "step table, track 'resnet50', step 'wide': unknown group 'macro desing' "
            "(did you mean 'macro design'?)",
        ),
        (
            Row("kernel_7_again", "large kernel", False, {"kernel_size": 7}, (R50,)),
            "step table, track 'resnet50', step 'kernel_7_again': kernel_size=7 changes nothing "
            "(the spec it starts from has it)",
        ),
        (
            Row("nothing", "micro design", False, {}, (R50,)),
            "step table, track 'resnet50', step 'nothing': changes nothing (it sets no ArchSpec "
            "field)",
        ),
        (
            Row("dw", "resnext-ify", True, {"depthwise": True}, ("resnet5",)),
            "step table, step 'dw': tracks must be among ('resnet50', 'resnet200'), got "
            "('resnet5',) (did you mean 'resnet50'?)",
        ),
    ],
)
def test_a_mistake_is_one_line_naming_track_step_and_field(table, row, expected):
    table(row)
    with pytest.raises(StepTableError) as err:
        steps(R50)
    assert str(err.value) == expected and "\n" not in str(err.value)


def test_a_mistake_on_one_track_leaves_the_other_usable(table):
    table(Row("kernel_4", "large kernel", False, {"kernel_size": 4}, (R200,)))
    assert steps(R50)  # the row is not on this track
    with pytest.raises(StepTableError, match="track 'resnet200', step 'kernel_4'"):
        steps(R200)


def _roadmap_with_bad_row(*argv: str) -> subprocess.CompletedProcess:
    """Run `roadmap ARGV` with a misspelt field added to the table before any command loads."""
    code = textwrap.dedent(
        """
        import importlib, sys
        s = importlib.import_module("roadmap.steps")
        bad = s.Row("grn", "micro design", False, {"depthwse": True}, (s.R50,))
        s.STEP_TABLE = (*s.STEP_TABLE, bad)
        from roadmap.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False
    )


def test_help_still_works_and_commands_report_the_mistake_in_one_line():
    helped = _roadmap_with_bad_row("--help")
    assert helped.returncode == 0, helped.stderr
    assert "staircase" in helped.stdout and helped.stderr == ""
    failed = _roadmap_with_bad_row("steps")
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [
        "roadmap steps: error: step table, track 'resnet50', step 'grn': ArchSpec has no "
        "field 'depthwse' (did you mean 'depthwise'?)"
    ]


def test_a_row_is_on_exactly_the_tracks_it_names(table):
    table(Row("only_50", "micro design", False, {"kernel_size": 5}, (R50,)))
    assert "only_50" in step_names(R50) and "only_50" not in step_names(R200)
    assert steps(R50)[-1].name == "only_50" and steps(R50)[-1].parent is not None
    for track in TRACKS:
        expected = [r.name for r in steps_module.STEP_TABLE if track in r.tracks]
        assert step_names(track) == expected


def test_every_step_has_a_timm_name_on_its_own_tracks_only():
    assert MODEL_NAMES == [f"{t}_{name}" for t in TRACKS for name in step_names(t)]


def test_tuple_fields_are_found_by_type_and_round_trip_through_json():
    assert "depths" in TUPLE_FIELDS
    spec = ArchSpec(depths=[2, 2, 6, 2])
    assert spec.depths == (2, 2, 6, 2) and hash(spec) == hash(ArchSpec(depths=(2, 2, 6, 2)))
    with pytest.raises(ValueError, match=r"ArchSpec\.depths must be a tuple"):
        ArchSpec(depths=3)


@dataclass(frozen=True)
class _WithKernels(ArchSpec):
    """A spec with one more tuple-typed field, as a user would add it (no conversion code)."""

    stage_kernels: tuple[int, ...] = (7, 7, 7, 7)
    pairs: tuple[tuple[int, int], ...] = ((1, 2),)


def test_a_new_tuple_field_round_trips_with_no_code_of_its_own():
    spec = _WithKernels(stage_kernels=(3, 5, 7, 9), pairs=((3, 4), (5, 6)))
    back = _WithKernels.from_json(spec.to_json())
    assert back == spec and hash(back) == hash(spec)
    assert back.stage_kernels == (3, 5, 7, 9) and back.pairs == ((3, 4), (5, 6))
    assert spec.to_dict()["pairs"] == [[3, 4], [5, 6]]
