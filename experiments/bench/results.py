"""Benchmark results out: the `--out` CSV, the printed table, and reading a CSV back.

The sweep reads a CSV back (`load_measured_throughput`) for its device-hours estimate.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from roadmap.table import align_columns

# Columns of the CSV that `--out` writes, in order (the first eight: the benchmark's contract).
CSV_COLUMNS = (
    "model",
    "params",
    "gflops",
    "train_img_s",
    "infer_img_s",
    "peak_mem_mb",
    "reference",
    "train_ratio_to_reference",
    "infer_ratio_to_reference",
    "track",
    "step",
    "train_img_s_min",
    "train_img_s_max",
    "infer_img_s_min",
    "infer_img_s_max",
    "mfu",
    "data_img_s",
    "bound",
    "device",
    "device_name",
    "threads",
    "batch",
    "image_size",
    "amp",
    "channels_last",
    "compile",
    "repeats",
    "iters",
    "timer",
    "torch",
)


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Write rows with `CSV_COLUMNS` (empty cells for values not measured)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in CSV_COLUMNS})


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def load_measured_throughput(
    path: str | Path, device: str | None = None
) -> dict[tuple[str, str] | str, float]:
    """Training images/s measured by `roadmap bench --out`, keyed for the sweep's estimates.

    Keys: `(track, step)` and the model name (`"resnet50_kernel_7"`) for roadmap steps, the
    model name (`"timm.convnext_tiny"`) for references. `device` keeps only rows of that device
    type ("cpu", "cuda"); where several rows give the same key, the last one wins.
    """
    out: dict[tuple[str, str] | str, float] = {}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            if device is not None and row.get("device") != device:
                continue
            value = row.get("train_img_s") or ""
            if not value:
                continue
            img_s = float(value)
            out[row["model"]] = img_s
            if row.get("track") and row.get("step"):
                out[(row["track"], row["step"])] = img_s
    return out


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Aligned text table of benchmark rows."""
    head = [
        "model",
        "params",
        "GFLOPs",
        "train img/s",
        "(min-max)",
        "infer img/s",
        "(min-max)",
        "peak MB",
        "reference",
        "train x",
        "infer x",
    ]
    has_mfu = any(r.get("mfu") is not None for r in rows)
    has_data = any(r.get("data_img_s") is not None for r in rows)
    if has_mfu:
        head.append("MFU")
    if has_data:
        head += ["data img/s", "bound"]

    def num(v: Any, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    body = []
    for r in rows:
        line = [
            r["model"],
            f"{r['params'] / 1e6:.1f}M",
            f"{r['gflops']:.3f}",
            num(r["train_img_s"], ".2f"),
            f"{r['train_img_s_min']:.2f}-{r['train_img_s_max']:.2f}",
            num(r["infer_img_s"], ".2f"),
            f"{r['infer_img_s_min']:.2f}-{r['infer_img_s_max']:.2f}",
            num(r.get("peak_mem_mb"), ".0f"),
            r.get("reference") or "",
            num(r.get("train_ratio_to_reference"), ".3f"),
            num(r.get("infer_ratio_to_reference"), ".3f"),
        ]
        if has_mfu:
            mfu = r.get("mfu")
            line.append("" if mfu is None else f"{100 * mfu:.1f}%")
        if has_data:
            line += [num(r.get("data_img_s"), ".1f"), r.get("bound") or ""]
        body.append(line)
    left = {0, 8, len(head) - 1} if has_data else {0, 8}
    return align_columns(head, body, right=set(range(len(head))) - left)
