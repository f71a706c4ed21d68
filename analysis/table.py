"""The staircase table in Markdown, LaTeX (booktabs) and CSV.

Columns: step (with the marks of its track's assumptions, `analysis.assumptions`), group, on path
(yes, side, ref), GFLOPs, params, precision (`analysis.precision`), top-1 mean +- std (n),
change against the parent step (marked with its verdict's `MARKS`), the per-pair test's
interval, p-value and test (`analysis.stats`), the pooled model's p, its Holm-adjusted p, the
minimum detectable change at 80% power and the verdict (`analysis.pooled`), the paper's top-1
and GFLOPs. A column with no value in any row (params of the paper's staircase, paper columns
of a non-paper preset, pooled columns without a pooled model) is left out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analysis.assumptions import COLUMN, footnote_texts, footnotes, row_marks

HEADERS = (
    "step", "group", "on path", "GFLOPs", "params", "precision", "top-1", "change", "95% CI", "p",
    "test", "pooled p", "Holm p", "MDE80", "verdict", "paper top-1", "paper GFLOPs",
)  # fmt: skip
RIGHT = {
    "GFLOPs", "params", "top-1", "change", "p", "pooled p", "Holm p", "MDE80", "paper top-1",
    "paper GFLOPs",
}  # fmt: skip
# The mark after a change, by its verdict (`analysis.pooled.VERDICTS`), and in LaTeX.
MARKS = {"significant": "∗", "equivalent": "≈", "n.s.": "†"}  # ∗: U+2217, not markdown's *
# ... and those of `roadmap.assumptions` (‡, §).
TEX_MARKS = {
    "∗": "$^{*}$", "≈": "$^{\\approx}$", "†": "$^\\dagger$", "‡": "$^\\ddagger$", "§": "$^\\S$"
}  # fmt: skip


def verdict_note(frame: pd.DataFrame) -> str:
    """What the marks mean: the adjusted p the verdict reads and the equivalence margin."""
    pooled = frame.attrs.get("pooled")
    source = pooled.source if pooled else ""
    which = "the pooled test's Holm p" if source else "the per-pair test's Holm p"
    margin = f"{pooled.margin:g}" if pooled else "?"
    return (
        f"Marks: {MARKS['significant']} significant ({which} < 0.05); "
        f"{MARKS['equivalent']} equivalent (TOST p < 0.05 within ±{margin} points); "
        f"{MARKS['n.s.']} n.s.: neither shown"
    )


def mark(row: pd.Series) -> str:
    """The verdict mark of a row's change ("" without a verdict)."""
    return MARKS.get(row.get("verdict") or "", "")


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


def _p(p: float) -> str:
    """A p-value cell: three decimals, `<0.001` below."""
    return "" if pd.isna(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def _change(row: pd.Series) -> list[str]:
    """The change (with its verdict mark), per-pair interval, p and test, pooled cells."""
    if pd.isna(row["change"]):
        return [""] * 8
    pooled = [
        _p(row["pooled_p"]),
        _p(row["pooled_p_holm"]),
        "" if pd.isna(row["mde80"]) else f"{row['mde80']:.2f}",
        row["verdict"] or "",
    ]
    if not row["change_test"]:
        return [f"{row['change']:+.2f}{mark(row)}", "", "", "", *pooled]
    low, high = row["change_ci95_low"], row["change_ci95_high"]
    return [
        f"{row['change']:+.2f}{mark(row)}",
        f"[{low:+.2f}, {high:+.2f}]",
        _p(row["change_p"]),
        row["change_test"],
        *pooled,
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
            row["step"] + row_marks(row),
            row["group"],
            _path(row),
            "" if pd.isna(row["gflops"]) else gflops_cell(row["gflops"]),
            "" if pd.isna(row["params"]) else f"{row['params'] / 1e6:.2f}M",
            row["precision"] if isinstance(row.get("precision"), str) else "",
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
    if any(row[HEADERS.index("verdict")] for row in cells):
        lines += ["", verdict_note(frame)]
    if notes := footnotes(frame):
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def tex_escape(text: str) -> str:
    """Text with LaTeX's special characters escaped."""
    for char in ("\\", "&", "%", "$", "#", "_", "{", "}"):
        text = text.replace(char, "\\" + char)
    return text


def _tex_marks(text: str) -> str:
    """The verdict marks of `text` as LaTeX superscripts."""
    for char, tex in TEX_MARKS.items():
        text = text.replace(char, tex)
    return text


def to_latex(frame: pd.DataFrame, caption: str | None = None) -> str:
    """The staircase as a LaTeX booktabs tabular (a horizontal rule between groups)."""
    cells = _cells(frame, "PLUSMINUS")
    keep = _columns(cells)
    spec = "".join("r" if HEADERS[i] in RIGHT else "l" for i in keep)
    lines = [
        f"% {tex_escape(caption)}" if caption else "% staircase",
        f"\\begin{{tabular}}{{{spec}}}",
    ]
    lines += [
        "\\toprule",
        " & ".join(tex_escape(HEADERS[i]) for i in keep) + " \\\\",
        "\\midrule",
    ]
    groups = list(frame.sort_values("index")["group"])
    for i, row in enumerate(cells):
        if i and groups[i] != groups[i - 1]:
            lines.append("\\midrule")
        line = " & ".join(tex_escape(row[i]) for i in keep)
        line = _tex_marks(line.replace("PLUSMINUS", "$\\pm$"))
        lines.append(line + " \\\\")
    lines.append("\\bottomrule")
    if any(row[HEADERS.index("verdict")] for row in cells):
        note = _tex_marks(tex_escape(verdict_note(frame)).replace("±", "$\\pm$"))
        lines.append(f"\\multicolumn{{{len(keep)}}}{{l}}{{\\footnotesize {note}}} \\\\")
    for note in footnotes(frame):
        note = _tex_marks(tex_escape(note))
        lines.append(f"\\multicolumn{{{len(keep)}}}{{l}}{{\\footnotesize {note}}} \\\\")
    lines.append("\\end{tabular}")
    return "\n".join(lines) + "\n"


def to_csv(frame: pd.DataFrame) -> str:
    """The staircase as CSV: raw numbers, seeds and per-seed values joined with `;`."""
    out = frame.copy()
    if COLUMN in out:  # the footnotes themselves: a CSV has no room below
        out[COLUMN] = [footnote_texts(row) for _, row in frame.iterrows()]
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
