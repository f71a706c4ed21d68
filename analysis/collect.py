"""Collect run records into one frame, choose the runs of one staircase, aggregate per step.

The staircase of a track is one row per roadmap step (from `roadmap.steps`, in order), plus a
reference row for the original (torchvision) recipe where there is one. A step's `change` is
its mean top-1 minus that of its `parent` (the previous on-path step; side branches compare
with the on-path step they start from); the first step compares with the reference row.
A bar is one step's current spec, one recipe and one dataset (`analysis.bars`): runs of
another dataset or of a spec the step no longer has are left out, each with its reason.
Nothing here names a design toggle: steps, groups and parents all come from `roadmap.steps`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.bars import (
    known_names,
    listing,
    most_frequent,
    other_dataset,
    other_recipe,
    reason_where,
)
from analysis.changes import ALL_CHANGE_COLUMNS, all_change_columns
from analysis.paper import PAPER_SEEDS, paper_by_step, reference_name
from analysis.pooled import DEFAULT_MARGIN
from analysis.precision import bar_precision
from analysis.run_rows import run_row
from analysis.variants import find_step
from experiments.runs import records
from roadmap.errors import UserError
from roadmap.steps import Step, steps

PAPER_PRESET = "paper"  # the preset whose numbers the paper's tables report
# The torchvision recipe: its runs of a track's first step make the reference row.
ORIGINAL_PRESET = "original"
METRICS = ("top1", "best_top1", "ema_top1")
MIXED = "mixed"  # the preset label of a staircase that pools presets (allow_mixed)

# Columns of a staircase frame, in order.
COLUMNS = (
    "track", "index", "step", "group", "on_path", "reference", "parent", "n", "seeds",
    "values", "top1_mean", "top1_std", "change", *ALL_CHANGE_COLUMNS, "params", "gflops",
    "precision", "paper_top1", "paper_top1_std", "paper_gflops", "paper_change",
)  # fmt: skip


@dataclass
class Selection:
    """The runs chosen for one staircase, and what was left out of it and why."""

    track: str
    preset: str  # the preset drawn, or MIXED
    metric: str
    runs: pd.DataFrame  # one row per (step, seed), status done
    reference: pd.DataFrame  # original-recipe runs of the track's baseline step
    excluded: pd.DataFrame  # run, step, seed, preset, reason
    points: pd.DataFrame = field(default_factory=pd.DataFrame)  # chosen runs of design points
    steps: tuple[str, ...] = ()  # the steps drawn (all, or --steps); others may be parents
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_runs(root: str | os.PathLike) -> pd.DataFrame:
    """Every run under `root`, one row each, from its records only (`analysis.run_rows`).

    Columns: run_dir, run, track, step, seed, index, preset, created, what makes its bar
    (`recipe_json`, `spec_change`, `dataset`, `dataset_label`), then every result key; a run
    with no result is `unfinished`. In roadmap order (track, step, seed).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    rows = [run_row(root, d) for d in records.run_dirs(root)]
    if not rows:
        raise UserError(f"no run records ({records.CONFIG}) under {root}")
    df = pd.DataFrame(rows)
    df["order"] = df["index"].where(df["index"] > 0, 10**9)  # design points after the steps
    df = df.sort_values(["track", "order", "step", "seed"], kind="stable")
    return df.drop(columns="order").reset_index(drop=True)


