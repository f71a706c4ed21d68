"""Collect run records into one frame, choose the runs of one staircase, aggregate per step.

The staircase of a track is one row per roadmap step (from `roadmap.steps`, in order), plus a
reference row for the original (torchvision) recipe where there is one. A step's `change` is
its mean top-1 minus that of its `parent` (the previous on-path step; side branches compare
with the on-path step they start from); the first step compares with the reference row.
Nothing here names a design toggle: steps, groups and parents all come from `roadmap.steps`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from experiments import records, runstate
from roadmap.paper import PaperRow, paper_rows
from roadmap.steps import Step, steps

PAPER_PRESET = "paper"  # the preset whose numbers the paper's tables report
# The torchvision recipe: its runs of a track's first step make the reference row.
ORIGINAL_PRESET = "original"
METRICS = ("top1", "best_top1", "ema_top1")
MIXED = "mixed"  # the preset label of a staircase that pools presets (allow_mixed)

# Columns of a staircase frame, in order.
COLUMNS = (
    "track", "index", "step", "group", "on_path", "reference", "parent", "n", "seeds",
    "values", "top1_mean", "top1_std", "change", "params", "gflops", "paper_top1",
    "paper_top1_std", "paper_gflops", "paper_change",
)  # fmt: skip


@dataclass
class Selection:
    """The runs chosen for one staircase, and what was left out of it and why."""

    track: str
    preset: str  # the preset drawn, or MIXED
    metric: str
    runs: pd.DataFrame  # one row per (step, seed), status done
    reference: pd.DataFrame  # original-recipe runs of the track's baseline step
    excluded: pd.DataFrame  # run_dir, step, seed, preset, reason
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _json(obj: Any) -> Any:
    """`obj` as JSON would give it back (tuples become lists)."""
    return json.loads(json.dumps(obj, default=str))


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts flattened to dotted keys."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _variant(config: dict[str, Any]) -> str:
    """A run's recipe as a canonical string: recipe plus its spec's departures from the step's.

    A preset may set spec fields (e.g. drop path), so equal strings mean equal training.
    """
    delta: dict[str, Any] = {}
    step = _find_step(config.get("track"), config.get("step"))
    if step is not None and isinstance(config.get("spec"), dict):
        ref = _json(asdict(step.spec))
        delta = {
            k: v for k, v in config["spec"].items() if k in ref and _json(v) != ref[k]
        }
    return json.dumps({"recipe": config.get("recipe"), "spec": delta}, sort_keys=True)


def _find_step(track: Any, name: Any) -> Step | None:
    """The roadmap step `name` of `track`, or None."""
    try:
        return next(s for s in steps(track) if s.name == name)
    except (ValueError, StopIteration):
        return None


def load_runs(root: str | os.PathLike) -> pd.DataFrame:
    """Every run under `root` (`experiments.runstate.collect`) plus a `variant` column."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    df = runstate.collect(root)
    if df.empty:
        raise ValueError(f"no run records ({records.CONFIG}) under {root}")
    configs = [records.read_json(Path(d) / records.CONFIG) or {} for d in df["run_dir"]]
    df["variant"] = [_variant(c) for c in configs]
    df["run"] = [os.path.relpath(d, root) for d in df["run_dir"]]
    for col in ("track", "step", "seed", "preset", "created", "reason"):
        if col not in df:
            df[col] = None
    return df


def _variant_diff(variants: list[str]) -> str:
    """The keys in which recipe variants differ, as `key=value` per variant."""
    flats = [_flat(json.loads(v)) for v in variants]
    keys = sorted(
        {k for f in flats for k in f if len({json.dumps(g.get(k)) for g in flats}) > 1}
    )
    return "; ".join(
        ", ".join(f"{k}={f.get(k)!r}" for k in keys[:4]) or "same keys" for f in flats
    )


