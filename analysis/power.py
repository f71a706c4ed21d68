"""Power of a change's t test under a pooled sigma: the minimum detectable change, seeds needed.

Two-sided tests at a level `alpha`; the power of a true change `delta` with standard error `se`
on `df` degrees of freedom is P(|T| > t_crit) for T noncentral t with noncentrality delta / se
(statsmodels' `ttest_power`). `family_alpha` is the level the verdict holds a change to: Holm's
first step, ALPHA / m over a family of m tests, so a change detected there is significant after
Holm whatever the others' p. Equivalence (TOST within a margin) has its own power: at a true
change of 0, at least 2 P(one one-sided test rejects) - 1 (`tost_power`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from scipy import optimize, stats
from statsmodels.stats.power import ttest_power

ALPHA = 0.05  # two-sided
POWER = 0.8
MAX_SEEDS = 200  # `seeds_needed` and `tost_seeds_needed` look no further
# Columns of the power table (`power_table`).
POWER_COLUMNS = ("step", "parent", "n", "parent_n", "delta", "power_now", "seeds_needed")


def family_alpha(m: int, alpha: float = ALPHA) -> float:
    """The level a change meets to be significant after Holm over `m` tests, whatever the rest."""
    return alpha / max(m, 1)


def power(delta: float, se: float, df: float, alpha: float = ALPHA) -> float:
    """The power of the two-sided t test to detect a true change `delta`."""
    if not (se > 0 and df > 0):
        return math.nan
    upper = ttest_power(abs(delta) / se, nobs=1, alpha=alpha / 2, df=df, alternative="larger")
    lower = ttest_power(abs(delta) / se, nobs=1, alpha=alpha / 2, df=df, alternative="smaller")
    return float(upper + (0.0 if math.isnan(lower) else lower))  # tiny; NaN in some far tails


def mde(se: float, df: float, target: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest true change detected with power `target`: the minimum detectable effect."""
    if not (se > 0 and df > 0):
        return math.nan
    crit = stats.t.ppf(1 - alpha / 2, df)
    high = (crit + 10.0) * se
    return float(optimize.brentq(lambda d: power(d, se, df, alpha) - target, 0.0, high, xtol=1e-12))


def se_of(sigma: float, n: float, parent_n: float) -> float:
    """The standard error of a difference of two means of `n` and `parent_n` runs."""
    if pd.isna(n) or pd.isna(parent_n) or min(n, parent_n) < 1:
        return math.nan
    return sigma * math.sqrt(1 / n + 1 / parent_n)


def _pooled_df(n_steps: int, n: int) -> float:
    """The pooled model's degrees of freedom with `n` seeds on each of `n_steps` steps."""
    return float(max(n_steps - 1, 1) * (n - 1))


def seeds_needed(
    sigma: float, delta: float, n_steps: int, target: float = POWER, alpha: float = ALPHA
) -> float:
    """Seeds per step (every step alike) for power `target` at `delta`; NaN above `MAX_SEEDS`.

    The degrees of freedom are those of the pooled model with that many seeds on each of
    `n_steps` steps: (n_steps - 1) (n - 1).
    """
    for n in range(2, MAX_SEEDS + 1):
        if power(delta, se_of(sigma, n, n), _pooled_df(n_steps, n), alpha) >= target:
            return float(n)
    return math.nan


def tost_reachable(se: float, df: float, margin: float, alpha: float = ALPHA) -> bool:
    """Whether the TOST can show equivalence at all: t(1 - alpha, df) se below the margin."""
    return bool(se > 0 and df > 0 and stats.t.ppf(1 - alpha, df) * se < margin)


def tost_power(margin: float, se: float, df: float, alpha: float = ALPHA) -> float:
    """A lower bound of the TOST's power at a true change of 0: 2 P(one side rejects) - 1."""
    if not (se > 0 and df > 0):
        return math.nan
    one = float(ttest_power(margin / se, nobs=1, alpha=alpha, df=df, alternative="larger"))
    return max(2 * one - 1, 0.0)


def tost_seeds_needed(
    sigma: float, margin: float, n_steps: int, target: float = POWER, alpha: float = ALPHA
) -> float:
    """Seeds per step for the TOST to show a true change of 0 equivalent with power `target`."""
    for n in range(2, MAX_SEEDS + 1):
        if tost_power(margin, se_of(sigma, n, n), _pooled_df(n_steps, n), alpha) >= target:
            return float(n)
    return math.nan


def power_table(
    rows: Sequence[Mapping[str, Any]], sigma: float, df: float, delta: float, alpha: float = ALPHA
) -> pd.DataFrame:
    """Per change with a parent: power at `delta` now, and the seeds needed for `POWER`."""
    by_step = {row["step"]: row for row in rows}
    known = {name for name, r in by_step.items() if pd.notna(r["n"]) and r["n"] > 0}
    changes = [r for r in rows if r["step"] in known and r.get("change_parent") in known]
    n_steps = sum(1 for r in rows if pd.notna(r["n"]) and r["n"] > 0)
    needed = seeds_needed(sigma, delta, n_steps, alpha=alpha)
    out = []
    for row in changes:
        parent = by_step[row["change_parent"]]
        se = se_of(sigma, row["n"], parent["n"])
        out.append(
            {
                "step": row["step"],
                "parent": parent["step"],
                "n": int(row["n"]),
                "parent_n": int(parent["n"]),
                "delta": delta,
                "power_now": power(delta, se, df, alpha),
                "seeds_needed": needed,
            }
        )
    return pd.DataFrame(out, columns=list(POWER_COLUMNS))
