"""One model per track: a pooled sigma over all its steps, each change a contrast against it.

From runs, the least-squares fit `top1 ~ C(step) + C(seed)` (statsmodels; a step of one seed
gives its mean only); each change is the contrast step - parent, a t test on the model's
residual degrees of freedom. From the paper's rows (mean, std, n), the pooled sigma of the
published stds on sum(n - 1) degrees of freedom, and t tests from it. Then, over the track's
changes: Holm and Benjamini-Hochberg adjusted p-values (of the per-pair and of the pooled p;
statsmodels' `multipletests`), the minimum detectable change at 80% power at the level the
verdict holds a change to (Holm's first step, `analysis.power.family_alpha`), the two one-sided
tests (TOST) of equivalence within a margin, whether the TOST can reach equivalence at all and
the seeds it would need, and a verdict per change (`verdict`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.power import ALPHA, family_alpha, mde, se_of, tost_reachable, tost_seeds_needed

CONFIDENCE = 0.95
DEFAULT_MARGIN = 0.1  # points of top-1: the default equivalence margin
VERDICTS = ("significant", "equivalent", "n.s.")
# Columns of a staircase frame that `pooled_columns` fills.
POOLED_COLUMNS = (
    "change_parent", "pooled_change", "pooled_ci95_low", "pooled_ci95_high", "pooled_p",
    "change_p_holm", "change_p_bh", "pooled_p_holm", "pooled_p_bh", "mde80", "tost_p", "verdict",
)  # fmt: skip


@dataclass(frozen=True)
class Pooled:
    """A track's pooled variance: its sigma, degrees of freedom and equal-variance test."""

    source: str  # "runs" (the OLS model), "paper" (published stds) or "" (no model)
    sigma: float  # pooled residual standard deviation (points of top-1)
    df: float  # its degrees of freedom
    groups: int  # steps with two or more values, which Bartlett's test compares
    bartlett_stat: float  # Bartlett's statistic over those steps' variances
    bartlett_p: float  # its p-value (chi-square on groups - 1 degrees of freedom)
    margin: float  # the equivalence margin of the TOST (points)
    tost_unreachable: int = 0  # tested changes whose TOST cannot show equivalence at any estimate
    tost_seeds_needed: float = math.nan  # seeds per step for 80% TOST power at a true change of 0

    def row(self, track: str) -> dict[str, Any]:
        """The line of `stats_<track>.csv`."""
        return {"track": track, **asdict(self)}