def _why_unusable(row: pd.Series, names: set[str], metric: str) -> str | None:
    """Why a run of the track cannot enter any staircase, or None."""
    if row["step"] not in names:
        return f"unknown step {row['step']!r}"
    if isinstance(row.get("spec_change"), str):
        return f"stale spec: {row['spec_change']} (the step table changed since it ran)"
    if row["status"] in ("failed", "unreadable"):
        return f"{row['status']}: {row['reason']}" if row["reason"] else row["status"]
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
    """The runs of one staircase: one track, dataset, preset and recipe (see below).

    The rules, in order; rules 2-6 each give the reasons they find to leave runs out (a
    Series indexed like the runs, NaN or None where the rule has none), and a run keeps
    the first reason it is given:
    1. runs of other tracks are not drawn (`_of_track`; a note counts them);
    2. unknown step or design point, a spec its step no longer has (`same_run.spec_change`),
       failed, no result yet, no value for `metric` (`_unusable`);
    3. `preset`, else the one with the most usable runs (a tie is an error): `_other_preset`;
    4. the dataset with the most of the remaining runs (a tie is an error): `other_dataset`;
    5. within it the recipe with the most runs (a tie is an error): `other_recipe`;
    6. of two done runs of the same step, seed and recipe, the newer stays: `_duplicates`;
    7. usable runs of `ORIGINAL_PRESET` on the track's first step (`_baseline_runs`) are
       the reference row unless that preset is drawn: rule 3 passes them by, and rules 5
       and 6 judge them among themselves.
    `allow_mixed` skips rules 3 and 5 (runs of every preset and recipe are pooled, with a
    warning naming what differs); rules 2 and 4 always hold. Runs of design points are judged
    with the rest and kept apart (`points`, for `roadmap effects`); the staircase draws steps.
    Long because this docstring is the one list of the rules.
    """
    if metric not in METRICS:
        raise UserError(f"metric must be one of {METRICS}, got {metric!r}")
    track_steps = steps(track)
    runs, notes = _of_track(df, track, preset)
    reasons = _unusable(runs, known_names(runs["step"], track), metric)
    baseline = _baseline_runs(runs, reasons.isna(), track_steps[0].name)
    chosen = MIXED if allow_mixed else preset
    if chosen is None:
        chosen, note = _most_runs_preset(runs, reasons.isna(), baseline, track)
        notes += note
    is_ref = baseline & (chosen != ORIGINAL_PRESET)
    if not allow_mixed:
        reasons = _keep_first_reason(reasons, _other_preset(runs, reasons.isna() & ~is_ref, chosen))
    found, note = other_dataset(runs, reasons.isna())
    reasons, notes = _keep_first_reason(reasons, found), notes + note
    reasons, note, warnings = _recipes(runs, reasons, is_ref, chosen, allow_mixed)
    notes += note
    reasons = _keep_first_reason(reasons, _duplicates(runs, reasons.isna(), is_ref))
    chosen_runs = runs[reasons.isna() & ~is_ref]
    of_step = chosen_runs["step"].isin([s.name for s in track_steps])
    drawn, points = chosen_runs[of_step], chosen_runs[~of_step]
    if len(points):
        notes.append(f"{len(points)} run(s) of design points not drawn (see roadmap effects)")
    return Selection(
        track=track,
        preset=chosen,
        metric=metric,
        runs=drawn,
        points=points,
        reference=runs[reasons.isna() & is_ref],
        excluded=_excluded(runs, reasons),
        notes=notes,
        warnings=warnings + _seed_warnings(drawn, track_steps),
    )


def _recipes(
    runs: pd.DataFrame, reasons: pd.Series, is_ref: pd.Series, preset: str, mixed: bool
) -> tuple[pd.Series, list[str], list[str]]:
    """Rule 5 of `select_runs` on the reference and the staircase runs: reasons, notes, warnings.

    With `mixed`, every recipe is kept and their pooling is a warning.
    """
    notes, warnings = [], []
    for pool in (is_ref, ~is_ref):
        found, diff = other_recipe(runs, reasons.isna() & pool, preset, mixed)
        if not diff:
            continue
        if mixed:
            warnings.append(f"--allow-mixed pools recipes that differ ({diff})")
        else:
            reasons = _keep_first_reason(reasons, found)
            notes.append(f"recipes differ ({diff}); the first, with most runs, is drawn")
    return reasons, notes, warnings


def draw_only(sel: Selection, names: Sequence[str]) -> Selection:
    """`sel`, drawing only the steps `names`; the others' runs stay, as parents of changes."""
    chosen = [s for s in steps(sel.track) if s.name in set(names)]
    return replace(
        sel, steps=tuple(s.name for s in chosen), warnings=_seed_warnings(sel.runs, chosen)
    )


def _keep_first_reason(reasons: pd.Series, more: pd.Series) -> pd.Series:
    """`reasons`, with `more` where a run has no reason yet: the first reason wins."""
    return reasons.where(reasons.notna(), more)


