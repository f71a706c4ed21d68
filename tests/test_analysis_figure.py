"""The staircase figure and the `roadmap staircase` command, on fixture records and the paper."""

import re
import xml.etree.ElementTree as ET
from itertools import pairwise

import pandas as pd
import pytest
from analysis_fixtures import build_root, write_run
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from PIL import Image

from analysis.collect import aggregate, load_runs, paper_staircase, select_runs
from analysis.figure import (
    BACK,
    DPI,
    FORMATS,
    bar_label,
    draw_staircase,
    figure_size,
    gflops_text,
    group_label,
    staircase_figure,
    step_label,
)
from roadmap.cli import main
from roadmap.paper import paper_rows
from roadmap.steps import steps

TRACK = "resnet50"
MISSING = "fewer_norms"  # a step with no run: drawn as "no runs"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    build_root(root, TRACK, seeds=(0, 1, 2), skip=((MISSING, 0), (MISSING, 1), (MISSING, 2)))
    write_run(root, TRACK, "kernel_7", 3, status="failed", reason="out of memory")
    return root


@pytest.fixture(scope="module")
def frame(root):
    return aggregate(select_runs(load_runs(root), TRACK), with_paper=True)


def _bars(ax):
    return [p for c in ax.containers if isinstance(c, BarContainer) for p in c.patches]


def test_figure_files_exist_and_decode_at_the_expected_size(tmp_path, frame):
    paths = draw_staircase(frame, tmp_path / "fig", FORMATS, overlay=True)
    assert [p.name for p in paths] == ["fig.png", "fig.pdf", "fig.svg"]
    width, height = figure_size(frame)
    with Image.open(paths[0]) as png:
        png.load()
        assert png.size == (round(width * DPI), round(height * DPI))
        assert png.convert("L").getextrema() == (
            0,
            255,
        )  # black ink on white, not blank
    pdf = paths[1].read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    svg = ET.parse(paths[2]).getroot()
    assert svg.tag.endswith("svg")
    assert float(svg.get("width").removesuffix("pt")) == pytest.approx(width * 72)


def test_rows_groups_side_branches_and_labels(frame):
    fig = staircase_figure(frame, overlay=True)
    ax = fig.axes[0]
    expected, last = [], None
    for step in steps(TRACK):
        if step.group != last:
            expected.append(group_label(step.group))
            last = step.group
        expected.append(step_label(step.name))
    ticks = ax.get_yticklabels()
    assert [t.get_text() for t in ticks] == expected
    assert {t.get_text() for t in ticks if t.get_fontweight() == "bold"} == {
        group_label(s.group) for s in steps(TRACK)
    }
    boxes = [t.get_window_extent() for t in ticks]
    assert all(a.y0 >= b.y1 - 0.5 or b.y0 >= a.y1 - 0.5 for a, b in pairwise(boxes))
    drawn = frame[frame["n"] > 0]
    hatched = [b for b in _bars(ax) if b.get_hatch()]
    assert len(_bars(ax)) == len(drawn)
    assert len(hatched) == int((~drawn["on_path"]).sum())
    texts = [t.get_text() for t in ax.texts]
    assert texts == [
        bar_label(r) if r["n"] else "  no runs" for _, r in frame[~frame["reference"]].iterrows()
    ]
    assert any("GFLOPs" in t for t in texts) and "  no runs" in texts
    axes_box = ax.get_window_extent()
    assert all(t.get_window_extent().x1 <= axes_box.x1 + 1 for t in ax.texts)


def test_error_bars_seed_dots_and_paper_marks(frame):
    fig = staircase_figure(frame, overlay=True)
    ax = fig.axes[0]
    drawn = frame[(frame["n"] > 0) & ~frame["reference"]]
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(errorbars) == len(drawn)
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    xs = sorted(x for c in dots for x in c.get_offsets()[:, 0])
    seeds = [v for values in drawn["values"] for v in values]
    paper = list(frame.loc[~frame["reference"], "paper_top1"].dropna())
    assert xs == pytest.approx(sorted(seeds + paper))


def test_a_bar_label_moves_past_a_paper_mark_it_would_cover(frame):
    near = frame.copy()  # paper marks just right of each bar's end, under its label
    near["paper_top1"] = [
        max([m + (s if s == s else 0), *v]) + 1.0
        for m, s, v in zip(near["top1_mean"], near["top1_std"], near["values"], strict=True)
    ]
    fig = staircase_figure(near, overlay=True)
    ax = fig.axes[0]
    fig.canvas.draw()
    rows = near[~near["reference"]]
    checked = 0
    for (_, row), text in zip(rows.iterrows(), ax.texts, strict=True):
        if row["n"]:
            mark = ax.transData.transform((row["paper_top1"], 0))[0]
            box = text.get_window_extent()
            assert not box.x0 - 1 < mark < box.x1 + 1, text.get_text()
            assert text.xy[0] == row["paper_top1"]
            checked += 1
    assert checked == len(rows) - 1


