"""The paper's published roadmap numbers, shipped with the package as data.

Source: Liu et al., "A ConvNet for the 2020s", CVPR 2022 (arXiv 2201.03545): Appendix C, Table 10
(ResNet-50 -> ConvNeXt-T, top-1 mean +- std over 3 seeds) and Table 11 (ResNet-200 -> ConvNeXt-B),
and the labels of Figure 2. These are published facts to compare against, never results.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

SOURCE = 'Liu et al., "A ConvNet for the 2020s", CVPR 2022, Appendix C Tables 10-11, Figure 2'


@dataclass(frozen=True)
class PaperRow:
    """One step as the paper reports it (None where the paper gives no number)."""

    track: str
    order: int
    step: str
    group: str
    on_path: bool
    top1: float | None
    top1_std: float | None
    gflops: float | None
    figure_top1: float | None
    figure_gflops: float | None


def _num(text: str) -> float | None:
    return float(text) if text.strip() else None


@cache
def paper_rows() -> tuple[PaperRow, ...]:
    """Every row of the shipped `paper_roadmap.csv`."""
    text = resources.files("roadmap").joinpath("data/paper_roadmap.csv").read_text()
    return tuple(
        PaperRow(
            track=r["track"],
            order=int(r["order"]),
            step=r["step"],
            group=r["group"],
            on_path=r["on_path"] == "yes",
            top1=_num(r["table_acc_mean"]),
            top1_std=_num(r["table_acc_std"]),
            gflops=_num(r["table_gflops"]),
            figure_top1=_num(r["figure_acc"]),
            figure_gflops=_num(r["figure_gflops"]),
        )
        for r in csv.DictReader(text.splitlines())
    )


def paper_row(track: str, step: str) -> PaperRow | None:
    """The paper's row for `step` on `track`, or None if the paper has none."""
    for row in paper_rows():
        if row.track == track and row.step == step:
            return row
    return None