def count(n: int, word: str) -> str:
    """`1 run`, `3 runs`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _listing(counts: pd.Series, word: str = "run") -> str:
    """`paper (48 runs), smoke (3 runs)`: most first, then by name."""
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    return ", ".join(f"{k} ({count(int(v), word)})" for k, v in counts.items())


def _pick(counts: pd.Series, what: str, how: str) -> str:
    """The most frequent value of `counts`; a tie is an error saying `how` to choose."""
    top = counts[counts == counts.max()]
    if len(top) > 1:
        raise ValueError(f"runs of several {what}: {_listing(counts)}; {how}")
    return str(top.index[0])


def _reason(row: pd.Series, names: set[str], metric: str) -> str | None:
    """Why a run of the track cannot enter any staircase, or None."""
    if row["step"] not in names:
        return f"unknown step {row['step']!r}"
    if row["status"] == "failed":
        return f"failed: {row['reason']}" if row["reason"] else "failed"
    if row["status"] != "done":
        return str(row["status"])
    value = row.get(metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"no {metric} in result"
    return None


def select_runs(
    df: pd.DataFrame,
    track: str,
    preset: str | None = None,
    allow_mixed: bool = False,
    metric: str = "top1",
) -> Selection:
    """The runs of one staircase: one track, one preset and one recipe unless `allow_mixed`.

    Without `preset`, the preset with the most usable runs is drawn (a tie is an error);
    within it, the recipe variant with the most runs. Everything else is listed in
    `excluded` with its reason; of two done runs of the same step and seed, the newer stays.
    Runs of `ORIGINAL_PRESET` on the track's first step make the reference row.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    track_steps = steps(track)
    notes: list[str] = []
    other = df[df["track"] != track]
    tracks = _listing(other["track"].fillna("?").value_counts())
    if len(other):
        notes.append(f"runs of other tracks not drawn: {tracks}")
    df = df[df["track"] == track].copy()
    if df.empty:
        raise ValueError(f"no runs of track {track!r}; found {tracks}")
    if preset is not None and preset not in set(df["preset"]):
        found = _listing(df["preset"].value_counts())
        raise ValueError(
            f"no runs of preset {preset!r} on {track}; presets found: {found}"
        )
    names = {s.name for s in track_steps}
    df["why"] = [_reason(r, names, metric) for _, r in df.iterrows()]
    usable = df["why"].isna()
    ref = (
        usable & (df["preset"] == ORIGINAL_PRESET) & (df["step"] == track_steps[0].name)
    )
    chosen = MIXED if allow_mixed else preset
    if chosen is None:
        pool = df.loc[usable & ~ref] if (usable & ~ref).any() else df.loc[usable]
        counts = (pool if len(pool) else df)["preset"].value_counts()
        how = "choose one with --preset, or pool them with --allow-mixed"
        chosen = _pick(counts, f"presets on {track}", how)
        if len(counts) > 1:
            notes.append(f"preset {chosen!r} drawn (most runs); choose with --preset")
    if chosen != ORIGINAL_PRESET:
        df.loc[ref, "why"] = "reference"
    if not allow_mixed:
        wrong = df["why"].isna() & (df["preset"] != chosen)
        df.loc[wrong, "why"] = [f"other preset {p!r}" for p in df.loc[wrong, "preset"]]
        for mask in (df["why"].eq("reference"), df["why"].isna()):
            notes += _keep_one_recipe(df, mask, chosen)
    _drop_duplicates(df)
    excluded = df[df["why"].notna() & df["why"].ne("reference")]
    excluded = excluded[["run", "step", "seed", "preset", "why"]]
    sel = Selection(
        track=track,
        preset=chosen,
        metric=metric,
        runs=df[df["why"].isna()].drop(columns="why"),
        reference=df[df["why"].eq("reference")].drop(columns="why"),
        excluded=excluded.rename(columns={"why": "reason"}).reset_index(drop=True),
        notes=notes,
    )
    sel.warnings = _seed_warnings(sel.runs, track_steps)
    return sel


def _keep_one_recipe(df: pd.DataFrame, mask: pd.Series, preset: str) -> list[str]:
    """Mark the runs in `mask` not of its most common recipe variant; say how they differ."""
    if not mask.any():
        return []
    counts = df.loc[mask, "variant"].value_counts()
    how = "pass --allow-mixed to pool them"
    keep = _pick(counts, f"recipes in preset {preset!r}", how)
    if len(counts) == 1:
        return []
    df.loc[mask & (df["variant"] != keep), "why"] = "other recipe"
    diff = _variant_diff([keep, *[v for v in counts.index if v != keep]])
    return [f"recipes differ ({diff}); the first, with most runs, is drawn"]


def _drop_duplicates(df: pd.DataFrame) -> None:
    """Of runs of the same step, seed and recipe, mark all but the newest."""
    done = df[df["why"].isna() | df["why"].eq("reference")]
    done = done.assign(kind=done["why"].fillna("step"))
    done = done.sort_values(["created", "run_dir"], na_position="first")
    dup = done.duplicated(["kind", "preset", "variant", "step", "seed"], keep="last")
    df.loc[dup[dup].index, "why"] = "duplicate seed (a newer run is drawn)"


def _seed_warnings(runs: pd.DataFrame, track_steps: tuple[Step, ...]) -> list[str]:
    """Warnings for steps with fewer seeds than the most-seeded step, or none."""
    n = runs.groupby("step")["seed"].nunique()
    most = int(n.max()) if len(n) else 0
    out = []
    short = [
        f"{s.name} ({int(n.get(s.name, 0))})"
        for s in track_steps
        if n.get(s.name, 0) < most
    ]
    if short:
        out.append(f"fewer seeds than the others ({most}): {', '.join(short)}")
    for step, group in runs.groupby("step"):
        for col in ("params", "gflops"):
            if col in group and group[col].nunique() > 1:
                out.append(
                    f"{step}: runs disagree on {col} ({sorted(set(group[col]))})"
                )
    return out


