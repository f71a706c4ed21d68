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
  its marginal gains over every order of applying the factors), with the t interval of the
  per-seed Shapley values over the seeds common to all points (`analysis.stats.seed_interval`).

The one-step differences use `analysis.stats.compare_runs` (paired on common seeds, else
Welch). Columns (`COLUMNS`): term, effect, ci95_low, ci95_high, p, n (runs used) and the
extras kind, step (the step or `a*b`), base (the design's base step) and test (paired, welch,
ols or t). Nothing here names a toggle: steps, parents and points come from the table.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.stats import compare_runs, seed_interval
from roadmap.design_cli import point_cost
from roadmap.designs import (
    DESIGNS,
    Point,
    design_points,
    endpoint,
    is_applied,
    make_point,
    parse_point,
    point_spec,
)
from roadmap.steps import get_step, steps

COLUMNS = (
    "term", "effect", "ci95_low", "ci95_high", "p", "n", "kind", "step", "base", "test",
    "d_gflops", "d_params", "family", "p_holm", "note",
)  # fmt: skip
EXPLORATORY = "exploratory"  # the family and note of a term no declared design tests
Values = Mapping[str, Mapping[int, float]]  # run name (step or point) -> seed -> metric


def run_values(runs: pd.DataFrame, metric: str = "top1") -> dict[str, dict[int, float]]:
    """Run name -> seed -> metric, from the runs the staircase's rules choose.

    Those are `analysis.collect.select_runs`' runs and design points: one preset, dataset
    and recipe, no stale spec, the newest of each (name, seed).
    """
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
    for key in ("d_gflops", "d_params", "p_holm"):
        row[key] = num.get(key, math.nan)
    row["family"], row["note"] = num.get("family", EXPLORATORY), num.get("note", EXPLORATORY)
    return row


def cost_change(track: str, a: str, b: str) -> dict[str, float]:
    """GFLOPs and params of run name `a` minus `b`, measured from the built models."""
    params_a, gflops_a = point_cost(point_spec(a, track))
    params_b, gflops_b = point_cost(point_spec(b, track))
    return {"d_gflops": gflops_a - gflops_b, "d_params": float(params_a - params_b)}


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
                found |= cost_change(track, step.name, step.parent)
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
        found |= cost_change(track, a, b)
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
    """One row per run of the factorial: seed, y, each factor's level (+1 / -1) and its cost."""
    rows = []
    for point in design_points(DESIGNS[3], track, factors, base, fraction):
        if point.spec is None:
            continue
        params, gflops = point_cost(point.spec)
        for seed, y in values.get(point.run_name, {}).items():
            cost = {"params": float(params), "gflops": gflops}
            rows.append({"seed": seed, "y": y, **point.levels, **cost})
    return pd.DataFrame(rows)


def cost_contrast(frame: pd.DataFrame, factors: Sequence[str], term: str) -> dict[str, float]:
    """A term's cost change: mean GFLOPs and params of the points at +1 minus those at -1."""
    cells = frame.drop_duplicates(list(factors))  # one row per point
    sign = np.prod([cells[f].to_numpy(dtype=float) for f in term.split("*")], axis=0)
    if not set(np.unique(sign)) <= {-1.0, 1.0}:
        return {}  # a multi-level factor: no two-sided contrast
    hi, lo = cells[sign > 0], cells[sign < 0]
    return {f"d_{c}": float(hi[c].mean() - lo[c].mean()) for c in ("gflops", "params")}


def ols_effects(frame: pd.DataFrame, factors: Sequence[str], order: int = 2) -> pd.DataFrame:
    """Main effects and two-way interactions: 2 x the OLS coefficients, intervals and p.

    The model is y ~ (f1 + ... + fk)**2 (main effects only at `order` 1), plus C(seed) when
    the runs have several seeds.
    """
    import statsmodels.formula.api as smf

    names = {f"f{i}": f for i, f in enumerate(factors)}
    data = frame.rename(columns={f: c for c, f in names.items()})
    seed = " + C(seed)" if data["seed"].nunique() > 1 else ""
    formula = f"y ~ ({' + '.join(names)})**{order}" + seed
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
    """Shapley values with the t interval of the per-seed values over the seeds all points have."""
    k, cols = len(factors), list(factors)
    cells = frame.groupby(cols)
    if cells.ngroups < 2**k:
        return pd.DataFrame()
    estimate = shapley_values(cells["y"].mean().to_dict(), k)
    wide = frame.pivot_table(index=cols, columns="seed", values="y").dropna(axis=1)
    per_seed = [shapley_values(wide[seed].to_dict(), k) for seed in wide.columns]
    low, high = seed_interval(np.array(per_seed).reshape(len(per_seed), k))
    return pd.DataFrame(
        {
            "step": cols,
            "kind": "shapley",
            "effect": estimate,
            "ci95_low": list(low),
            "ci95_high": list(high),
            "p": math.nan,
            "d_gflops": shapley_values(cells["gflops"].mean().to_dict(), k),
            "d_params": shapley_values(cells["params"].mean().to_dict(), k),
        }
    )


def factorial_effects(
    track: str,
    base: str,
    factors: Sequence[str],
    fraction: int,
    values: Values,
    order: int = 2,
) -> list[dict]:
    """The rows of one factorial: main effects, interactions and (full designs) Shapley."""
    frame = factorial_frame(track, base, factors, fraction, values)
    parts = [ols_effects(frame, factors, order)]
    if fraction == 1:
        parts.append(shapley_effects(frame, factors))
    at = "" if base == endpoint(track) else f"@{base}"
    rows = []
    for part in parts:
        for r in part.to_dict("records"):
            test = "t" if r["kind"] == "shapley" else "ols"
            numbers = {k: r[k] for k in ("effect", "ci95_low", "ci95_high", "p")}
            shapley = r["kind"] == "shapley"
            numbers |= {k: r[k] for k in ("d_gflops", "d_params")} if shapley else {}
            numbers |= {} if shapley else cost_contrast(frame, factors, r["step"])
            term = f"{r['kind']}{at}:{r['step']}"
            rows.append(_row(term, r["kind"], r["step"], base, **numbers, n=len(frame), test=test))
    return rows


def track_effects(track: str, values: Values) -> pd.DataFrame:
    """Every term the runs of one track allow, in `COLUMNS` order."""
    rows = step_effects(track, values)
    for base, factors, fraction in find_factorials(track, values):
        rows += factorial_effects(track, base, factors, fraction, values)
    return pd.DataFrame(rows, columns=list(COLUMNS))
