"""How much a root's staircase resembles the paper's: its changes against the paper's changes.

Over the changes the root has (a change and a paper change on the same step): Spearman's and
Kendall's (tau-b) correlation of the root's per-step changes with the paper's (scipy), each
with a 95% interval on Fisher's z (`correlation_interval`: Bonett and Wright's standard error
for Spearman, Fieller's for Kendall), and the signs that agree (`sign_agree` of `sign_n`, the
changes where the paper's is not zero). Against chance: the permutation distribution (`PERMUTATIONS`
pairings of the root's changes with the paper's at random) gives the expected agreement
(`sign_chance`) and one-sided p-values of the agreement and of Spearman (`sign_p`,
`spearman_p`). Against the paper's own noise: `NOISE_DRAWS` redraws of its step means within
their std / sqrt(n) (where the table gives a std) and their rounding (`PAPER_ROUNDING`) give
the 2.5-97.5 percentiles of Spearman and of the agreement (`*_noise_low/high`). The same again
over the paper's significant changes (its pooled test after Holm, `analysis.pooled`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

PERMUTATIONS = 10_000  # random pairings for the chance baseline
NOISE_DRAWS = 2000  # redraws of the paper's values within their noise and rounding
PAPER_ROUNDING = 0.01  # Tables 10-11 give top-1 and its std to two decimals
RNG_SEED = 0
MIN_CHANGES = 3  # fewer changes: no correlation
FISHER_SE = {"spearman": (3, 0.5, 1.0), "kendall": (4, 0.0, 0.437)}  # n - a, 1 + b r^2, c
SUBSETS = ("all", "paper_significant")
# Columns of `fidelity_<track>.csv`, one row per subset.
FIDELITY_COLUMNS = (
    "track", "subset", "n_changes", "spearman", "spearman_ci95_low", "spearman_ci95_high",
    "kendall", "kendall_ci95_low", "kendall_ci95_high", "sign_agree", "sign_n",
    "spearman_p", "sign_chance", "sign_p", "spearman_noise_low", "spearman_noise_high",
    "sign_noise_low", "sign_noise_high",
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


def paper_draws(paper: pd.DataFrame, steps: list[str]) -> np.ndarray:
    """The paper's changes of `steps` redrawn within its noise (NOISE_DRAWS x steps).

    Each step's mean gets N(0, std / sqrt(n)) where the table gives a std (itself redrawn
    within its rounding) and U(-PAPER_ROUNDING / 2, +PAPER_ROUNDING / 2) for its rounding; a
    change is then the redrawn mean minus its parent's.
    """
    rng = np.random.default_rng(RNG_SEED)
    rows = paper.set_index("step")
    half = PAPER_ROUNDING / 2
    std = rows["top1_std"].to_numpy(dtype=float)
    std = np.clip(std + rng.uniform(-half, half, (NOISE_DRAWS, len(rows))), 0.0, None)
    se = np.nan_to_num(std / np.sqrt(rows["n"].to_numpy(dtype=float)))
    noise = se * rng.standard_normal(se.shape) + rng.uniform(-half, half, se.shape)
    means = pd.DataFrame(rows["top1_mean"].to_numpy() + noise, columns=rows.index)
    parents = list(rows.loc[steps, "change_parent"])
    return (means[steps].to_numpy() - means[parents].to_numpy()).reshape(NOISE_DRAWS, len(steps))


def correlation_interval(r: float, n: int, kind: str) -> tuple[float, float]:
    """The 95% interval of a rank correlation on Fisher's z (NaN for too few changes).

    se(z) = sqrt((1 + b r^2) / (n - a)) ... sqrt(c (1 + b r^2) / (n - a)): Bonett and Wright
    (2000) for Spearman (a 3, b 1/2, c 1), Fieller, Hartley and Pearson (1957) for Kendall
    (a 4, b 0, c 0.437).
    """
    a, b, c = FISHER_SE[kind]
    if n <= a or not np.isfinite(r):
        return math.nan, math.nan
    z = math.atanh(float(np.clip(r, -1 + 1e-12, 1 - 1e-12)))
    half = stats.norm.ppf(0.975) * math.sqrt(c * (1 + b * r**2) / (n - a))
    return math.tanh(z - half), math.tanh(z + half)


def _agree(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Signs that agree of `x` and each row of `ys`, where x is not zero."""
    return ((np.sign(ys) == np.sign(x)) & (x != 0)).sum(-1)


