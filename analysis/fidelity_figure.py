"""The fidelity scatter: each change of a root against the paper's change of the same step.

x is the paper's change with its pooled 95% interval, y the root's with its pooled interval
(the per-pair one where there is no pooled model), one labelled point per change, filled
where the paper's change is significant (pooled test after Holm); the diagonal y = x dashed
and the zero lines thin, so that a point in the upper right or lower left agrees in sign.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.figure import COLOR, COLUMN_WIDTH_IN, STYLE, save_figure, step_label

LABEL_PT = 4.5  # the size of a point's step label
# Where a label may sit from its point (points: right, left, above, below, then further out).
OFFSETS = [(3, 0), (-3, 0), (3, 5), (-3, 5), (3, -5), (-3, -5), (3, 10), (-3, 10), (3, -10),
           (-3, -10)]  # fmt: skip


def fidelity_figure(pts: pd.DataFrame, title: str, width: float = COLUMN_WIDTH_IN) -> Figure:
    """The scatter of `analysis.fidelity.points`, square, titled `title`."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(width, width), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        x, y = pts["paper_change"].to_numpy(), pts["change"].to_numpy()
        xerr = _bars(x, pts["paper_low"], pts["paper_high"])
        yerr = _bars(y, pts["low"], pts["high"])
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor="0.6", elinewidth=0.5, zorder=2)
        sig = pts["paper_significant"].to_numpy()
        ax.scatter(x[sig], y[sig], s=9, color=COLOR, zorder=4, lw=0)
        ax.scatter(x[~sig], y[~sig], s=9, facecolor="white", edgecolor=COLOR, lw=0.7, zorder=4)
        _guides(ax)
        _labels(fig, ax, pts["step"], x, y)
        ax.set_xlabel("Paper's change (top-1 points)")
        ax.set_ylabel("This root's change (top-1 points)")
        ax.set_title(title, fontsize=6.5, loc="left")
        fig.legend(handles=_handles(), loc="outside lower center", ncol=3, frameon=False,
                   fontsize=5.5, handlelength=1.4)  # fmt: skip
        return fig


def _finite(values: pd.Series) -> np.ndarray:
    """The finite values of a column."""
    out = values.to_numpy(dtype=float)
    return out[np.isfinite(out)]


def _bars(center: np.ndarray, low: pd.Series, high: pd.Series) -> np.ndarray:
    """Error bar lengths below and above `center` (0 where the interval is unknown)."""
    lo = np.nan_to_num(center - low.to_numpy(dtype=float))
    hi = np.nan_to_num(high.to_numpy(dtype=float) - center)
    return np.vstack([np.maximum(lo, 0), np.maximum(hi, 0)])


def _guides(ax: Axes) -> None:
    """The diagonal y = x across the axes as they are, and the two zero lines."""
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    lo, hi = max(xlim[0], ylim[0]), min(xlim[1], ylim[1])
    if lo < hi:
        ax.plot([lo, hi], [lo, hi], ls="--", color="0.35", lw=0.6, zorder=1)
    ax.axhline(0, color="0.85", lw=0.4, zorder=0)
    ax.axvline(0, color="0.85", lw=0.4, zorder=0)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


def _labels(fig: Figure, ax: Axes, names: pd.Series, x: np.ndarray, y: np.ndarray) -> None:
    """Each point's step label at the first of `OFFSETS` where it overlaps no label before it."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed = []
    for name, xi, yi in zip(names, x, y, strict=True):
        for dx, dy in OFFSETS:
            text = ax.annotate(
                step_label(name),
                (xi, yi),
                xytext=(dx, dy),
                textcoords="offset points",
                ha="left" if dx >= 0 else "right",
                va="center",
                fontsize=LABEL_PT,
                color="0.2",
                zorder=5,
            )
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed) or (dx, dy) == OFFSETS[-1]:
                placed.append(box)
                break
            text.remove()


def _handles() -> list[Line2D]:
    """Legend keys: significant and not in the paper, the diagonal."""
    dot = {"ls": "", "marker": "o", "markersize": 3, "markeredgecolor": COLOR}
    return [
        Line2D([], [], **dot, color=COLOR, label="paper: significant"),
        Line2D([], [], **dot, markerfacecolor="white", label="paper: n.s."),
        Line2D([], [], ls="--", color="0.35", lw=0.6, label="y = x"),
    ]


def draw_fidelity(
    pts: pd.DataFrame,
    stem: str | os.PathLike,
    formats: Sequence[str],
    title: str,
    width: float = COLUMN_WIDTH_IN,
) -> list[Path]:
    """Draw the scatter to `stem.<fmt>` for each format; return the paths."""
    return save_figure(fidelity_figure(pts, title, width), stem, formats)
