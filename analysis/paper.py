"""The paper's published numbers as the staircase reads them (from `roadmap.paper`).

Its rows of a track by step name, the name of its original-recipe row, and where the labels of
its Figure 2 disagree with its tables.
"""

from __future__ import annotations

from roadmap.paper import PaperRow, paper_rows

# Runs (seeds) behind each mean +- std of the paper's Table 10; Table 11 gives one number per
# step and no std.
PAPER_SEEDS = 3


def paper_by_step(track: str) -> dict[str, PaperRow]:
    """The paper's rows of `track` by step name (the reference row under its own name)."""
    return {r.step: r for r in paper_rows() if r.track == track}


def reference_name(track: str) -> str | None:
    """The paper's name for the original-recipe row of `track` (its order-0 row)."""
    return next((r.step for r in paper_rows() if r.track == track and r.order == 0), None)


def figure_label_mismatches(track: str, tol: float = 0.05 + 1e-9) -> list[str]:
    """Where the paper's Figure 2 labels disagree with its table beyond rounding."""
    out = []
    for row in paper_rows():
        if row.track != track:
            continue
        for what, table, figure in (
            ("top-1", row.top1, row.figure_top1),
            ("GFLOPs", row.gflops, row.figure_gflops),
        ):
            if table is not None and figure is not None and abs(table - figure) > tol:
                out.append(f"{row.step} {what}: table {table:g}, figure {figure:g}")
    return out
