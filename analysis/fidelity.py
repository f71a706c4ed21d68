"""How much a root's staircase resembles the paper's: its changes against the paper's changes.

Over the changes the root has (a change and a paper change on the same step): Spearman's and
Kendall's (tau-b) correlation of the root's per-step changes with the paper's (scipy), each
with a 95% percentile interval from a bootstrap over seeds (each step's seeds drawn with
replacement, `BOOTSTRAP` times from a fixed seed), and the signs that agree (`sign_agree` of
`sign_n`, the changes where the paper's is not zero). The same again over the paper's
significant changes (its pooled test after Holm, `analysis.pooled`). `n_changes` counts them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

BOOTSTRAP = 1000  # seed replicates
RNG_SEED = 0
MIN_CHANGES = 3  # fewer changes: no correlation
SUBSETS = ("all", "paper_significant")
# Columns of `fidelity_<track>.csv`, one row per subset.
FIDELITY_COLUMNS = (
    "track", "subset", "n_changes", "spearman", "spearman_ci95_low", "spearman_ci95_high",
    "kendall", "kendall_ci95_low", "kendall_ci95_high", "sign_agree", "sign_n",
)  # fmt: skip


def points(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """One row per change both have: step, the root's change and interval, the paper's."""
    theirs = paper.set_index("step")
    mine = frame[~frame["reference"] & frame["change"].notna()]
    mine = mine[mine["step"].isin(theirs.index[theirs["change"].notna()])]
    low = mine["pooled_ci95_low"].fillna(mine["change_ci95_low"])
    high = mine["pooled_ci95_high"].fillna(mine["change_ci95_high"])
    steps = list(mine["step"])
    return pd.DataFrame(
        {
            "step": steps,
            "change": mine["change"].to_numpy(),
            "low": low.to_numpy(),
            "high": high.to_numpy(),
            "paper_change": theirs.loc[steps, "change"].to_numpy(),
            "paper_low": theirs.loc[steps, "pooled_ci95_low"].to_numpy(),
            "paper_high": theirs.loc[steps, "pooled_ci95_high"].to_numpy(),
            "paper_significant": (theirs.loc[steps, "pooled_p_holm"] < 0.05).to_numpy(),
        }
    )


def _replicates(frame: pd.DataFrame, steps: list[str]) -> np.ndarray:
    """Bootstrap replicates (BOOTSTRAP x changes) of the changes of `steps`, over seeds."""
    rng = np.random.default_rng(RNG_SEED)
    by_step = frame.set_index("step")
    means: dict[str, np.ndarray] = {}
    for name, row in by_step.iterrows():
        values = np.asarray(row["values"], dtype=float)
        if len(values):
            pick = rng.integers(0, len(values), (BOOTSTRAP, len(values)))
            means[name] = values[pick].mean(1)
    nan = np.full(BOOTSTRAP, np.nan)
    if not steps:  # no change both have (one step, or none with a parent)
        return np.empty((BOOTSTRAP, 0))
    return np.stack(
        [means.get(s, nan) - means.get(by_step.loc[s, "change_parent"], nan) for s in steps],
        axis=1,
    )


def kendall_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of `x` with each row of `ys`, vectorised over the rows."""
    i, j = np.triu_indices(len(x), 1)
    sx = np.sign(x[i] - x[j])
    sy = np.sign(ys[:, i] - ys[:, j])
    ties = np.sqrt(np.count_nonzero(sx) * np.count_nonzero(sy, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sy * sx).sum(1) / ties


def spearman_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Spearman's rho of `x` with each row of `ys` (average ranks for ties)."""
    rx = stats.rankdata(x)
    ry = stats.rankdata(ys, axis=1)
    rx, ry = rx - rx.mean(), ry - ry.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ry @ rx) / np.sqrt((ry**2).sum(1) * (rx**2).sum())


def _interval(values: np.ndarray) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of the finite replicates (NaN if none)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _subset(pts: pd.DataFrame, reps: np.ndarray, track: str, subset: str) -> dict:
    """The fidelity row of one subset of the changes."""
    x, y = pts["paper_change"].to_numpy(), pts["change"].to_numpy()
    nonzero = x != 0
    row = {
        "track": track,
        "subset": subset,
        "n_changes": len(pts),
        "sign_agree": int((np.sign(x) == np.sign(y))[nonzero].sum()),
        "sign_n": int(nonzero.sum()),
    }
    if len(pts) < MIN_CHANGES or np.ptp(x) == 0 or np.ptp(y) == 0:
        return row | dict.fromkeys(FIDELITY_COLUMNS[3:9], math.nan)
    rho, tau = stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic
    rho_low, rho_high = _interval(spearman_rows(x, reps))
    tau_low, tau_high = _interval(kendall_rows(x, reps))
    return row | {
        "spearman": float(rho),
        "spearman_ci95_low": rho_low,
        "spearman_ci95_high": rho_high,
        "kendall": float(tau),
        "kendall_ci95_low": tau_low,
        "kendall_ci95_high": tau_high,
    }


def fidelity(frame: pd.DataFrame, paper: pd.DataFrame, track: str) -> pd.DataFrame:
    """The rows of `fidelity_<track>.csv`: every change both have, then the paper's significant."""
    pts = points(frame, paper)
    reps = _replicates(frame, list(pts["step"]))
    sig = pts["paper_significant"].to_numpy()
    rows = [
        _subset(pts, reps, track, SUBSETS[0]),
        _subset(pts[sig].reset_index(drop=True), reps[:, sig], track, SUBSETS[1]),
    ]
    return pd.DataFrame(rows, columns=list(FIDELITY_COLUMNS))


def fidelity_line(table: pd.DataFrame) -> str:
    """The one printed line: correlations with intervals and signs, for both subsets."""

    def part(row: pd.Series) -> str:
        signs = f"signs agree {row['sign_agree']} of {row['sign_n']}"
        if pd.isna(row["spearman"]):
            return f"{row['n_changes']} changes, {signs}"
        return (
            f"{row['n_changes']} changes, Spearman {row['spearman']:.2f} "
            f"[{row['spearman_ci95_low']:.2f}, {row['spearman_ci95_high']:.2f}], "
            f"Kendall {row['kendall']:.2f} "
            f"[{row['kendall_ci95_low']:.2f}, {row['kendall_ci95_high']:.2f}], {signs}"
        )

    every, sig = table.iloc[0], table.iloc[1]
    return (
        f"fidelity {every['track']} to the paper: {part(every)}; "
        f"over the paper's significant changes: {part(sig)}"
    )


def write_fidelity(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write `table` as CSV to `path`; the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.round(6).to_csv(path, index=False, lineterminator="\n")
    return path
