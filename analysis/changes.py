"""Every change column of a staircase, against the row each change is measured from.

The per-pair test (`analysis.stats`), the track's pooled model with its multiplicity, power,
equivalence and verdict (`analysis.pooled`), and the image-level interval where predictions
exist (`analysis.images`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.images import IMAGE_COLUMNS, image_columns
from analysis.pooled import POOLED_COLUMNS, Pooled, pooled_columns
from analysis.stats import CHANGE_COLUMNS, change_columns

ALL_CHANGE_COLUMNS = (*CHANGE_COLUMNS, *POOLED_COLUMNS, *IMAGE_COLUMNS)


def all_change_columns(
    rows: Sequence[Mapping[str, Any]], parents: Sequence[str | None], margin: float
) -> tuple[dict[str, list[Any]], Pooled]:
    """`ALL_CHANGE_COLUMNS` of the staircase rows, and the track's pooled variance."""
    cols = change_columns(rows, parents)
    with_p = [{**row, "change_p": p} for row, p in zip(rows, cols["change_p"], strict=True)]
    pooled, summary = pooled_columns(with_p, parents, margin)
    return cols | pooled | image_columns(rows, parents), summary
