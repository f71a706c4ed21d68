"""The effects forest plot and tables, in the staircase's look (analysis/figure.py).

Top panel, one row per step in roadmap order under bold group headers: its change on the
path, at the end point (leave-one-out) and at the start (add-one-in), side by side, each a
marker with its 95% interval; a dashed line at 0. Bottom panel, where a factorial was run:
its main effects, two-way interactions and Shapley values, one row each.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.figure import (
    COLOR,
    COLUMN_WIDTH_IN,
    EXTRA_IN,
    FORMATS,
    PAPER,
    ROW_IN,
    STYLE,
    group_label,
    save_figure,
    step_label,
)
from analysis.table import tex_escape
from roadmap.errors import UserError
from roadmap.steps import steps

# kind -> (legend label, colour, marker, offset within the row)
STEP_KINDS = {
    "path": ("on the path", COLOR, "o", -0.25),
    "leave-one-out": ("at the end (leave-one-out)", PAPER, "D", 0.0),
    "add-one-in": ("at the start (add-one-in)", "0.45", "s", 0.25),
}
FACTORIAL_KINDS = {
    "main": ("main effect", COLOR, "o"),
    "interaction": ("interaction", "#7b3294", "^"),  # apart from the leave-one-out diamonds
    "shapley": ("Shapley value", "0.45", "s"),
}
NUMBERS = ("effect", "ci95_low", "ci95_high", "p")


def _step_rows(frame: pd.DataFrame, track: str) -> list[tuple[str, str | None]]:
    """(label, step) top to bottom, a (header, None) before each group; steps with a term."""
    shown = set(frame.loc[frame["kind"].isin(list(STEP_KINDS)), "step"])
    rows: list[tuple[str, str | None]] = []
    last = None
    for step in steps(track):
        if step.name not in shown:
            continue
        if step.group != last:
            rows.append((group_label(step.group), None))
            last = step.group
        rows.append((step_label(step.name), step.name))
    return rows


def _factorial_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The factorial's terms, main effects first, then interactions, then Shapley values."""
    rows = frame[frame["kind"].isin(list(FACTORIAL_KINDS))].copy()
    rows["order"] = rows["kind"].map(list(FACTORIAL_KINDS).index)
    return rows.sort_values(["base", "order"], kind="stable")


def _mark(ax: Axes, y: float, row: pd.Series, color: str, marker: str) -> None:
    """One estimate with its interval (the interval left out where there is none)."""
    low, high = row["ci95_low"], row["ci95_high"]
    if pd.notna(low) and pd.notna(high):
        ax.plot([low, high], [y, y], color=color, lw=0.7, zorder=2)
    ax.plot([row["effect"]], [y], ls="", marker=marker, color=color, markersize=2.6, zorder=3)


def _style(ax: Axes, labels: list[str], headers: set[int]) -> None:
    """Row labels (headers bold), zero line, grid; as the staircase styles its axes."""
    ax.set_yticks(range(len(labels)), labels)
    for i, tick in enumerate(ax.get_yticklabels()):
        if i in headers:
            tick.set_fontweight("bold")
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.axvline(0.0, color="0.3", lw=0.5, ls="--", zorder=1)
    ax.grid(axis="x", color="0.9", lw=0.4, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _draw_steps(ax: Axes, frame: pd.DataFrame, track: str) -> list[Line2D]:
    """The per-step panel."""
    rows = _step_rows(frame, track)
    for y, (_, step) in enumerate(rows):
        if step is None:
            if y:
                ax.axhline(y - 0.5, color="0.85", lw=0.4, zorder=0)
            continue
        of_step = frame[frame["step"] == step]
        for kind, (_, color, marker, offset) in STEP_KINDS.items():
            for _, row in of_step[of_step["kind"] == kind].iterrows():
                _mark(ax, y + offset, row, color, marker)
    headers = {i for i, (_, s) in enumerate(rows) if s is None}
    _style(ax, [label for label, _ in rows], headers)
    present = set(frame["kind"])
    return [
        Line2D([], [], color=c, marker=m, markersize=2.6, lw=0.7, label=label)
        for kind, (label, c, m, _) in STEP_KINDS.items()
        if kind in present
    ]


def _draw_factorial(ax: Axes, rows: pd.DataFrame, xlabel: str) -> list[Line2D]:
    """The factorial panel: a bold header per base, then one row per term."""
    labels: list[str] = []
    headers: set[int] = set()
    for base, of_base in rows.groupby("base", sort=False):
        headers.add(len(labels))
        labels.append(f"Factorial at {step_label(str(base))}")
        for _, row in of_base.iterrows():
            _, color, marker = FACTORIAL_KINDS[row["kind"]]
            _mark(ax, len(labels), row, color, marker)
            names = " × ".join(step_label(s) for s in row["step"].split("*"))
            labels.append(f"{names} ({'Shapley' if row['kind'] == 'shapley' else row['kind']})")
    _style(ax, labels, headers)
    ax.set_xlabel(xlabel)
    return [
        Line2D([], [], color=c, marker=m, markersize=2.6, lw=0.7, label=label)
        for kind, (label, c, m) in FACTORIAL_KINDS.items()
        if kind in set(rows["kind"])
    ]


def effects_figure(
    frame: pd.DataFrame, track: str, title: str | None, xlabel: str, width: float
) -> Figure:
    """The forest plot of one track's effects (`analysis.effects.track_effects`)."""
    n_steps = len(_step_rows(frame, track))
    factorial = _factorial_rows(frame)
    n_factorial = len(factorial) + factorial["base"].nunique()
    heights = [h for h in (n_steps, n_factorial) if h]
    if not heights:
        raise UserError(f"no effect to draw on {track}")
    size = (width, round(sum(heights) * ROW_IN * 1.6 + EXTRA_IN, 2))
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(heights), 1, squeeze=False, height_ratios=heights)[:, 0]
        handles = []
        if n_steps:
            handles += _draw_steps(axes[0], frame, track)
            axes[0].set_xlabel(xlabel)
        if len(factorial):
            handles += _draw_factorial(axes[-1], factorial, xlabel)
        if title:
            fig.suptitle(title, x=0.01, ha="left", fontsize=6.5)
        fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    return fig


def draw_effects(
    frame: pd.DataFrame,
    track: str,
    stem: str | os.PathLike,
    formats: Sequence[str] = FORMATS,
    title: str | None = None,
    xlabel: str = "Effect on top-1 (points)",
    width: float = COLUMN_WIDTH_IN,
) -> list[Path]:
    """Draw the forest plot to `stem.<fmt>` for each format; return the paths."""
    return save_figure(effects_figure(frame, track, title, xlabel, width), stem, formats)


def _cell(value: float, key: str) -> str:
    """A number as the tables print it: p to three significant digits, effects to 0.01."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.3g}" if key == "p" else f"{value:+.2f}"


def _table_cells(frame: pd.DataFrame) -> list[list[str]]:
    """term, effect, 95% interval, p, n, test, Holm p, cost change, family."""
    return [
        [
            str(r["term"]),
            _cell(r["effect"], "effect"),
            f"[{_cell(r['ci95_low'], 'x')}, {_cell(r['ci95_high'], 'x')}]"
            if pd.notna(r["ci95_low"])
            else "",
            _cell(r["p"], "p"),
            "" if pd.isna(r["n"]) else str(int(r["n"])),
            str(r["test"]),
            _cell(r["p_holm"], "p"),
            "" if pd.isna(r["d_gflops"]) else f"{r['d_gflops']:+.3f}",
            "" if pd.isna(r["d_params"]) else f"{r['d_params'] / 1e6:+.2f}",
            str(r["family"]),
        ]
        for _, r in frame.iterrows()
    ]


HEAD = ["term", "effect", "95% CI", "p", "n", "test", "p Holm", "dGFLOPs", "dparams (M)", "family"]


def write_effect_tables(frame: pd.DataFrame, stem: Path, caption: str) -> list[Path]:
    """`stem.csv` (raw numbers, `analysis.effects.COLUMNS`), `stem.md` and `stem.tex`."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    cells = _table_cells(frame)
    md = ["| " + " | ".join(HEAD) + " |", "|:---|---:|---:|---:|---:|:---|---:|---:|---:|:---|"]
    md += ["| " + " | ".join(row) + " |" for row in cells]
    tex = [f"% {tex_escape(caption)}", "\\begin{tabular}{lrrrrlrrrl}", "\\toprule"]
    tex += [" & ".join(tex_escape(h) for h in HEAD) + " \\\\", "\\midrule"]
    tex += [" & ".join(tex_escape(c) for c in row) + " \\\\" for row in cells]
    tex += ["\\bottomrule", "\\end{tabular}"]
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md"), stem.with_suffix(".tex")]
    frame.to_csv(paths[0], index=False, lineterminator="\n")
    paths[1].write_text("\n".join(md) + "\n")
    paths[2].write_text("\n".join(tex) + "\n")
    return paths