def test_background_track_is_drawn_behind():
    front, back = paper_staircase("resnet50"), paper_staircase("resnet200")
    ax = staircase_figure(front, background=back).axes[0]
    gray = [b for b in _bars(ax) if b.get_facecolor()[:3] == pytest.approx(_rgb(BACK))]
    assert len(gray) == int((~back["reference"]).sum())
    ends = sorted(b.get_x() + b.get_width() for b in gray)
    assert ends == pytest.approx(sorted(back.loc[~back["reference"], "top1_mean"]))


def _rgb(color: str) -> tuple[float, float, float]:
    return tuple(int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))


def test_cli_on_records(root, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["staircase", "--root", str(root), "--out", str(out), "--formats", "png"]) == 0
    printed = capsys.readouterr().out
    n = len(steps(TRACK))
    drawn = f"{n - 1} of {n} steps drawn from {3 * (n - 1)} runs ({n - 1} steps with 3 seeds)"
    assert drawn in printed
    assert f"failed: out of memory (1): {TRACK}/smoke/kernel_7/seed3" in printed
    assert f"fewer seeds than the others (3): {MISSING} (0)" in printed
    names = sorted(p.name for p in out.iterdir())
    stem = f"staircase_{TRACK}"
    stats_files = [f"stats_{TRACK}.csv", f"fidelity_{TRACK}.csv", f"fidelity_{TRACK}.png"]
    assert names == sorted(
        [f"{stem}.{s}" for s in ("png", "md", "tex", "csv")]
        + [f"{stem}_excluded.csv"]
        + stats_files
    )
    excluded = pd.read_csv(out / f"{stem}_excluded.csv")
    assert list(excluded["reason"]) == ["failed: out of memory"]
    assert "paper top-1" not in (out / f"{stem}.md").read_text()  # preset is not `paper`


def test_cli_paper_regenerates_figure_2_and_tables(tmp_path, capsys):
    out = tmp_path / "paper"
    assert main(["staircase", "--paper", "--out", str(out), "--formats", "png"]) == 0
    printed = capsys.readouterr().out
    assert "bn_to_ln GFLOPs: table 4.46, figure 4.2" in printed
    for stem in ("paper_figure2", "paper_resnet50", "paper_resnet200"):
        assert (out / f"{stem}.png").stat().st_size > 1000
    for track in ("resnet50", "resnet200"):
        md = (out / f"paper_{track}.md").read_text()
        for row in (r for r in paper_rows() if r.track == track):  # ‡ § : its assumptions
            assert re.search(rf"\| {row.step}[‡§]* \|", md) and f"{row.top1:.2f}" in md
        assert ("§ drop path 0.5 on every step" in md) == (track == "resnet200")
    with Image.open(out / "paper_figure2.png") as png:
        w, h = figure_size(paper_staircase("resnet50"))
        assert png.size == (round(w * DPI), round(h * DPI))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--paper", "--preset", "paper"], "--paper draws both tracks as published"),
        (["--root", "{root}", "--preset", "nope"], "no runs of preset 'nope'"),
        (["--root", "{root}/missing"], "no such directory"),
    ],
)
def test_cli_errors_are_clean(root, tmp_path, capsys, argv, message):
    argv = [a.format(root=root) for a in argv]
    assert main(["staircase", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_bad_formats_and_both_sources(root, tmp_path):
    for extra in (["--paper", "--formats", "gif"], ["--paper", "--root", str(root)]):
        with pytest.raises(SystemExit):
            main(["staircase", "--out", str(tmp_path), *extra])


@pytest.mark.parametrize(
    ("gflops", "text"),
    # The paper's one decimal (halves up) from 1 GFLOP; two significant digits below, where a
    # smoke run at 32 px costs 0.03-0.09 GFLOPs and one decimal would blur the steps together.
    [(4.456, "4.5"), (4.45, "4.5"), (15.35, "15.4"), (1.0, "1.0"), (0.0835, "0.084"),
     (0.0367, "0.037"), (0.09, "0.090"), (0.5, "0.50")],
)  # fmt: skip
def test_gflops_text(gflops: float, text: str) -> None:
    assert gflops_text(gflops) == text