def _of_track(df: pd.DataFrame, track: str, preset: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The runs of `track` and a note counting the others; an error if none or no `preset`."""
    other = df[df["track"] != track]
    tracks = listing(other["track"].fillna("?").value_counts())
    notes = [f"runs of other tracks not drawn: {tracks}"] if len(other) else []
    runs = df[df["track"] == track]
    if runs.empty:
        raise UserError(f"no runs of track {track!r}; found {tracks}")
    if preset is not None and preset not in set(runs["preset"]):
        found = f"presets found: {listing(runs['preset'].value_counts())}"
        raise UserError(f"no runs of preset {preset!r} on {track}; {found}")
    return runs, notes


def _unusable(runs: pd.DataFrame, names: set[str], metric: str) -> pd.Series:
    """Why each run cannot enter any staircase (`_why_unusable`), None for a usable one."""
    why = [_why_unusable(row, names, metric) for _, row in runs.iterrows()]
    return pd.Series(why, index=runs.index)


def _baseline_runs(runs: pd.DataFrame, usable: pd.Series, first: str) -> pd.Series:
    """Which runs are usable runs of `ORIGINAL_PRESET` on the track's first step `first`."""
    return usable & (runs["preset"] == ORIGINAL_PRESET) & (runs["step"] == first)


def _most_runs_preset(
    runs: pd.DataFrame, usable: pd.Series, baseline: pd.Series, track: str
) -> tuple[str, list[str]]:
    """The preset with the most usable runs, and a note if there were several presets.

    Baseline runs count only where no other run is usable; every run counts where none is.
    """
    pool = runs[usable & ~baseline] if (usable & ~baseline).any() else runs[usable]
    counts = (pool if len(pool) else runs)["preset"].value_counts()
    how = "choose one with --preset, or pool them with --allow-mixed"
    chosen = most_frequent(counts, f"presets on {track}", how)
    note = f"preset {chosen!r} drawn (most runs); choose with --preset"
    return chosen, [note] if len(counts) > 1 else []


def _other_preset(runs: pd.DataFrame, pool: pd.Series, preset: str) -> pd.Series:
    """`other preset 'x'` for the runs in `pool` not of `preset`."""
    other = pool & (runs["preset"] != preset)
    return reason_where(other, runs["preset"].map(lambda name: f"other preset {name!r}"))


def _duplicates(runs: pd.DataFrame, pool: pd.Series, is_ref: pd.Series) -> pd.Series:
    """All but the newest (`created`) of runs in `pool` of one role, recipe, step and seed."""
    done = runs[pool].assign(is_ref=is_ref[pool])
    done = done.sort_values(["created", "run_dir"], na_position="first")
    keys = ["is_ref", "preset", "recipe_json", "dataset", "step", "seed"]
    drawn = done.groupby(keys, dropna=False)["run"].transform("last").reindex(runs.index)
    older = done.duplicated(keys, keep="last").reindex(runs.index, fill_value=False)
    return reason_where(older, "duplicate seed (the newer run " + drawn.astype(str) + " is drawn)")


def _excluded(runs: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    """The runs given a reason: run, step, seed, preset and the reason."""
    left_out = reasons.notna()
    excluded = runs.loc[left_out, ["run", "step", "seed", "preset"]]
    return excluded.assign(reason=reasons[left_out]).reset_index(drop=True)


def _seed_warnings(runs: pd.DataFrame, track_steps: Sequence[Step]) -> list[str]:
    """Warnings: steps with fewer seeds than the most-seeded one, runs that disagree on cost."""
    runs = runs[runs["step"].isin([s.name for s in track_steps])]
    seeds = runs.groupby("step")["seed"].nunique()
    most = int(seeds.max()) if len(seeds) else 0
    out = []
    short = [s.name for s in track_steps if seeds.get(s.name, 0) < most]
    if short:
        listed = ", ".join(f"{name} ({int(seeds.get(name, 0))})" for name in short)
        out.append(f"fewer seeds than the others ({most}): {listed}")
    for step, group in runs.groupby("step"):
        for col in ("params", "gflops"):
            if col in group and group[col].nunique() > 1:
                values = sorted(set(group[col]))
                out.append(f"{step}: runs disagree on {col} ({values})")
    return out


def _stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for fewer than two values)."""
    series = pd.Series(values, dtype=float)
    mean = float(series.mean()) if len(series) else math.nan
    return mean, float(series.std(ddof=1)) if len(series) > 1 else math.nan


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
        "run_dirs": [str(d) for d in runs["run_dir"]] if "run_dir" in runs else [],
        "top1_mean": mean,
        "top1_std": std,
        "params": _num(first.get("params") if len(runs) else None),
        "gflops": _num(first.get("gflops") if len(runs) else None),
        "precision": bar_precision(runs),  # from the runs' records (analysis.precision)
    }


def _num(value: Any) -> float:
    """`value` as a float, NaN for None."""
    return math.nan if value is None else float(value)


def _finish(frame: pd.DataFrame, track: str, with_paper: bool, margin: float) -> pd.DataFrame:
    """Add the paper's numbers (if asked), the changes against each parent, attrs["pooled"]."""
    paper = paper_by_step(track)
    ref = reference_name(track)
    for attr in ("top1", "top1_std", "gflops"):
        frame[f"paper_{attr}"] = [
            _num(getattr(paper[s], attr)) if with_paper and s in paper else math.nan
            for s in frame["step"]
        ]
    # The first step has no parent; it compares with the original-recipe reference row.
    first = steps(track)[0].name
    parents = [
        ref if step == first else parent
        for step, parent in zip(frame["step"], frame["parent"], strict=True)
    ]
    for col, src in (("change", "top1_mean"), ("paper_change", "paper_top1")):
        by_step = dict(zip(frame["step"], frame[src], strict=True))
        frame[col] = [
            value - by_step.get(parent, math.nan) if parent else math.nan
            for value, parent in zip(frame[src], parents, strict=True)
        ]
    cols, pooled = all_change_columns(frame.to_dict("records"), parents, margin)
    out = frame.assign(**cols)[list(COLUMNS)].reset_index(drop=True)
    out.attrs["pooled"] = pooled
    return out


def aggregate(
    sel: Selection, with_paper: bool | None = None, margin: float = DEFAULT_MARGIN
) -> pd.DataFrame:
    """The staircase of a selection: one row per step (and the reference row, if any).

    `with_paper` adds the paper's numbers beside the runs' (default: when the preset is
    `PAPER_PRESET`); the paper's reference row then appears even without reference runs.
    `margin` is the equivalence margin of the pooled tests (`analysis.pooled`).
    """
    if with_paper is None:
        with_paper = sel.preset == PAPER_PRESET
    track, runs, metric = sel.track, sel.runs, sel.metric
    rows = []
    ref = reference_name(track)
    if ref and (len(sel.reference) or with_paper):
        rows.append(_row(track, None, ref, sel.reference, metric))
    for step in steps(track):
        of_step = runs[runs["step"] == step.name]
        rows.append(_row(track, step, step.name, of_step, metric))
    frame = _finish(pd.DataFrame(rows), track, with_paper, margin)
    if not sel.steps:
        return frame
    # Only the chosen steps are drawn; a step not chosen still gave its runs to the change of
    # a chosen step whose parent it is. The reference row goes with the first step.
    first = steps(track)[0].name
    keep = frame["step"].isin(sel.steps) | (frame["reference"] & (first in sel.steps))
    pooled = frame.attrs["pooled"]
    frame = frame[keep].reset_index(drop=True)
    frame.attrs["pooled"] = pooled
    return frame


def paper_staircase(track: str, margin: float = DEFAULT_MARGIN) -> pd.DataFrame:
    """The paper's own staircase of `track` from the shipped numbers (no runs, n unknown)."""
    paper = paper_by_step(track)
    no_runs = pd.DataFrame(columns=["seed", "top1"])
    rows = [
        {
            **_row(track, find_step(track, name), name, no_runs, "top1"),
            "n": PAPER_SEEDS if row.top1_std is not None else math.nan,
            "top1_mean": _num(row.top1),
            "top1_std": _num(row.top1_std),
            "gflops": _num(row.gflops),
        }
        for name, row in sorted(paper.items(), key=lambda kv: kv[1].order)
    ]
    return _finish(pd.DataFrame(rows), track, False, margin)
