"""A staircase's footnote marks for what its track assumes (`roadmap.assumptions`).

`mark_assumptions` gives a frame an `assumptions` column (each row's marks); the table and the
figure then show the marks after the step names and the footnotes below (docs/statistics.md).
A frame without the column (a staircase of runs) shows neither.
"""

from __future__ import annotations

import textwrap

import pandas as pd

from roadmap.assumptions import assumptions, step_marks

COLUMN = "assumptions"
NOTE_CHARS = 95  # characters of a footnote line in a figure one column wide


def mark_assumptions(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each row's assumption marks in an `assumptions` column ("" for none)."""
    marks = [
        step_marks(track, step, bool(reference))
        for track, step, reference in zip(
            frame["track"], frame["step"], frame["reference"], strict=True
        )
    ]
    out = frame.assign(**{COLUMN: marks})
    out.attrs = dict(frame.attrs)
    return out


def row_marks(row: pd.Series) -> str:
    """The assumption marks of one staircase row ("" without the column)."""
    marks = row.get(COLUMN)
    return marks if isinstance(marks, str) else ""


def footnotes(frame: pd.DataFrame) -> list[str]:
    """`<mark> <text>` for each assumption whose mark a row of `frame` carries."""
    if COLUMN not in frame or frame.empty:
        return []
    shown = "".join(frame[COLUMN].fillna(""))
    tracks = dict.fromkeys(frame["track"])
    return [f"{a.mark} {a.text}" for t in tracks for a in assumptions(t) if a.mark in shown]


def footnote_texts(row: pd.Series) -> str:
    """The footnotes of one row's marks, `; `-joined (the CSV's cell for them)."""
    marks = row_marks(row)
    return "; ".join(a.text for a in assumptions(row["track"]) if marks and a.mark in marks)


def bar_footnotes(frame: pd.DataFrame, columns: float = 1.0) -> list[str]:
    """The footnotes of a figure's bars (not the reference row), wrapped to `columns` wide."""
    notes = footnotes(frame[~frame["reference"].astype(bool)])
    return [line for note in notes for line in textwrap.wrap(note, int(NOTE_CHARS * columns))]
