"""Is a step's change against its parent more than seed noise? A 95% interval and a p-value.

Two-sided Student t tests from `scipy.stats`, on the difference step - parent of the metric:

- `paired` (`ttest_rel`) on the seeds both steps have, where there are at least two: a seed
  fixes the data order and augmentation of both (not their initial weights, which differ
  between architectures), so pairing helps only as far as the per-seed values correlate;
  `seed_corr` (Pearson, on three or more common seeds) measures that;
- `welch` (`ttest_ind`, unequal variances) otherwise, with at least two seeds on each side;
- nothing (`test` empty, NaN numbers) below two seeds on either side;
- from published summary statistics (mean, sample std, n), as the paper gives them: Welch's
  test from those (`ttest_ind_from_stats`), with the interval on the Welch-Satterthwaite
  degrees of freedom (`scipy.stats.t.interval`).

`seed_interval` is the same Student t interval for any estimate that is a mean over seeds of a
per-seed value (a Shapley value is one: it is linear in the cells' means), where a bootstrap
over 3 seeds would cover about 73% at a nominal 95%.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
TESTS = ("paired", "welch")
# Columns of a staircase frame that `change_columns` fills.
CHANGE_COLUMNS = (
    "change_ci95_low", "change_ci95_high", "change_p", "change_test", "change_within_noise",
    "seed_corr",
)  # fmt: skip
MIN_CORR_SEEDS = 3  # common seeds below which a correlation is not reported (two give +-1)


@dataclass(frozen=True)
class Change:
    """The test of one change: its name, the 95% interval of the difference and p."""

    test: str  # "paired", "welch" or "" (not enough seeds)
    low: float
    high: float
    p: float
    corr: float = math.nan  # Pearson correlation of the per-seed values on the common seeds

    @property
    def within_noise(self) -> bool | None:
        """Whether the interval contains 0 (None without a test)."""
        if not self.test or math.isnan(self.low) or math.isnan(self.high):
            return None
        return self.low <= 0.0 <= self.high


NO_TEST = Change("", math.nan, math.nan, math.nan)


def compare_runs(
    values: Sequence[float],
    seeds: Sequence[int | None],
    parent_values: Sequence[float],
    parent_seeds: Sequence[int | None],
) -> Change:
    """Test values (one per seed) against the parent's: paired on two or more common seeds."""
    if len(values) < 2 or len(parent_values) < 2:
        return NO_TEST
    mine = dict(zip(seeds, values, strict=True))
    theirs = dict(zip(parent_seeds, parent_values, strict=True))
    common = sorted(s for s in set(mine) & set(theirs) if s is not None)
    a, b = [mine[s] for s in common], [theirs[s] for s in common]
    with warnings.catch_warnings():  # nearly equal differences: scipy's precision note
        warnings.simplefilter("ignore", RuntimeWarning)
        if len(common) >= 2:
            result = stats.ttest_rel(a, b)
        else:
            result = stats.ttest_ind(values, parent_values, equal_var=False)
        interval = result.confidence_interval(CONFIDENCE)
    return Change(
        "paired" if len(common) >= 2 else "welch",
        float(interval.low),
        float(interval.high),
        float(result.pvalue),
        seed_corr(a, b),
    )


def seed_interval(per_seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% t interval of the mean over seeds (axis 0) of per-seed values (NaN below two).

    Each column is one estimate; its interval is mean +- t(n - 1) sd / sqrt(n), exact when the
    per-seed values are independent and normal.
    """
    values = np.asarray(per_seed, dtype=float)
    n = values.shape[0]
    if n < 2:
        nan = np.full(values.shape[1:], np.nan)
        return nan, nan.copy()
    mean = values.mean(0)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * values.std(0, ddof=1) / math.sqrt(n)
    return mean - half, mean + half


def seed_corr(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson's r of two steps' values on their common seeds (NaN below `MIN_CORR_SEEDS`)."""
    if len(a) < MIN_CORR_SEEDS or len(set(a)) < 2 or len(set(b)) < 2:  # constant: no r
        return math.nan
    return float(stats.pearsonr(a, b).statistic)


def compare_stats(mean: float, std: float, n: float, parent: tuple[float, float, float]) -> Change:
    """Welch's test from summary statistics: (mean, sample std, n) of both steps."""
    p_mean, p_std, p_n = parent
    numbers = (mean, std, n, p_mean, p_std, p_n)
    if any(x is None or math.isnan(x) for x in numbers) or min(n, p_n) < 2:
        return NO_TEST
    result = stats.ttest_ind_from_stats(mean, std, int(n), p_mean, p_std, int(p_n), equal_var=False)
    v1, v2 = std**2 / n, p_std**2 / p_n
    scale = math.sqrt(v1 + v2)
    if scale == 0:
        return NO_TEST
    dof = (v1 + v2) ** 2 / (v1**2 / (n - 1) + v2**2 / (p_n - 1))
    low, high = stats.t.interval(CONFIDENCE, dof, loc=mean - p_mean, scale=scale)
    return Change("welch", float(low), float(high), float(result.pvalue))


def compare_rows(row: Mapping[str, Any], parent: Mapping[str, Any]) -> Change:
    """The test of a staircase row against its parent's row.

    From the per-seed values where both rows have them (runs), else from their mean, std
    and n (the paper's rows).
    """
    if len(row["values"]) and len(parent["values"]):
        return compare_runs(row["values"], row["seeds"], parent["values"], parent["seeds"])
    return compare_stats(
        row["top1_mean"],
        row["top1_std"],
        row["n"],
        (parent["top1_mean"], parent["top1_std"], parent["n"]),
    )


def change_columns(
    rows: Sequence[Mapping[str, Any]], parents: Sequence[str | None]
) -> dict[str, list[Any]]:
    """The change columns of a staircase: each row's test against the row `parents` names."""
    by_step = {row["step"]: row for row in rows}
    tests = [
        compare_rows(row, by_step[parent]) if parent in by_step else NO_TEST
        for row, parent in zip(rows, parents, strict=True)
    ]
    return {
        "change_ci95_low": [t.low for t in tests],
        "change_ci95_high": [t.high for t in tests],
        "change_p": [t.p for t in tests],
        "change_test": [t.test for t in tests],
        "change_within_noise": [t.within_noise for t in tests],
        "seed_corr": [t.corr for t in tests],
    }