def _chance(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The permutation baseline: expected agreement, one-sided p of agreement and Spearman."""
    rng = np.random.default_rng(RNG_SEED)
    perms = rng.permuted(np.tile(y, (PERMUTATIONS, 1)), axis=1)
    n = len(y)
    expected = ((x > 0).sum() * (y > 0).sum() + (x < 0).sum() * (y < 0).sum()) / n
    out = {
        "sign_chance": float(expected),
        "sign_p": float((1 + (_agree(x, perms) >= _agree(x, y)).sum()) / (1 + PERMUTATIONS)),
    }
    if np.ptp(x) > 0 and np.ptp(y) > 0:
        rho = spearman_rows(x, y[None])[0]
        more = (spearman_rows(x, perms) >= rho - 1e-12).sum()
        out["spearman_p"] = float((1 + more) / (1 + PERMUTATIONS))
    return out


def _noise(draws: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """2.5-97.5 percentiles of Spearman and of the agreement over the paper's redraws."""
    low, high = np.percentile(_agree(draws, y), [2.5, 97.5])  # where each draw is not zero
    out = {"sign_noise_low": low, "sign_noise_high": high}
    rho = spearman_rows(y, draws)
    rho = rho[np.isfinite(rho)]
    if len(rho):
        low, high = np.percentile(rho, [2.5, 97.5])
        out |= {"spearman_noise_low": float(low), "spearman_noise_high": float(high)}
    return {k: float(v) for k, v in out.items()}


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


def _subset(pts: pd.DataFrame, draws: np.ndarray, track: str, subset: str) -> dict:
    """The fidelity row of one subset of the changes."""
    x, y = pts["paper_change"].to_numpy(), pts["change"].to_numpy()
    row = dict.fromkeys(FIDELITY_COLUMNS, math.nan) | {
        "track": track,
        "subset": subset,
        "n_changes": len(pts),
        "sign_agree": int(_agree(x, y)),
        "sign_n": int((x != 0).sum()),
    }
    if not len(pts):
        return row
    row |= _chance(x, y) | _noise(draws, y)
    if len(pts) < MIN_CHANGES or np.ptp(x) == 0 or np.ptp(y) == 0:
        return row | {"spearman_p": math.nan}
    rho, tau = stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic
    spearman, kendall = (
        correlation_interval(r, len(pts), k) for r, k in ((rho, "spearman"), (tau, "kendall"))
    )
    return row | {
        "spearman": float(rho),
        "spearman_ci95_low": spearman[0],
        "spearman_ci95_high": spearman[1],
        "kendall": float(tau),
        "kendall_ci95_low": kendall[0],
        "kendall_ci95_high": kendall[1],
    }


def fidelity(frame: pd.DataFrame, paper: pd.DataFrame, track: str) -> pd.DataFrame:
    """The rows of `fidelity_<track>.csv`: every change both have, then the paper's significant."""
    pts = points(frame, paper)
    draws = paper_draws(paper, list(pts["step"]))
    sig = pts["paper_significant"].to_numpy()
    rows = [
        _subset(pts, draws, track, SUBSETS[0]),
        _subset(pts[sig].reset_index(drop=True), draws[:, sig], track, SUBSETS[1]),
    ]
    return pd.DataFrame(rows, columns=list(FIDELITY_COLUMNS))


def fidelity_line(table: pd.DataFrame) -> str:
    """The one printed line: correlations with intervals and signs, for both subsets."""

    def part(row: pd.Series) -> str:
        signs = f"signs agree {row['sign_agree']} of {row['sign_n']}"
        if row["n_changes"]:
            signs += (
                f", chance {row['sign_chance']:.1f}, p = {row['sign_p']:.2f} "
                f"({row['sign_noise_low']:.0f}-{row['sign_noise_high']:.0f} "
                "within the paper's noise)"
            )
        if pd.isna(row["spearman"]):
            return f"{row['n_changes']} changes, {signs}"
        return (
            f"{row['n_changes']} changes, Spearman {row['spearman']:.2f} "
            f"[{row['spearman_ci95_low']:.2f}, {row['spearman_ci95_high']:.2f}] "
            f"(permutation p = {row['spearman_p']:.3f}; {row['spearman_noise_low']:.2f} to "
            f"{row['spearman_noise_high']:.2f} within the paper's noise), "
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
