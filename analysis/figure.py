"""The staircase figure: the look of the paper's Figure 2, rebuilt from a staircase frame.

Horizontal bars in roadmap order under bold group headers, top-1 on x (bars start at the
axis), the seed spread as an error bar (mean +- std) and one dot per seed, GFLOPs written
at each bar, side branches hatched, optional paper markers and an optional background track
drawn as wide gray bars behind (the paper's ResNet-200 regime). The bars' precision is a line
under the title (`analysis.precision`; per bar where it differs), and a frame marked with its
track's assumptions (`analysis.assumptions`) shows their marks and footnotes. One column wide
by default (`COLUMN_WIDTH_IN` at `DPI`), so that it reads at paper-column size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import matplotlib as mpl
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from analysis.assumptions import bar_footnotes, row_marks
from analysis.figure_fit import Label, fit_right
from analysis.precision import figure_precision, varies
from analysis.table import MARKS, gflops_cell
from analysis.table import mark as verdict_mark
from roadmap.errors import UserError

FORMATS = ("png", "pdf", "svg")
COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper
DPI = 300
ROW_IN = 0.14  # height of one row (a step or a group header)
EXTRA_IN = 0.95  # title, x axis and legend
NOTE_IN = 0.09  # one line of a footnote
COLOR = "#3b6ea8"
LIGHT = "#c9d8ea"
BACK = "#d9d9d9"
PAPER = "#c0392b"
TICK_STEPS = [1, 2, 5, 10]  # x ticks at whole, even or 5-multiple values
# Display names of groups where capitalising is not enough.
GROUP_LABELS = {"resnext-ify": "ResNeXt-ify"}
HATCH = "//////"  # side branches
# Legend keys, in the look of the bars and marks that `_draw_row` draws.
SIDE_KEY = {"facecolor": LIGHT, "edgecolor": COLOR, "hatch": HATCH, "lw": 0.4}
SPREAD_KEY = {"color": "black", "lw": 0.6, "marker": "|", "markersize": 3}
SEED_KEY = {"ls": "", "marker": "o", "markersize": 1.5, "color": "black"}
PAPER_KEY = {
    "ls": "",
    "marker": "D",
    "markersize": 2.5,
    "markerfacecolor": "white",
    "markeredgecolor": PAPER,
    "markeredgewidth": 0.6,
}
STYLE = {
    "font.size": 6.5,
    "axes.linewidth": 0.5,
    "xtick.major.width": 0.5,
    "ytick.major.width": 0,
    "xtick.major.size": 2,
    "ytick.major.size": 0,
    "hatch.linewidth": 0.5,
    "pdf.fonttype": 42,
    "svg.fonttype": "path",
}

# The legend's words for each verdict's mark (`analysis.pooled.verdict`).
VERDICT_LEGEND = {
    "significant": "significant (Holm)",
    "equivalent": "equivalent (TOST)",
    "n.s.": "n.s.",
}
Rows = list[tuple[str, pd.Series | None]]  # `_layout`: (label, step row or None)


def step_label(name: str) -> str:
    """A step name as a bar label: `bn_to_ln` -> `bn → ln`, `kernel_5` -> `kernel 5`."""
    return name.replace("_to_", " → ").replace("_", " ")


def group_label(group: str) -> str:
    """A group name as a header: `macro design` -> `Macro design`."""
    return GROUP_LABELS.get(group, group[:1].upper() + group[1:])


def _layout(frame: pd.DataFrame) -> Rows:
    """Rows top to bottom: ("header", None) before each group, then ("step", row)."""
    rows: Rows = []
    last = None
    for _, row in frame[~frame["reference"]].sort_values("index").iterrows():
        if row["group"] != last:
            rows.append((group_label(row["group"]), None))
            last = row["group"]
        rows.append((step_label(row["step"]) + row_marks(row), row))
    return rows


def figure_size(frame: pd.DataFrame, width: float = COLUMN_WIDTH_IN) -> tuple[float, float]:
    """Width and height (inches) of the staircase of `frame`."""
    notes = len(bar_footnotes(frame, width / COLUMN_WIDTH_IN))
    return width, round(len(_layout(frame)) * ROW_IN + EXTRA_IN + notes * NOTE_IN, 2)


def _ends(row: pd.Series) -> list[float]:
    """Every x value drawn on a row (mean, mean +- std, seeds, paper value)."""
    mean, std = row["top1_mean"], row["top1_std"]
    out = [mean] + ([mean - std, mean + std] if pd.notna(std) else []) + list(row["values"])
    return [v for v in out if pd.notna(v)]


def one_decimal(value: float) -> str:
    """`value` to one decimal, halves rounded up as the paper's figure does (80.35 -> 80.4)."""
    return str(Decimal(repr(float(value))).quantize(Decimal("0.1"), ROUND_HALF_UP))


def gflops_text(value: float) -> str:
    """GFLOPs as the paper writes them (one decimal); below 1, two significant digits.

    Smoke runs at 32 px cost 0.03-0.11 GFLOPs: one decimal would print them all as 0.0 or 0.1.
    Below 1 the label reads as the table's cell (`analysis.table.gflops_cell`: 0.090).
    """
    return one_decimal(value) if value >= 1 else gflops_cell(value)


