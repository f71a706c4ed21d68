"""The staircase table in Markdown, LaTeX (booktabs) and CSV.

Columns: step, group, on path (yes, side, ref), GFLOPs, params, top-1 mean +- std (n),
change against the parent step (marked `NOISE_MARK` where its 95% interval contains 0), that
interval, its p-value and test (`analysis.stats`), the paper's top-1 and GFLOPs. A column with
no value in any row (params of the paper's staircase, paper columns of a non-paper preset) is
left out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

HEADERS = (
    "step", "group", "on path", "GFLOPs", "params", "top-1", "change", "95% CI", "p", "test",
    "paper top-1", "paper GFLOPs",
)  # fmt: skip
RIGHT = {"GFLOPs", "params", "top-1", "change", "p", "paper top-1", "paper GFLOPs"}
NOISE_MARK = "†"
NOISE_NOTE = (
    f"{NOISE_MARK} the 95% interval of the change contains 0: not distinguishable from seed "
    "noise (paired t-test by seed where both steps have the same seeds, else Welch's)"
)


def _path(row: pd.Series) -> str:
    """`yes` on the path, `side` for a side branch, `ref` for the reference row."""
    return "ref" if row["reference"] else "yes" if row["on_path"] else "side"


def _top1(mean: float, std: float, n: float, plus_minus: str) -> str:
    """`mean ± std (n)`; the std and n only where known."""
    if pd.isna(mean):
        return ""
    text = f"{mean:.2f}"
    if pd.notna(std):
        text += f" {plus_minus} {std:.2f}"
    if pd.notna(n):
        text += f" ({int(n)})"
    return text


def _change(row: pd.Series) -> list[str]:
    """The change, its interval, p and test; the change marked where the interval holds 0."""
    if pd.isna(row["change"]):
        return ["", "", "", ""]
    noisy = row["change_within_noise"]
    mark = NOISE_MARK if pd.notna(noisy) and bool(noisy) else ""
    if not row["change_test"]:
        return [f"{row['change']:+.2f}", "", "", ""]
    low, high, p = row["change_ci95_low"], row["change_ci95_high"], row["change_p"]
    p_text = "<0.001" if p < 0.001 else f"{p:.3f}"
    return [
        f"{row['change']:+.2f}{mark}",
        f"[{low:+.2f}, {high:+.2f}]",
        p_text,
        row["change_test"],
    ]


def gflops_cell(value: float) -> str:
    """Two decimals, as Tables 10 and 11; below 1 GFLOP, two significant digits (0.090).

    Smoke runs at 32 px cost 0.03-0.11 GFLOPs, which two decimals would blur together.
    """
    return f"{value:.2f}" if value >= 1 else f"{value:#.2g}"


def _cells(frame: pd.DataFrame, plus_minus: str) -> list[list[str]]:
    """Formatted cells of every row, in `HEADERS` order."""

    def num(value: float, fmt: str) -> str:
        return "" if pd.isna(value) else format(value, fmt)

    return [
        [
            row["step"],
            row["group"],
            _path(row),
            "" if pd.isna(row["gflops"]) else gflops_cell(row["gflops"]),
            "" if pd.isna(row["params"]) else f"{row['params'] / 1e6:.2f}M",
            _top1(row["top1_mean"], row["top1_std"], row["n"], plus_minus),
            *_change(row),
            _top1(row["paper_top1"], row["paper_top1_std"], float("nan"), plus_minus),
            num(row["paper_gflops"], ".2f"),
        ]
        for _, row in frame.sort_values("index").iterrows()
    ]


def _columns(cells: list[list[str]]) -> list[int]:
    """Indices of the columns with a value in some row."""
    return [i for i in range(len(HEADERS)) if any(row[i] for row in cells)]


def to_markdown(frame: pd.DataFrame) -> str:
    """The staircase as a Markdown (pipe) table."""
    cells = _cells(frame, "±")
    keep = _columns(cells)
    head = [HEADERS[i] for i in keep]
    lines = ["| " + " | ".join(head) + " |"]
    lines.append("|" + "|".join("---:" if h in RIGHT else ":---" for h in head) + "|")
    lines += ["| " + " | ".join(row[i] for i in keep) + " |" for row in cells]
    if any(NOISE_MARK in row[HEADERS.index("change")] for row in cells):
        lines += ["", NOISE_NOTE]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    """Text with LaTeX's special characters escaped."""
    for char in ("\\", "&", "%", "$", "#", "_", "{", "}"):
        text = text.replace(char, "\\" + char)
    return text


def to_latex(frame: pd.DataFrame, caption: str | None = None) -> str:
    """The staircase as a LaTeX booktabs tabular (a horizontal rule between groups)."""
    cells = _cells(frame, "PLUSMINUS")
    keep = _columns(cells)
    spec = "".join("r" if HEADERS[i] in RIGHT else "l" for i in keep)
    lines = [
        f"% {_tex(caption)}" if caption else "% staircase",
        f"\\begin{{tabular}}{{{spec}}}",
    ]
    lines += [
        "\\toprule",
        " & ".join(_tex(HEADERS[i]) for i in keep) + " \\\\",
        "\\midrule",
    ]
    groups = list(frame.sort_values("index")["group"])
    for i, row in enumerate(cells):
        if i and groups[i] != groups[i - 1]:
            lines.append("\\midrule")
        line = " & ".join(_tex(row[i]) for i in keep)
        line = line.replace("PLUSMINUS", "$\\pm$").replace(NOISE_MARK, "$^\\dagger$")
        lines.append(line + " \\\\")
    lines.append("\\bottomrule")
    if any(NOISE_MARK in row[HEADERS.index("change")] for row in cells):
        note = _tex(NOISE_NOTE).replace(NOISE_MARK, "$^\\dagger$")
        lines.append(f"\\multicolumn{{{len(keep)}}}{{l}}{{\\footnotesize {note}}} \\\\")
    lines.append("\\end{tabular}")
    return "\n".join(lines) + "\n"


def to_csv(frame: pd.DataFrame) -> str:
    """The staircase as CSV: raw numbers, seeds and per-seed values joined with `;`."""
    out = frame.copy()
    for col in ("seeds", "values"):
        out[col] = [
            ";".join(f"{v:g}" if col == "values" else str(v) for v in per_seed)
            for per_seed in out[col]
        ]
    for col in ("n", "params"):
        out[col] = out[col].astype("Float64").round().astype("Int64")
    floats = out.select_dtypes("float").columns
    out[floats] = out[floats].round(6)
    return out.to_csv(index=False, lineterminator="\n")


WRITERS: dict[str, Callable[[pd.DataFrame], str]] = {
    "md": to_markdown,
    "tex": to_latex,
    "csv": to_csv,
}


def write_tables(
    frame: pd.DataFrame, stem: str | os.PathLike, caption: str | None = None
) -> list[Path]:
    """Write `stem.md`, `stem.tex` and `stem.csv`; return the paths.

    The caption heads the LaTeX file as a comment.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, writer in WRITERS.items():
        path = stem.with_name(f"{stem.name}.{suffix}")
        path.write_text(to_latex(frame, caption) if suffix == "tex" else writer(frame))
        paths.append(path)
    return paths
