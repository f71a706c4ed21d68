"""`roadmap curves`: top-1 and train loss per epoch of each step, from the runs' `log.jsonl`.

One row per step (roadmap order, only steps with a logged epoch), two panels: top-1 and train
loss. Each seed is a thin line; the done runs' mean is a line with a band of +- one std (where
two or more are done). A failed run ends in a cross where it stopped, a run still going in an
open circle, so a diverging or stalled step shows long before its final number. The runs are
those the staircase would draw (`select_runs`: one preset, one recipe), plus that preset's and
recipe's runs that are not done yet. Same look as the staircase (`analysis.figure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.collect import select_runs
from analysis.figure import (
    COLOR,
    COLUMN_WIDTH_IN,
    DPI,
    FORMATS,
    LIGHT,
    PAPER,
    STYLE,
    step_label,
)
from experiments.runs import records
from roadmap.steps import Step, steps

METRICS = (("top1", "Top-1 (%)"), ("train_loss", "Train loss"))
ROW_IN = 0.5  # height of one step's row of panels
EXTRA_IN = 0.9  # titles, x axis and legend
SEED_LW, MEAN_LW = 0.5, 1.0


def curve_runs(df: pd.DataFrame, track: str, preset: str | None) -> pd.DataFrame:
    """The runs to draw: the staircase's done runs, and its preset's and recipe's others."""
    sel = select_runs(df, track, preset)
    recipes = set(sel.runs["recipe_json"]) | set(sel.reference["recipe_json"])
    datasets = set(sel.runs["dataset"]) | set(sel.reference["dataset"])
    others = df[
        (df["track"] == track)
        & (df["preset"] == sel.preset)
        & (df["status"] != "done")
        & df["step"].isin([s.name for s in steps(track)])
    ]
    if recipes:
        others = others[others["recipe_json"].isin(recipes) & others["dataset"].isin(datasets)]
    return pd.concat([sel.runs, others], ignore_index=True)


def read_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per logged epoch of each run: step, seed, status, run, epoch and metrics."""
    frames = []
    for _, run in runs.iterrows():
        log = pd.DataFrame(records.read_jsonl(Path(run["run_dir"]) / records.LOG))
        if log.empty or "epoch" not in log:
            continue
        for col, _ in METRICS:
            log[col] = log[col] if col in log else float("nan")
        keep = log[["epoch", *(col for col, _ in METRICS)]]
        meta = {k: run[k] for k in ("step", "seed", "status", "run")}
        frames.append(keep.assign(**meta))
    columns = ["epoch", *(col for col, _ in METRICS), "step", "seed", "status", "run"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def draw_curves(
    curves: pd.DataFrame,
    drawn: Sequence[Step],
    stem: Path,
    formats: Sequence[str] = FORMATS,
    title: str | None = None,
    width: float = COLUMN_WIDTH_IN,
) -> list[Path]:
    """Draw the curves of the steps `drawn` to `stem.<fmt>` for each format; the paths."""
    with mpl.rc_context(STYLE):
        fig = curves_figure(curves, drawn, title, width)
        stem.parent.mkdir(parents=True, exist_ok=True)
        paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
        for path in paths:
            meta = {".png": {"Software": None}, ".pdf": {"CreationDate": None}}
            fig.savefig(path, dpi=DPI, metadata=meta.get(path.suffix, {"Date": None}))
    return paths


def curves_figure(
    curves: pd.DataFrame,
    drawn: Sequence[Step],
    title: str | None = None,
    width: float = COLUMN_WIDTH_IN,
) -> Figure:
    """The figure: a row of (top-1, train loss) panels per step in `drawn`."""
    with mpl.rc_context(STYLE):
        height = round(len(drawn) * ROW_IN + EXTRA_IN, 2)
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        grid = fig.subplots(len(drawn), len(METRICS), sharex=True, sharey="col", squeeze=False)
        for axes, step in zip(grid, drawn, strict=True):
            of_step = curves[curves["step"] == step.name]
            for ax, (col, _) in zip(axes, METRICS, strict=True):
                _draw_panel(ax, of_step, col)
            _row_label(axes[0], step)
        for ax, (_, label) in zip(grid[0], METRICS, strict=True):
            ax.set_title(label, fontsize=6.5)
        for ax in grid[-1]:
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
        if title:
            fig.suptitle(title, fontsize=6.5, x=0.02, ha="left")
        _legend(fig, curves)
        return fig


def _row_label(ax: Axes, step: Step) -> None:
    """The step's name left of its row; side branches in italics."""
    style = "normal" if step.on_path else "italic"
    ax.set_ylabel(step_label(step.name), rotation=0, ha="right", va="center")
    ax.yaxis.label.set_style(style)


def _draw_panel(ax: Axes, runs: pd.DataFrame, col: str) -> None:
    """One metric of one step: a line per seed, the done runs' mean and band, end marks."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="0.9", lw=0.4)
    for _, run in runs.groupby("run", sort=True):
        points = run.dropna(subset=[col]).sort_values("epoch")
        if points.empty:
            continue
        status = points["status"].iloc[0]
        done = status == "done"
        dot = "o" if len(points) == 1 else ""  # a single epoch is a dot, not a line
        ax.plot(points["epoch"], points[col], color=COLOR if done else PAPER, marker=dot,
                ms=1.5, lw=SEED_LW, alpha=0.7, ls="-" if done else "--")  # fmt: skip
        if not done:
            marker = "x" if status == "failed" else "o"
            last = points.iloc[-1]
            ax.plot(last["epoch"], last[col], marker=marker, ms=3, mew=0.8,
                    color=PAPER, mfc="none" if marker == "o" else PAPER)  # fmt: skip
    done = runs[runs["status"] == "done"].dropna(subset=[col])
    if len(done):
        stats = done.groupby("epoch")[col].agg(["mean", "std", "count"])
        dot = "o" if len(stats) == 1 else ""
        ax.plot(stats.index, stats["mean"], color=COLOR, lw=MEAN_LW, marker=dot, ms=2.5,
                zorder=3)  # fmt: skip
        spread = stats[stats["count"] > 1]
        ax.fill_between(spread.index, spread["mean"] - spread["std"],
                        spread["mean"] + spread["std"], color=LIGHT, lw=0, zorder=0)  # fmt: skip


def _legend(fig: Figure, curves: pd.DataFrame) -> None:
    """Legend below the panels, listing what the figure shows."""
    handles = [
        Line2D([], [], color=COLOR, lw=MEAN_LW, label="mean of done runs"),
        Patch(color=LIGHT, label="± std"),
        Line2D([], [], color=COLOR, lw=SEED_LW, label="seed"),
    ]
    status = set(curves["status"])
    if "failed" in status:
        handles.append(Line2D([], [], color=PAPER, lw=SEED_LW, ls="--", marker="x",
                              ms=3, label="failed: last epoch"))  # fmt: skip
    if status - {"done", "failed"}:
        handles.append(Line2D([], [], color=PAPER, lw=SEED_LW, ls="--", marker="o",
                              ms=3, mfc="none", label="not done yet"))  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False,
               fontsize=5.5, handlelength=1.6, columnspacing=1.0)  # fmt: skip