def _paper_by_step(track: str) -> dict[str, PaperRow]:
    """The paper's rows of `track` by step name (the reference row under its own name)."""
    return {r.step: r for r in paper_rows() if r.track == track}


def _reference_name(track: str) -> str | None:
    """The paper's name for the original-recipe row of `track` (its order-0 row)."""
    return next(
        (r.step for r in paper_rows() if r.track == track and r.order == 0), None
    )


def _stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for fewer than two values)."""
    s = pd.Series(values, dtype=float)
    return (
        float(s.mean()) if len(s) else math.nan,
        float(s.std(ddof=1)) if len(s) > 1 else math.nan,
    )


def _row(
    track: str, step: Step | None, name: str, runs: pd.DataFrame, metric: str
) -> dict[str, Any]:
    """One staircase row from the runs of one step."""
    runs = runs.sort_values("seed")
    values = [float(v) for v in runs[metric]]
    mean, std = _stats(values)
    first = runs.iloc[0] if len(runs) else {}
    return {
        "track": track,
        "index": step.index if step else 0,
        "step": name,
        "group": (step or steps(track)[0]).group,
        "on_path": step.on_path if step else False,
        "reference": step is None,
        "parent": step.parent if step else None,
        "n": len(values),
        "seeds": [int(s) if pd.notna(s) else None for s in runs["seed"]],
        "values": values,
        "top1_mean": mean,
        "top1_std": std,
        "params": _num(first.get("params") if len(runs) else None),
        "gflops": _num(first.get("gflops") if len(runs) else None),
    }


def _num(value: Any) -> float:
    """`value` as a float, NaN for None."""
    return math.nan if value is None else float(value)


def _finish(frame: pd.DataFrame, track: str, with_paper: bool) -> pd.DataFrame:
    """Add the paper's numbers (when asked) and the changes against each row's parent."""
    paper = _paper_by_step(track)
    ref = _reference_name(track)
    for col, attr in (
        ("paper_top1", "top1"),
        ("paper_top1_std", "top1_std"),
        ("paper_gflops", "gflops"),
    ):
        frame[col] = [
            _num(getattr(paper[s], attr)) if with_paper and s in paper else math.nan
            for s in frame["step"]
        ]
    # The first step has no parent; it compares with the original-recipe reference row.
    first = steps(track)[0].name
    parents = [
        ref if s == first else p
        for s, p in zip(frame["step"], frame["parent"], strict=True)
    ]
    for col, src in (("change", "top1_mean"), ("paper_change", "paper_top1")):
        by_step = dict(zip(frame["step"], frame[src], strict=True))
        frame[col] = [
            v - by_step.get(p, math.nan) if p else math.nan
            for v, p in zip(frame[src], parents, strict=True)
        ]
    return frame[list(COLUMNS)].reset_index(drop=True)


def aggregate(sel: Selection, with_paper: bool | None = None) -> pd.DataFrame:
    """The staircase of a selection: one row per step (and the reference row, if any).

    `with_paper` adds the paper's numbers beside the runs' (default: when the preset is
    `PAPER_PRESET`); the paper's reference row then appears even without reference runs.
    """
    if with_paper is None:
        with_paper = sel.preset == PAPER_PRESET
    rows = []
    ref = _reference_name(sel.track)
    if ref and (len(sel.reference) or with_paper):
        rows.append(_row(sel.track, None, ref, sel.reference, sel.metric))
    for step in steps(sel.track):
        rows.append(
            _row(
                sel.track,
                step,
                step.name,
                sel.runs[sel.runs["step"] == step.name],
                sel.metric,
            )
        )
    return _finish(pd.DataFrame(rows), sel.track, with_paper)


def paper_staircase(track: str) -> pd.DataFrame:
    """The paper's own staircase of `track` from the shipped numbers (no runs, n unknown)."""
    paper = _paper_by_step(track)
    rows = []
    for name, row in sorted(paper.items(), key=lambda kv: kv[1].order):
        step = _find_step(track, name)
        rows.append(
            {
                **_row(
                    track, step, name, pd.DataFrame(columns=["seed", "top1"]), "top1"
                ),
                "n": math.nan,
                "top1_mean": _num(row.top1),
                "top1_std": _num(row.top1_std),
                "gflops": _num(row.gflops),
            }
        )
    return _finish(pd.DataFrame(rows), track, with_paper=False)


def figure_label_mismatches(track: str, tol: float = 0.05 + 1e-9) -> list[str]:
    """Where the paper's Figure 2 labels disagree with its table beyond rounding."""
    out = []
    for r in paper_rows():
        if r.track != track:
            continue
        for what, table, fig in (
            ("top-1", r.top1, r.figure_top1),
            ("GFLOPs", r.gflops, r.figure_gflops),
        ):
            if table is not None and fig is not None and abs(table - fig) > tol:
                out.append(f"{r.step} {what}: table {table:g}, figure {fig:g}")
    return out