def bar_label(row: pd.Series, precision: bool = False) -> str:
    """The text at a bar's end: top-1 mean (one decimal), the verdict's mark, and GFLOPs.

    `precision`: the bar's precision too (where the bars of a figure differ in it).
    """
    gflops = "" if pd.isna(row["gflops"]) else f" · {gflops_text(row['gflops'])} GFLOPs"
    own = f" · {row['precision']}" if precision and row.get("precision") else ""
    return f"{one_decimal(row['top1_mean'])}{verdict_mark(row)}{gflops}{own}"


def draw_staircase(
    frame: pd.DataFrame,
    stem: str | os.PathLike,
    formats: Sequence[str] = FORMATS,
    **options: Any,
) -> list[Path]:
    """Draw the staircase of `frame` to `stem.<fmt>` for each format; return the paths.

    `options` are the keyword arguments of `staircase_figure`.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UserError(f"formats must be among {FORMATS}, got {list(formats)}")
    with mpl.rc_context(STYLE):
        fig = staircase_figure(frame, **options)
    return save_figure(fig, stem, formats)


def save_figure(fig: Figure, stem: str | os.PathLike, formats: Sequence[str]) -> list[Path]:
    """Write `fig` to `stem.<fmt>` for each format, in the house style; return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
    with mpl.rc_context(STYLE):
        for path in paths:
            fig.savefig(path, dpi=DPI, metadata=file_metadata(path.suffix))
    return paths


def file_metadata(suffix: str) -> dict[str, str | None]:
    """File metadata without creation dates, so that reruns give the same files."""
    return {".png": {"Software": None}, ".pdf": {"CreationDate": None}}.get(suffix, {"Date": None})


def staircase_figure(
    frame: pd.DataFrame,
    *,
    overlay: bool = False,
    background: pd.DataFrame | None = None,
    legend: Sequence[str] = ("adopted step", "background"),
    title: str | None = None,
    xlabel: str = "Top-1 accuracy (%)",
    width: float = COLUMN_WIDTH_IN,
) -> Figure:
    """The staircase figure of `frame`, laid out, its x range fitted to its labels.

    Args:
        frame: a staircase (`analysis.collect.aggregate` or `paper_staircase`).
        overlay: mark the paper's top-1 (`paper_top1`) on each row.
        background: a second staircase of the same steps (joined by `index`), drawn as wide
            gray bars behind, e.g. the ResNet-200 track behind ResNet-50.
        legend: labels of the foreground and background bars.
        title: a line above the axes.
        xlabel: the x axis label.
        width: figure width in inches (height follows from the number of rows).
    """
    with mpl.rc_context(STYLE):
        return _draw(frame, overlay, background, legend, title, xlabel, width)


