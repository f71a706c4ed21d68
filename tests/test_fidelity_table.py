"""docs/fidelity.md is what docs/measurements/fidelity_table.py prints from the built models now."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "fidelity.md"


def _script():
    path = REPO / "docs" / "measurements" / "fidelity_table.py"
    spec = importlib.util.spec_from_file_location("fidelity_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _section(track: str) -> str:
    """The page's section of `track`, as the script writes it (up to the next section)."""
    text = PAGE.read_text()
    return text.split(f"## {track}\n", 1)[1].split("\n## ", 1)[0].rstrip("\n")


def test_the_page_is_the_scripts_head_and_sections_in_order():
    script = _script()
    assert PAGE.read_text().startswith(script.HEAD)
    assert [line[3:] for line in PAGE.read_text().splitlines() if line.startswith("## ")] == [
        "resnet50",
        "resnet200",
    ]


def test_the_resnet50_table_is_what_the_script_measures_now():
    assert "## resnet50\n" + _section("resnet50") == _script().track_table("resnet50")


@pytest.mark.slow
def test_the_whole_page_is_what_the_script_prints_now():
    assert PAGE.read_text() == _script().render()


def test_every_paper_step_and_final_norm_have_the_papers_words_and_the_authors_flag():
    from roadmap.paper import paper_row
    from roadmap.steps import TRACKS, steps

    names = {s.name for t in TRACKS for s in steps(t) if paper_row(t, s.name)} | {"final_norm"}
    assert names == set(_script().PAPER_AND_FLAGS)
    lines = PAGE.read_text().splitlines()
    rows = [line.split(" | ")[1] for line in lines if line.startswith("| 1 |")]
    assert rows[:2] == ["`resnet50_modern_recipe`", "`resnet200_modern_recipe` *"]
