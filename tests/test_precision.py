"""A bar's precision, from its runs' records, in the tables and the figure; the --paper marks.

The expected labels are written out by hand from what each fixture run records (its recipe's
`amp_dtype` and its result's `device`); the CPU rule is checked against the trainer's own
`RankContext`, not against `analysis.precision`.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
import torch
from analysis_fixtures import RECIPE, write_run

from analysis.assumptions import mark_assumptions
from analysis.collect import aggregate, load_runs, paper_staircase, select_runs
from analysis.figure import figure_size, staircase_figure
from analysis.precision import run_precision
from analysis.table import to_csv, to_latex, to_markdown
from experiments.recipe import resolve_recipe, run_recipe
from experiments.train.distributed import RankContext
from roadmap.assumptions import ASSUMPTIONS
from roadmap.paper import paper_rows
from roadmap.steps import steps

TRACK = "resnet50"
FIRST, SECOND, THIRD, FOURTH = (s.name for s in steps(TRACK)[:4])


def _run(root: Path, step: str, seed: int, amp: str, device: str = "cuda:0") -> None:
    """A done run of preset `paper` whose recorded recipe autocasts to `amp` on `device`."""
    recipe = {**RECIPE, "amp_dtype": amp}
    write_run(root, TRACK, step, seed, preset="paper", recipe=recipe, device=device)


def _precisions(frame: pd.DataFrame) -> dict[str, str]:
    return {s: p for s, p in zip(frame["step"], frame["precision"], strict=True) if p}


def test_a_runs_precision_is_its_recipes_autocast_on_cuda_and_float32_elsewhere() -> None:
    assert run_precision("bfloat16", "cuda:0") == "bf16"
    assert run_precision("float16", None) == "fp16"  # no device recorded: the recipe's
    assert run_precision("float32", "cuda:1") == "fp32"
    assert run_precision("bfloat16", "cpu") == "fp32"
    assert run_precision(None, "cuda:0") == ""  # not recorded: not guessed
    # The trainer's own rule: a CPU rank never autocasts, whatever its recipe asks.
    ctx = RankContext.start(resolve_recipe("smoke", ["recipe.amp_dtype=bfloat16"]))
    assert ctx.device.type == "cpu" and ctx.amp_dtype == torch.float32


def test_each_bar_says_its_runs_precision_and_mixed_where_they_differ(tmp_path: Path) -> None:
    for seed in (0, 1):
        _run(tmp_path, FIRST, seed, "bfloat16")
        _run(tmp_path, SECOND, seed, "float32")
        _run(tmp_path, FOURTH, seed, "bfloat16", device="cpu")
    _run(tmp_path, THIRD, 0, "bfloat16")
    _run(tmp_path, THIRD, 1, "float32")
    frame = aggregate(select_runs(load_runs(tmp_path), TRACK, allow_mixed=True))
    expected = {FIRST: "bf16", SECOND: "fp32", THIRD: "mixed", FOURTH: "fp32"}
    assert _precisions(frame) == expected
    md = to_markdown(frame).splitlines()
    assert md[0].startswith("| step | group | on path | GFLOPs | params | precision | top-1 |")
    assert any(line.startswith(f"| {THIRD} |") and "| mixed |" in line for line in md)
    assert any(line.startswith(f"| {FIRST} |") and "| bf16 |" in line for line in md)
    assert " & precision & " in to_latex(frame)
    back = pd.read_csv(io.StringIO(to_csv(frame)), keep_default_na=False)
    assert _precisions(back) == expected
    fig = staircase_figure(frame, title="ResNet-50")
    assert fig.get_suptitle() == "ResNet-50\nprecision mixed: bf16, fp32 (per bar)"
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert any(label.endswith(" · mixed") for label in labels)
    assert any(label.endswith(" · bf16") for label in labels)


def test_a_bar_trained_in_bf16_says_so_whatever_the_preset_is_today(tmp_path: Path) -> None:
    assert resolve_recipe("paper").amp_dtype == "float32"  # today's preset
    for step in (FIRST, SECOND):
        for seed in (0, 1):
            _run(tmp_path, step, seed, "bfloat16")  # recorded before the preset changed
    frame = aggregate(select_runs(load_runs(tmp_path), TRACK))
    assert _precisions(frame) == {FIRST: "bf16", SECOND: "bf16"}
    fig = staircase_figure(frame, title="ResNet-50")
    assert fig.get_suptitle() == "ResNet-50\nprecision bf16"
    assert not any(t.get_text().endswith("bf16") for t in fig.axes[0].texts)  # said once


def test_the_paper_staircase_records_no_precision() -> None:
    frame = paper_staircase(TRACK)
    assert set(frame["precision"]) == {""}
    assert "precision" not in to_markdown(frame).splitlines()[0]
    assert "precision" not in staircase_figure(frame).get_suptitle()


def test_the_paper_resnet200_table_marks_the_tracks_assumptions() -> None:
    frame = mark_assumptions(paper_staircase("resnet200"))
    md = to_markdown(frame)
    assert "| resnet200_original_recipe‡ | baseline | ref |" in md
    assert "| resnet200_modern_recipe‡§ | baseline | yes |" in md  # trains the v1.5 model
    assert "| kernel_5§ | large kernel | side |" in md  # side branches train with it too
    assert "| separate_downsampling§ | micro design | yes |" in md
    notes = [line for line in md.splitlines() if line.startswith(("‡", "§"))]
    assert len(notes) == 2
    assert notes[0].startswith("‡ Table 11's 78.20 is the pre-activation ResNet-200 of He et al.")
    assert notes[1].startswith("§ drop path 0.5 on every step: inferred from ConvNeXt-B")
    tex = to_latex(frame)
    assert "resnet200\\_original\\_recipe$^\\ddagger$ &" in tex
    assert "{\\footnotesize $^\\S$ drop path 0.5 on every step" in tex
    back = pd.read_csv(io.StringIO(to_csv(frame)), keep_default_na=False)
    assert back.loc[0, "assumptions"].startswith("Table 11's 78.20")
    # The resnet50 track assumes nothing: its marked table is its plain one.
    plain = paper_staircase(TRACK)
    assert to_markdown(mark_assumptions(plain)) == to_markdown(plain)


def test_the_drop_path_footnote_is_what_the_recipe_trains_the_track_with() -> None:
    rate = run_recipe(resolve_recipe("paper"), "resnet200").drop_path
    (drop,) = [a for a in ASSUMPTIONS["resnet200"] if "drop path" in a.text]
    assert drop.text.startswith(f"drop path {rate:g} on every step")
    names = {(r.track, r.step) for r in paper_rows()}
    for track, entries in ASSUMPTIONS.items():
        for entry in entries:
            assert all((track, step) in names for step in entry.steps or ())


def test_the_paper_resnet200_figure_marks_its_bars_and_prints_the_footnote() -> None:
    plain = paper_staircase("resnet200")
    frame = mark_assumptions(plain)
    fig = staircase_figure(frame)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "separate downsampling§" in ticks and "Baseline" in ticks
    titles = [legend.get_title().get_text() for legend in fig.legends]
    assert "resnet200 modern recipe‡§" in ticks  # the baseline bar trains the v1.5 model
    assert any("\n§ drop path 0.5 on every step" in t for t in titles)
    assert any(t.startswith("‡ Table 11's 78.20 is the pre-activation") for t in titles)
    assert figure_size(frame)[1] > figure_size(plain)[1]


@pytest.mark.parametrize("track", ["resnet50", "resnet200"])
def test_a_staircase_of_runs_carries_no_assumption_marks(tmp_path: Path, track: str) -> None:
    write_run(tmp_path, track, steps(track)[0].name, 0, preset="paper")
    md = to_markdown(aggregate(select_runs(load_runs(tmp_path), track)))
    assert "‡" not in md and "§" not in md
