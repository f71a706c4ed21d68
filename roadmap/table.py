"""The step table: one row per step with complexity measured from the built model; text tables."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from roadmap.assumptions import assumption
from roadmap.paper import paper_row
from roadmap.spec import ArchSpec
from roadmap.steps import steps


def measure(spec: ArchSpec) -> tuple[int, float]:
    """Parameters and GFLOPs of the model `spec` builds, measured on the meta device."""
    import torch  # here: align_columns, for every table printed, needs no torch

    from roadmap.complexity import count_gflops, count_params
    from roadmap.model import build_model

    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = build_model(spec)
    return count_params(model), count_gflops(model)


def step_table(track: str) -> list[dict[str, Any]]:
    """Rows of `roadmap steps`: index, step, ..., paper_gflops, diff, changes, assumed (a note)."""
    rows = []
    for step in steps(track):
        params, gflops = measure(step.spec)
        paper = paper_row(track, step.name)
        paper_gflops = paper.gflops if paper else None
        rows.append(
            {
                "index": step.index,
                "step": step.name,
                "group": step.group,
                "on_path": step.on_path,
                "params": params,
                "gflops": round(gflops, 6),  # 6: the table rounds to 3 once, not twice
                "paper_gflops": paper_gflops,
                "diff": None if paper_gflops is None else round(gflops - paper_gflops, 6),
                "changes": dict(step.changes),
                "assumed": assumption(track, step.name),
            }
        )
    return rows


def align_columns(
    head: Sequence[str], body: Sequence[Sequence[str]], right: Collection[int] = ()
) -> str:
    """Text table: columns as wide as their widest cell, a dashed rule under `head`.

    Columns whose index is in `right` are right-aligned; lines carry no trailing spaces.
    """
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    rows = [head, ["-" * w for w in widths], *body]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )
