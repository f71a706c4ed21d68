"""Fit a bar figure's x range to the labels at its bars' ends (`analysis.figure`)."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text

Label = tuple[Text, float | None]  # a bar's end label and the paper mark it avoids


def fit_right(fig: Figure, ax: Axes, left: float, right: float, labels: list[Label]) -> None:
    """Widen the x range until every bar label fits; move a label past a marker it covers."""
    ax.set_xlim(left, right)
    for _ in range(6):
        fig.canvas.draw()
        box = ax.get_window_extent()
        moved = False
        for text, mark in labels:
            if mark is None or mark <= text.xy[0]:
                continue
            ext = text.get_window_extent()
            at = ax.transData.transform((mark, text.xy[1]))[0]
            if ext.x0 - 4 <= at <= ext.x1 + 4:
                text.xy, moved = (mark, text.xy[1]), True
        ends = [text.get_window_extent().x1 for text, _ in labels]
        over = max([end - box.x1 for end in ends] + [0.0])
        if over > 0.5:
            right += (over + 2) * (right - left) / box.width
            ax.set_xlim(left, right)
        elif not moved:
            return
