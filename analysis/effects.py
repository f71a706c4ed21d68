"""What each step does on the path, at the end point, at the start and with the others.

From whatever design points a root holds (`roadmap.designs`), per track, one row per term:

- `path:<step>`: the step minus its parent, the staircase's change;
- `end:<step>`: the endpoint minus the endpoint with the step reverted (leave-one-out);
- `start:<step>`: the first step with the step applied minus the first step (add-one-in);
  a leave-one-out or add-one-in at another base is `end@<base>:` or `start@<base>:`;
- from each complete factorial (all its points have runs): `main:<step>` and
  `interaction:<a>*<b>`, from statsmodels OLS on the +-1-coded factors, their two-way products
  and the seed as a block (`C(seed)`). An effect is the classical one, mean at +1 minus mean at
  -1: twice the OLS coefficient (and its interval); p is the coefficient's t test;
- `shapley:<step>`: the Shapley value of the step over the factorial's points (the mean of
  its marginal gains over every order of applying the factors), with a percentile bootstrap
  interval over seeds (`BOOTSTRAP` resamples of the seeds common to all points, `RNG_SEED`).

The one-step differences use `analysis.stats.compare_runs` (paired on common seeds, else
Welch). Columns (`COLUMNS`): term, effect, ci95_low, ci95_high, p, n (runs used) and the
extras kind, step (the step or `a*b`), base (the design's base step) and test (paired, welch,
ols or bootstrap). Nothing here names a toggle: steps, parents and points come from the table.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.stats import compare_runs
from roadmap.designs import (
    DESIGNS,
    Point,
    design_points,
    endpoint,
    is_applied,
    make_point,
    parse_point,
)
from roadmap.errors import UserError
from roadmap.steps import get_step, steps

COLUMNS = ("term", "effect", "ci95_low", "ci95_high", "p", "n", "kind", "step", "base", "test")
BOOTSTRAP = 2000
RNG_SEED = 0
Values = Mapping[str, Mapping[int, float]]  # run name (step or point) -> seed -> metric


def usable_runs(
    df: pd.DataFrame, track: str, preset: str | None = None, metric: str = "top1"
) -> tuple[pd.DataFrame, str]:
    """The usable runs of `track` and their preset.

    Done runs with `metric`, of one preset (default: the one with the most runs) and its most
    frequent recipe (a run's spec follows from its recipe and name), the newest of each
    (name, seed).
    """
    runs = df[(df["track"] == track) & (df["status"] == "done")]
    if metric in runs:
        runs = runs[runs[metric].notna()]
    if runs.empty or metric not in runs:
        raise UserError(f"no done run with {metric} on track {track!r}")
    preset = preset or str(runs["preset"].value_counts().sort_index().idxmax())
    runs = runs[runs["preset"] == preset]
    if runs.empty:
        raise UserError(f"no done run of preset {preset!r} on track {track!r}")
    recipes = runs["recipe_json"].map(lambda v: json.dumps(json.loads(v)["recipe"], sort_keys=True))
    runs = runs[recipes == recipes.value_counts().sort_index().idxmax()]
    runs = runs.sort_values("created", kind="stable")
    return runs.drop_duplicates(["step", "seed"], keep="last"), preset


def run_values(runs: pd.DataFrame, metric: str = "top1") -> dict[str, dict[int, float]]:
    """Run name -> seed -> metric, from one track's and one recipe's usable runs."""
    out: dict[str, dict[int, float]] = {}
    for row in runs.itertuples():
        out.setdefault(str(row.step), {})[int(row.seed)] = float(getattr(row, metric))
    return out


def _row(term: str, kind: str, step: str, base: str | None, **num: float | str) -> dict:
    """One output row; missing numbers are NaN."""
    row = {"term": term, "kind": kind, "step": step, "base": base or ""}
    for key in ("effect", "ci95_low", "ci95_high", "p", "n"):
        row[key] = num.get(key, math.nan)
    row["test"] = num.get("test", "")
    return row


def difference(values: Values, a: str, b: str) -> dict[str, float | str] | None:
    """Mean of `a` minus mean of `b` with its interval and p (None when either has no run)."""
    if not values.get(a) or not values.get(b):
        return None
    va, vb = values[a], values[b]
    change = compare_runs(list(va.values()), list(va), list(vb.values()), list(vb))
    effect = float(np.mean(list(va.values())) - np.mean(list(vb.values())))
    return {
        "effect": effect,
        "ci95_low": change.low,
        "ci95_high": change.high,
        "p": change.p,
        "n": len(va) + len(vb),
        "test": change.test,
    }


def step_effects(track: str, values: Values) -> list[dict]:
    """Per step: its change on the path, at the end and at the start (where runs exist)."""
    rows = []
    for step in steps(track):
        if step.parent is not None:
            found = difference(values, step.name, step.parent)
            if found:
                rows.append(_row(f"path:{step.name}", "path", step.name, step.parent, **found))
    for base in _bases(track, values):
        rows += _one_step_points(track, base, values)
    return rows


def _points(track: str, values: Values) -> list[Point]:
    """The design points among the run names (a name that parses as none is left out)."""
    out = []
    for name in values:
        if "-" in name:
            try:
                out.append(parse_point(name, track))
            except ValueError:
                continue
    return out


def _bases(track: str, values: Values) -> list[str]:
    """The bases of single-move points: the defaults and those the run names name."""
    named = {p.base for p in _points(track, values)}
    first, end = steps(track)[0].name, endpoint(track)
    return [first, end] + sorted(named - {first, end})


def _one_step_points(track: str, base: str, values: Values) -> list[dict]:
    """Each step at `base`: base minus the base without it, or the base with it minus base."""
    first, end = steps(track)[0].name, endpoint(track)
    spec, rows = get_step(base, track).spec, []
    for step in steps(track)[1:]:
        if not step.on_path or not step.changes:
            continue
        held = is_applied(step, spec)
        point = make_point(track, base, [("minus" if held else "plus", step.name)])
        if not point.valid or point.run_name == base:
            continue
        a, b = (base, point.run_name) if held else (point.run_name, base)
        found = difference(values, a, b)
        if not found:
            continue
        kind = "leave-one-out" if held else "add-one-in"
        name = "end" if held else "start"
        default = end if held else first
        label = name if base == default else f"{name}@{base}"
        rows.append(_row(f"{label}:{step.name}", kind, step.name, base, **found))
    return rows


def find_factorials(track: str, values: Values) -> list[tuple[str, tuple[str, ...], int]]:
    """(base, factors, fraction) of every complete factorial among the runs, maximal ones only.

    At each base, the candidate factors are the steps whose one-move point has runs; a set of
    factors is a factorial when every point of its full design has runs (found pairs first,
    then grown one factor at a time from sets whose every subset is complete). The steps moved
    by points of two or more moves at a base, five or more of them, also make a half fraction.
    """
    found = []
    for base in _bases(track, values):
        full = _full_factorials(track, base, _movers(track, base, values), values)
        found += [(base, f, 1) for f in full]
        moved = {s for p in _points(track, values) if p.base == base for _, s in p.moves}
        order = [s.name for s in steps(track)]
        half = tuple(sorted(moved, key=order.index))
        if len(half) >= 5 and half not in full and _complete(track, base, half, 2, values):
            found.append((base, half, 2))
    return found


def _complete(track: str, base: str, factors: Sequence[str], fraction: int, values: Values) -> bool:
    """Whether every valid point of the factorial has runs."""
    try:
        points = design_points(DESIGNS[3], track, factors, base, fraction)
    except ValueError:
        return False
    return all(values.get(p.run_name) for p in points if p.valid)


def _movers(track: str, base: str, values: Values) -> list[str]:
    """The steps whose one-move point at `base` (other than the base itself) has runs."""
    spec, out = get_step(base, track).spec, []
    for step in steps(track):
        if not step.changes or step.parent is None:
            continue
        point = make_point(
            track, base, [("minus" if is_applied(step, spec) else "plus", step.name)]
        )
        if point.valid and point.run_name != base and values.get(point.run_name):
            out.append(step.name)
    return out


def _full_factorials(
    track: str, base: str, movers: list[str], values: Values
) -> list[tuple[str, ...]]:
    """The maximal sets of `movers` whose full factorial at `base` has runs."""
    level = [c for c in itertools.combinations(movers, 2) if _complete(track, base, c, 1, values)]
    every = set(level)
    while level:
        grown = set()
        for a, b in itertools.combinations(level, 2):
            union = tuple(m for m in movers if m in set(a) | set(b))
            if len(union) != len(a) + 1 or union in grown:
                continue
            if all(sub in every for sub in itertools.combinations(union, len(a))):
                if _complete(track, base, union, 1, values):
                    grown.add(union)
        level = sorted(grown)
        every |= grown
    return sorted(f for f in every if not any(set(f) < set(g) for g in every))


def factorial_frame(
    track: str, base: str, factors: Sequence[str], fraction: int, values: Values
) -> pd.DataFrame:
    """One row per run of the factorial: seed, y and each factor's level (+1 / -1)."""
    rows = []
    for point in design_points(DESIGNS[3], track, factors, base, fraction):
        for seed, y in values.get(point.run_name, {}).items():
            rows.append({"seed": seed, "y": y, **point.levels})
    return pd.DataFrame(rows)


def ols_effects(frame: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Main effects and two-way interactions: 2 x the OLS coefficients, intervals and p.

    The model is y ~ (f1 + ... + fk)**2, plus C(seed) when the runs have several seeds.
    """
    import statsmodels.formula.api as smf

    names = {f"f{i}": f for i, f in enumerate(factors)}
    data = frame.rename(columns={f: c for c, f in names.items()})
    formula = f"y ~ ({' + '.join(names)})**2" + (" + C(seed)" if data["seed"].nunique() > 1 else "")
    fit = smf.ols(formula, data=data).fit()
    ci = fit.conf_int(0.05) if fit.df_resid > 0 else None
    rows = []
    for term in fit.params.index:
        parts = term.split(":")
        if not all(p in names for p in parts):
            continue
        low, high = (2 * ci.loc[term, 0], 2 * ci.loc[term, 1]) if ci is not None else (np.nan,) * 2
        rows.append(
            {
                "step": "*".join(names[p] for p in parts),
                "kind": "main" if len(parts) == 1 else "interaction",
                "effect": 2 * fit.params[term],
                "ci95_low": low,
                "ci95_high": high,
                "p": fit.pvalues[term] if fit.df_resid > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows)


def shapley_values(means: Mapping[tuple[int, ...], float], k: int) -> list[float]:
    """Shapley value of each of `k` factors; `means[levels]` is the mean at those levels."""
    out = []
    for i in range(k):
        total = 0.0
        others = [j for j in range(k) if j != i]
        for size in range(k):
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for subset in itertools.combinations(others, size):
                on = [1 if j in subset else -1 for j in range(k)]
                with_i = tuple(1 if j == i else on[j] for j in range(k))
                total += weight * (means[with_i] - means[tuple(on)])
        out.append(total)
    return out


def shapley_effects(frame: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Shapley values with a percentile bootstrap interval over the seeds common to all points."""
    k, cols = len(factors), list(factors)
    cells = frame.groupby(cols)
    if cells.ngroups < 2**k:
        return pd.DataFrame()
    estimate = shapley_values(cells["y"].mean().to_dict(), k)
    wide = frame.pivot_table(index=cols, columns="seed", values="y").dropna(axis=1)
    seeds = list(wide.columns)
    low = high = [math.nan] * k
    if len(seeds) >= 2:
        rng = np.random.default_rng(RNG_SEED)
        draws = []
        for _ in range(BOOTSTRAP):
            pick = rng.choice(len(seeds), size=len(seeds), replace=True)
            draws.append(shapley_values(wide.iloc[:, pick].mean(axis=1).to_dict(), k))
        low, high = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    return pd.DataFrame(
        {
            "step": cols,
            "kind": "shapley",
            "effect": estimate,
            "ci95_low": list(low),
            "ci95_high": list(high),
            "p": math.nan,
        }
    )


def factorial_effects(
    track: str, base: str, factors: Sequence[str], fraction: int, values: Values
) -> list[dict]:
    """The rows of one factorial: main effects, interactions and (full designs) Shapley."""
    frame = factorial_frame(track, base, factors, fraction, values)
    parts = [ols_effects(frame, factors)]
    if fraction == 1:
        parts.append(shapley_effects(frame, factors))
    at = "" if base == endpoint(track) else f"@{base}"
    rows = []
    for part in parts:
        for r in part.to_dict("records"):
            test = "bootstrap" if r["kind"] == "shapley" else "ols"
            numbers = {k: r[k] for k in ("effect", "ci95_low", "ci95_high", "p")}
            term = f"{r['kind']}{at}:{r['step']}"
            rows.append(_row(term, r["kind"], r["step"], base, **numbers, n=len(frame), test=test))
    return rows


def track_effects(track: str, values: Values) -> pd.DataFrame:
    """Every term the runs of one track allow, in `COLUMNS` order."""
    rows = step_effects(track, values)
    for base, factors, fraction in find_factorials(track, values):
        rows += factorial_effects(track, base, factors, fraction, values)
    return pd.DataFrame(rows, columns=list(COLUMNS))