def _adjusted(p: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values (`multipletests`, `method`) of the non-NaN entries (NaN stays NaN)."""
    values = np.asarray(p, dtype=float)
    out = np.full(len(values), np.nan)
    keep = ~np.isnan(values)
    if keep.any():
        out[keep] = multipletests(values[keep], method=method)[1]
    return out.tolist()


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values of the non-NaN entries (NaN stays NaN)."""
    return _adjusted(p, "holm")


def bh(p: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values of the non-NaN entries (NaN stays NaN)."""
    return _adjusted(p, "fdr_bh")


def bartlett(variances: Sequence[float], ns: Sequence[float]) -> tuple[float, float]:
    """Bartlett's test from sample variances and sizes (as `scipy.stats.bartlett` on samples)."""
    v, n = np.asarray(variances, dtype=float), np.asarray(ns, dtype=float)
    if len(v) < 2 or (v <= 0).any():
        return math.nan, math.nan
    k, dof = len(v), n - 1
    pooled = float((dof * v).sum() / dof.sum())
    num = dof.sum() * math.log(pooled) - float((dof * np.log(v)).sum())
    den = 1 + ((1 / dof).sum() - 1 / dof.sum()) / (3 * (k - 1))
    stat = num / den
    return float(stat), float(stats.chi2.sf(stat, k - 1))


def _groups(rows: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
    """Each step's sample variance and n (its seeds), for steps with two or more values."""
    out = [(r["top1_std"] ** 2, r["n"]) for r in rows]
    out = [(v, n) for v, n in out if pd.notna(v) and pd.notna(n) and n >= 2]
    return [v for v, _ in out], [n for _, n in out]


def _fit_runs(rows: Sequence[Mapping[str, Any]]) -> tuple[float, float, Any]:
    """The OLS fit of every run's value on step and seed: sigma, df and the fit (or None)."""
    import statsmodels.formula.api as smf

    data = pd.DataFrame(
        [
            {"top1": v, "step": r["step"], "seed": "none" if s is None else str(s)}
            for r in rows
            for v, s in zip(r["values"], r["seeds"], strict=True)
        ]
    )
    formula = "top1 ~ 0 + C(step)" + (" + C(seed)" if data["seed"].nunique() > 1 else "")
    with warnings.catch_warnings():  # seeds that only one step has: rank-deficient, see below
        warnings.simplefilter("ignore")
        fit = smf.ols(formula, data).fit()
    if fit.df_resid < 1:
        return math.nan, 0.0, None
    return math.sqrt(fit.scale), float(fit.df_resid), fit


def _contrast_runs(fit: Any, step: str, parent: str) -> tuple[float, float]:
    """The estimate and standard error of step - parent in the OLS fit.

    NaN where the contrast is not estimable: where the two steps' seeds are not linked by
    other steps' runs (e.g. {3, 4} against {0, 1, 2}, seeds no other step has), the
    seed effects and the step effects cannot be told apart.
    """
    names = list(fit.params.index)
    a, b = f"C(step)[{step}]", f"C(step)[{parent}]"
    if a not in names or b not in names:
        return math.nan, math.nan
    weights = np.array([(n == a) - (n == b) for n in names], dtype=float)
    exog = fit.model.exog
    if np.abs(weights - weights @ np.linalg.pinv(exog) @ exog).max() > 1e-8:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = fit.t_test(weights)
    return float(np.squeeze(test.effect)), float(np.squeeze(test.sd))


def _model(rows: Sequence[Mapping[str, Any]]) -> tuple[float, float, str, Any]:
    """The pooled sigma, df, its source and the OLS fit (runs) or None (paper, no model)."""
    if any(len(r["values"]) for r in rows):
        sigma, df, fit = _fit_runs([r for r in rows if len(r["values"])])
        return sigma, df, "runs" if fit is not None else "", fit
    variances, ns = _groups(rows)
    df = float(sum(n - 1 for n in ns))
    if df < 1:
        return math.nan, 0.0, "", None
    sigma = math.sqrt(sum((n - 1) * v for v, n in zip(variances, ns, strict=True)) / df)
    return sigma, df, "paper", None


def _contrast(row: Mapping[str, Any], parent: Mapping[str, Any] | None, model: tuple) -> tuple:
    """Estimate and standard error of one change in the pooled model (NaN without one)."""
    sigma, _, source, fit = model
    if parent is None or not source:
        return math.nan, math.nan
    if fit is not None:
        return _contrast_runs(fit, row["step"], parent["step"])
    se = se_of(sigma, row["n"], parent["n"])
    return row["top1_mean"] - parent["top1_mean"], se


def _tests(est: float, se: float, df: float, margin: float, alpha: float) -> dict[str, float]:
    """The contrast, its pooled t test and interval, the TOST p and the MDE at `alpha`."""
    if not (se > 0 and df > 0):
        return dict.fromkeys(("change", "low", "high", "p", "tost", "mde"), math.nan)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se
    tost = max(stats.t.sf((est + margin) / se, df), stats.t.cdf((est - margin) / se, df))
    return {
        "change": est,
        "low": est - half,
        "high": est + half,
        "p": float(2 * stats.t.sf(abs(est) / se, df)),
        "tost": float(tost),
        "mde": mde(se, df, alpha=alpha),
    }


def verdict(p_adjusted: float, tost_p: float) -> str:
    """`significant` (adjusted p < ALPHA), `equivalent` (TOST p < ALPHA), `n.s.`; "" untested."""
    if pd.isna(p_adjusted):
        return ""
    if p_adjusted < ALPHA:
        return VERDICTS[0]
    return VERDICTS[1] if pd.notna(tost_p) and tost_p < ALPHA else VERDICTS[2]


def pooled_columns(
    rows: Sequence[Mapping[str, Any]], parents: Sequence[str | None], margin: float
) -> tuple[dict[str, list[Any]], Pooled]:
    """The pooled columns of a staircase (rows with their `change_p`) and the track's Pooled."""
    model = _model(rows)
    sigma, df, source, _ = model
    by_step = {row["step"]: row for row in rows}
    found = [by_step.get(p) if p else None for p in parents]
    contrasts = [_contrast(r, p, model) for r, p in zip(rows, found, strict=True)]
    tested = [se for _, se in contrasts if se > 0 and df > 0]
    alpha = family_alpha(len(tested))  # the MDE's level: Holm's first step over the family
    tests = [_tests(est, se, df, margin, alpha) for est, se in contrasts]
    change_p = [r["change_p"] for r in rows]
    pooled_p = [t["p"] for t in tests]
    cols = {
        "change_parent": [p["step"] if p else None for p in found],
        "pooled_change": [t["change"] for t in tests],
        "pooled_ci95_low": [t["low"] for t in tests],
        "pooled_ci95_high": [t["high"] for t in tests],
        "pooled_p": pooled_p,
        "change_p_holm": holm(change_p),
        "change_p_bh": bh(change_p),
        "pooled_p_holm": holm(pooled_p),
        "pooled_p_bh": bh(pooled_p),
        "mde80": [t["mde"] for t in tests],
        "tost_p": [t["tost"] for t in tests],
    }
    adjusted = cols["pooled_p_holm"] if source else cols["change_p_holm"]
    cols["verdict"] = [verdict(p, t) for p, t in zip(adjusted, cols["tost_p"], strict=True)]
    variances, ns = _groups(rows)
    stat, p = bartlett(variances, ns)
    unreachable = sum(not tost_reachable(se, df, margin) for se in tested)
    n_steps = sum(1 for r in rows if pd.notna(r["n"]) and r["n"] > 0)
    needed = tost_seeds_needed(sigma, margin, n_steps) if unreachable else math.nan
    return cols, Pooled(source, sigma, df, len(ns), stat, p, margin, unreachable, needed)
