"""What `roadmap staircase` writes and prints beside the table: pooled variance, power, fidelity.

`stats_<track>.csv` (the pooled sigma, its df, Bartlett's test, the margin), `power_<track>.csv`
(with `--power`), `fidelity_<track>.csv` and its scatter (from a root), and their lines.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis.collect import paper_staircase
from analysis.fidelity import fidelity, fidelity_line, points, write_fidelity
from analysis.fidelity_figure import draw_fidelity
from analysis.power import ALPHA, POWER, family_alpha, power_table

SMOKE_PRESET = "smoke"  # a pipeline check: its title says so


def pooled_line(frame: pd.DataFrame, track: str) -> str:
    """One line on the track's pooled model: sigma, df, Bartlett, and the verdicts' count."""
    pooled = frame.attrs["pooled"]
    if not pooled.source:
        return f"pooled {track}: no pooled model (fewer than two seeds on every step)"
    verdicts = frame["verdict"][frame["verdict"] != ""].value_counts()
    counts = ", ".join(f"{n} {v}" for v, n in verdicts.items())
    line = (
        f"pooled {track} ({pooled.source}): sigma {pooled.sigma:.3f} on {pooled.df:g} df; "
        f"Bartlett's test over {pooled.groups} steps: statistic {pooled.bartlett_stat:.2f}, "
        f"p = {pooled.bartlett_p:.2f}; verdicts (Holm, TOST ±{pooled.margin:g}): {counts}"
    )
    return line + tost_note(frame)


def tost_note(frame: pd.DataFrame) -> str:
    """Where the TOST cannot reach equivalence: how many changes, and the seeds it needs."""
    pooled = frame.attrs["pooled"]
    if not pooled.tost_unreachable:
        return ""
    n = frame.loc[frame["pooled_p"].notna(), "n"].astype(int)
    seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
    needs = (
        f"needs {pooled.tost_seeds_needed:.0f} seeds per step"
        if pd.notna(pooled.tost_seeds_needed)
        else "needs more seeds per step than the planner looks at"
    )
    return (
        f"\nequivalent at margin {pooled.margin:g} is unreachable with {seeds} seeds "
        f"({pooled.tost_unreachable} of {int(frame['pooled_p'].notna().sum())} changes): "
        f"{needs} at sigma {pooled.sigma:.3f} (80% TOST power at a true change of 0)"
    )


def write_stats(frame: pd.DataFrame, out: Path, track: str) -> Path:
    """Write `stats_<track>.csv`: one row of the track's `analysis.pooled.Pooled`."""
    path = out / f"stats_{track}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    row = pd.DataFrame([frame.attrs["pooled"].row(track)])
    row.round(6).to_csv(path, index=False, lineterminator="\n")
    return path


def write_power(frame: pd.DataFrame, out: Path, track: str, delta: float) -> list[Path]:
    """Print the power table at `delta` and write `power_<track>.csv` (none without a model)."""
    pooled = frame.attrs["pooled"]
    if not pooled.source:
        print(f"power {track}: no pooled sigma to plan from")
        return []
    m = int(frame["pooled_p"].notna().sum())
    alpha = family_alpha(m)
    table = power_table(frame.to_dict("records"), pooled.sigma, pooled.df, delta, alpha)
    print(
        f"power {track}: seeds per step to detect {delta:g} points at {POWER:.0%} power "
        f"(two-sided alpha {ALPHA}/{m} = {alpha:.4g}, Holm's first step), "
        f"from sigma {pooled.sigma:.3f} on {pooled.df:g} df"
    )
    print(table.round(3).to_string(index=False))
    needed = table["seeds_needed"].max() if len(table) else float("nan")
    if pd.notna(needed):
        print(
            f"to get there: roadmap sweep --seeds 0-{int(needed) - 1} (every step alike; "
            "finished runs are not retrained); extending only the steps chosen after seeing "
            "results is exploratory"
        )
    path = out / f"power_{track}.csv"
    table.round(6).to_csv(path, index=False, lineterminator="\n")
    return [path]


def root_fidelity(
    frame: pd.DataFrame, paper: pd.DataFrame, out: Path, track: str
) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """The fidelity table and points of a root's staircase; writes `fidelity_<track>.csv`."""
    table = fidelity(frame, paper, track)
    path = write_fidelity(table, out / f"fidelity_{track}.csv")
    print(fidelity_line(table))
    return table, points(frame, paper), path


def staircase_title(label: str, preset: str, table: pd.DataFrame) -> str:
    """The staircase figure's title; for the smoke preset, that it is a pipeline check."""
    title = f"{label} · preset {preset}"
    if preset != SMOKE_PRESET:
        return title
    rho = table.iloc[0]["spearman"]
    measured = "n/a" if pd.isna(rho) else f"{rho:.2f}".replace("-", "−")
    return f"{title}\na pipeline check, not the paper (Spearman ρ {measured} vs. the paper)"


def fidelity_title(label: str, preset: str, table: pd.DataFrame) -> str:
    """The scatter's title: the measured correlations and signs."""
    row = table.iloc[0]
    rho = "n/a" if pd.isna(row["spearman"]) else f"{row['spearman']:.2f}"
    tau = "n/a" if pd.isna(row["kendall"]) else f"{row['kendall']:.2f}"
    return (
        f"{label} · preset {preset} against the paper\n"
        f"Spearman {rho}, Kendall {tau}, signs agree {row['sign_agree']} of {row['sign_n']}"
    )


def positive(text: str) -> float:
    """A positive number of points (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of points, got {text!r}")
    return value


def root_statistics(
    args: argparse.Namespace, frame: pd.DataFrame, names: tuple[str, str, str], width: float
) -> tuple[list[Path], pd.DataFrame]:
    """Print and write a root's pooled model, power table and fidelity: paths, fidelity table.

    `names`: the track, its display name and the preset.
    """
    track, label, preset = names
    paths = pooled_outputs(args, frame, track)
    paper = paper_staircase(track, args.equivalence)
    table, pts, path = root_fidelity(frame, paper, args.out, track)
    title = fidelity_title(label, preset, table)
    paths += draw_fidelity(pts, args.out / f"fidelity_{track}", args.formats, title, width)
    return [*paths, path], table


def pooled_outputs(args: argparse.Namespace, frame: pd.DataFrame, track: str) -> list[Path]:
    """Print the pooled model's line, write stats_TRACK.csv and (--power) the power table."""
    print(pooled_line(frame, track))
    paths = [write_stats(frame, args.out, track)]
    if args.power:
        paths += write_power(frame, args.out, track, args.power)
    return paths