def _draw(
    frame: pd.DataFrame,
    overlay: bool,
    background: pd.DataFrame | None,
    legend: Sequence[str],
    title: str | None,
    xlabel: str,
    width: float,
) -> Figure:
    """`staircase_figure`, inside the style context."""
    rows = _layout(frame)
    fig = Figure(figsize=figure_size(frame, width), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    back = (
        {} if background is None else {int(row["index"]): row for _, row in background.iterrows()}
    )
    xs = _x_values(rows, back, overlay)
    span = max(max(xs) - min(xs), 0.5)
    locator = MaxNLocator(nbins=6, steps=TICK_STEPS)
    left = float(locator.tick_values(min(xs) - 0.06 * span, max(xs))[0])
    labels, per_bar = [], varies(frame)
    for y, (_, row) in enumerate(rows):
        if row is None:
            if y:
                ax.axhline(y - 0.5, color="0.85", lw=0.4, zorder=0)
            continue
        back_row = back.get(int(row["index"]))
        labels.append(_draw_row(ax, y, row, back_row, left, overlay, per_bar))
    subtitle = figure_precision(frame)
    _style_axes(ax, rows, xlabel, "\n".join(t for t in (title, subtitle) if t))
    _legend(fig, rows, overlay, background is not None, legend)
    if notes := bar_footnotes(frame, width / COLUMN_WIDTH_IN):  # a legend without keys
        style = {"loc": "outside lower left", "frameon": False, "alignment": "left"}
        fig.legend(handles=[], title="\n".join(notes), title_fontsize=5, **style)
    fit_right(fig, ax, left, max(xs) + 0.04 * span, labels)
    return fig


def _x_values(rows: Rows, back: dict[int, pd.Series], overlay: bool) -> list[float]:
    """Every x value the figure draws: each row's `_ends`, paper marks, background bars."""
    xs = [x for _, row in rows if row is not None for x in _ends(row)]
    if overlay:
        xs += [
            row["paper_top1"] for _, row in rows if row is not None and pd.notna(row["paper_top1"])
        ]
    xs += [row["top1_mean"] for row in back.values() if pd.notna(row["top1_mean"])]
    if not xs:
        raise UserError("nothing to draw: no step has a top-1 value")
    return xs


def _style_axes(ax: Axes, rows: Rows, xlabel: str, title: str | None) -> None:
    """Row labels (group headers bold, side branches italic), x axis, grid and title."""
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    for tick, (_, row) in zip(ax.get_yticklabels(), rows, strict=True):
        if row is None:
            tick.set_fontweight("bold")
        elif not row["on_path"]:
            tick.set_style("italic")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=TICK_STEPS))
    ax.grid(axis="x", color="0.9", lw=0.4, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(xlabel)
    if title:  # from the figure's left edge: the row labels leave the axes too narrow
        ax.figure.suptitle(title, x=0.01, ha="left", fontsize=6.5)


def _draw_row(
    ax: Axes,
    y: int,
    row: pd.Series,
    back: pd.Series | None,
    left: float,
    overlay: bool,
    precision: bool,
) -> Label:
    """Draw one step's bars, spread and marks; return its end label and the paper mark."""
    if back is not None and pd.notna(back["top1_mean"]):
        width = back["top1_mean"] - left
        ax.barh(y, width, left=left, height=0.86, color=BACK, lw=0, zorder=1)
    mark = row["paper_top1"] if overlay and pd.notna(row["paper_top1"]) else None
    if mark is not None:
        ax.scatter(
            mark,
            y,
            marker="D",
            s=5,
            facecolor="white",
            edgecolor=PAPER,
            lw=0.6,
            zorder=6,
        )
    if pd.isna(row["top1_mean"]):
        return ax.text(
            left, y, "  no runs", va="center", color="0.4", style="italic", fontsize=5.5
        ), None
    _draw_bar(ax, y, row, left)
    _draw_spread(ax, y, row)
    text = ax.annotate(
        bar_label(row, precision),
        (max(_ends(row)), y),
        xytext=(3.5, 0),
        textcoords="offset points",
        va="center",
        fontsize=5.5,
        color="0.15",
        zorder=7,
    )
    return text, mark


def _draw_bar(ax: Axes, y: int, row: pd.Series, left: float) -> None:
    """The bar of one step, from `left` to its mean: solid on the path, hatched beside it."""
    hatch = None if row["on_path"] else HATCH
    ax.barh(
        y,
        row["top1_mean"] - left,
        left=left,
        height=0.56,
        color=COLOR if hatch is None else LIGHT,
        hatch=hatch,
        edgecolor=COLOR,
        lw=0 if hatch is None else 0.4,
        zorder=2,
    )


def _draw_spread(ax: Axes, y: int, row: pd.Series) -> None:
    """The seed spread of one step: mean +- std as an error bar, one dot per seed."""
    if pd.notna(row["top1_std"]):
        ax.errorbar(
            row["top1_mean"],
            y,
            xerr=row["top1_std"],
            fmt="none",
            ecolor="black",
            elinewidth=0.6,
            capsize=1.4,
            capthick=0.6,
            zorder=4,
        )
    seeds = list(row["values"])
    if seeds:  # one dot per seed, spread over the bar's height
        jitter = [0.32 * (i / max(len(seeds) - 1, 1) - 0.5) for i in range(len(seeds))]
        jitter = jitter if len(seeds) > 1 else [0.0]
        ax.scatter(seeds, [y + j for j in jitter], s=1.6, color="black", lw=0, zorder=5)


def _legend(
    fig: Figure, rows: Rows, overlay: bool, background: bool, labels: Sequence[str]
) -> None:
    """Legend below the axes, listing only what the figure shows."""
    drawn = [row for _, row in rows if row is not None and pd.notna(row["top1_mean"])]
    fig.legend(
        handles=_legend_handles(drawn, overlay, background, labels),
        loc="outside lower center",
        ncol=3,
        frameon=False,
        fontsize=5.5,
        handlelength=1.4,
        columnspacing=1.0,
    )


def _legend_handles(
    drawn: list[pd.Series], overlay: bool, background: bool, labels: Sequence[str]
) -> list[Artist]:
    """The legend's keys: bars, side branches, spread, seeds, paper marks, where shown."""
    handles: list[Artist] = [Patch(color=COLOR, label=labels[0])]
    if background:
        handles.append(Patch(color=BACK, label=labels[1]))
    if any(not row["on_path"] for row in drawn):
        handles.append(Patch(**SIDE_KEY, label="not adopted"))
    if any(pd.notna(row["top1_std"]) for row in drawn):
        handles.append(Line2D([], [], **SPREAD_KEY, label="mean ± std"))
    if any(len(row["values"]) for row in drawn):
        handles.append(Line2D([], [], **SEED_KEY, label="seeds"))
    if overlay:
        handles.append(Line2D([], [], **PAPER_KEY, label="paper"))
    shown = {row["verdict"] for row in drawn}
    for verdict, text in VERDICT_LEGEND.items():
        if verdict in shown:
            handles.append(Line2D([], [], ls="", label=f"{MARKS[verdict]} {text}"))
    return handles
