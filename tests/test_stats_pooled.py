"""The pooled model, multiplicity, power, equivalence and verdicts, against statsmodels and scipy.

The references are computed here: the model with statsmodels' formula API in its intercept
form (`top1 ~ C(step) + C(seed)`, treatment coding), adjusted p-values by hand (Holm's
step-down) and with scipy (`false_discovery_control`), since the code calls statsmodels'
`multipletests`; power from scipy's noncentral t, since the code calls statsmodels'
`ttest_power`; Bartlett with `scipy.stats.bartlett`, and the paper's pooled tests with scipy
from the published table.
"""

import math
import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from analysis_fixtures import write_run
from scipy import optimize, stats

from analysis.collect import aggregate, load_runs, paper_staircase, select_runs
from analysis.pooled import DEFAULT_MARGIN, bartlett, bh, holm
from analysis.power import POWER_COLUMNS, mde, power, power_table, seeds_needed
from roadmap.paper import paper_rows
from roadmap.steps import steps

TRACK = "resnet50"
MARGIN = 0.3  # the equivalence margin of the fixture: wide, so that a change can be equivalent


def _chain():
    """Four on-path steps, each the parent of the next."""
    chain = [s for s in steps(TRACK) if s.on_path][:4]
    assert all(b.parent == a.name for a, b in pairwise(chain))
    return chain


def _values():
    """Known values: seeds {0,1,2,3} against {0,1,2}; a step of one seed; a near-null step."""
    s0, s1, s2, s3 = (s.name for s in _chain())
    return {
        s0: {0: 30.0, 1: 30.6, 2: 29.8},
        s1: {0: 31.1, 1: 31.5, 2: 30.9, 3: 31.8},  # pairs with s0 on 0, 1, 2
        s2: {0: 31.05, 1: 31.55, 2: 30.95},  # within 0.05 of s1 on every common seed
        s3: {0: 31.25},  # one seed: its mean only; +0.2, neither shown nor equivalent
    }


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("pooled")
    values = _values()
    for step, by_seed in values.items():
        for seed, top1 in by_seed.items():
            write_run(root, TRACK, step, seed, top1=top1)
    frame = aggregate(select_runs(load_runs(root), TRACK), margin=MARGIN)
    return values, frame


def _reference(values):
    """statsmodels' fit of top1 ~ C(step) + C(seed) (with an intercept) on the fixture."""
    data = pd.DataFrame(
        [(v, step, str(seed)) for step, d in values.items() for seed, v in d.items()],
        columns=["top1", "step", "seed"],
    )
    return smf.ols("top1 ~ C(step) + C(seed)", data).fit()


def _contrast(fit, step, parent):
    """statsmodels' t test of step - parent in the intercept parametrisation."""
    names = list(fit.params.index)
    weights = np.zeros(len(names))
    for name, sign in ((step, 1.0), (parent, -1.0)):
        column = f"C(step)[T.{name}]"
        if column in names:  # the baseline level has no column
            weights[names.index(column)] += sign
    return fit.t_test(weights)


def test_the_pooled_model_equals_statsmodels(fixture):
    values, frame = fixture
    fit = _reference(values)
    rows = frame.set_index("step")
    pooled = frame.attrs["pooled"]
    assert pooled.source == "runs"
    assert pooled.sigma == pytest.approx(math.sqrt(fit.scale), rel=1e-9)
    assert pooled.df == fit.df_resid
    for a, b in pairwise(_chain()):
        test = _contrast(fit, b.name, a.name)
        row = rows.loc[b.name]
        low, high = test.conf_int(alpha=0.05)[0]
        assert row["change_parent"] == a.name
        assert row["pooled_change"] == pytest.approx(float(test.effect[0]), abs=1e-9)
        assert (row["pooled_ci95_low"], row["pooled_ci95_high"]) == pytest.approx(
            (low, high), abs=1e-9
        )
        assert row["pooled_p"] == pytest.approx(float(test.pvalue), rel=1e-9)
        # TOST: both one-sided tests against the margin, from statsmodels' estimate and se
        est, se = float(test.effect[0]), float(test.sd[0][0])
        tost = max(
            stats.t.sf((est + MARGIN) / se, fit.df_resid),
            stats.t.cdf((est - MARGIN) / se, fit.df_resid),
        )
        assert row["tost_p"] == pytest.approx(tost, rel=1e-9)


def test_a_step_of_one_seed_gives_its_mean_only(fixture):
    values, frame = fixture
    last = _chain()[-1].name
    row = frame.set_index("step").loc[last]
    assert row["n"] == 1 and row["change_test"] == "" and math.isnan(row["change_p"])
    assert not math.isnan(row["pooled_p"])  # its contrast is estimated from its one run
    # dropping it leaves sigma and df as they are: it adds a parameter for its one value
    fewer = {k: v for k, v in values.items() if k != last}
    fit = _reference(fewer)
    assert frame.attrs["pooled"].sigma == pytest.approx(math.sqrt(fit.scale), rel=1e-9)


def test_seeds_0_to_3_against_0_to_2_are_paired_on_the_common_three(fixture):
    values, frame = fixture
    s0, s1 = (s.name for s in _chain()[:2])
    row = frame.set_index("step").loc[s1]
    common = sorted(set(values[s0]) & set(values[s1]))
    assert common == [0, 1, 2]
    expected = stats.ttest_rel([values[s1][s] for s in common], [values[s0][s] for s in common])
    assert row["change_test"] == "paired"
    assert row["change_p"] == pytest.approx(expected.pvalue, rel=1e-12)
    r = stats.pearsonr([values[s1][s] for s in common], [values[s0][s] for s in common])
    assert row["seed_corr"] == pytest.approx(r.statistic, rel=1e-12)


def _holm_by_hand(p):
    """Holm's step-down adjusted p-values: sorted, scaled by m - i, running maximum, capped at 1."""
    order = np.argsort(p, kind="stable")
    m = len(p)
    scaled = np.maximum.accumulate((m - np.arange(m)) * np.asarray(p)[order])
    out = np.empty(m)
    out[order] = np.minimum(scaled, 1.0)
    return out


def _oracle(p, method):
    """The independent reference of `method`: Holm by hand, BH from scipy."""
    if method == "holm":
        return _holm_by_hand(p)
    return stats.false_discovery_control(p, method="bh")


def test_holm_and_bh_equal_the_oracles_and_holm_is_never_below_p(fixture):
    _, frame = fixture
    for raw, name in (("change_p", "change_p"), ("pooled_p", "pooled_p")):
        p = frame[raw].to_numpy(dtype=float)
        tested = ~np.isnan(p)
        assert tested.sum() >= 2
        for method, column in (("holm", f"{name}_holm"), ("bh", f"{name}_bh")):
            expected = _oracle(p[tested], method)
            got = frame[column].to_numpy(dtype=float)
            assert got[tested] == pytest.approx(expected, rel=1e-12)
            assert np.isnan(got[~tested]).all()
        assert (frame[f"{name}_holm"][tested] >= frame[raw][tested] - 1e-15).all()


def test_holm_and_bh_skip_nan_and_agree_with_the_oracles():
    p = [0.01, np.nan, 0.04, 0.03, 0.2, 0.04]
    kept = np.array([x for x in p if not np.isnan(x)])
    assert np.isnan(holm(p)[1]) and np.isnan(bh(p)[1])
    assert [x for x in holm(p) if not np.isnan(x)] == pytest.approx(_holm_by_hand(kept))
    assert [x for x in bh(p) if not np.isnan(x)] == pytest.approx(_oracle(kept, "bh"))


def _power(effect: float, df: float, alpha: float = 0.05) -> float:
    """The two-sided t test's power from scipy's noncentral t (upper tail; the lower one adds
    below 1e-5 of the MDE here, and scipy gives NaN for some of it, hence the tolerances)."""
    return stats.nct.sf(stats.t.ppf(1 - alpha / 2, df), df, effect)


def _mde_reference(se: float, df: float, alpha: float = 0.05) -> float:
    """The change with power 0.8, solved here on scipy's power of the t test."""
    high = (stats.t.ppf(1 - alpha / 2, df) + 5) * se  # power ~1 there; scipy's far tail is NaN
    return optimize.brentq(lambda d: _power(d / se, df, alpha) - 0.8, 1e-9, high)


def test_mde80_is_at_the_holm_level_of_the_verdict(fixture):
    values, frame = fixture
    pooled = frame.attrs["pooled"]
    fit = _reference(values)
    rows = frame.set_index("step")
    alpha = 0.05 / int(frame["pooled_p"].notna().sum())  # Holm's first step over the family
    for a, b in pairwise(_chain()):
        se = float(_contrast(fit, b.name, a.name).sd[0][0])  # the contrast's standard error
        expected = _mde_reference(se, fit.df_resid, alpha)
        assert rows.loc[b.name, "mde80"] == pytest.approx(expected, rel=1e-5)
        assert rows.loc[b.name, "mde80"] > _mde_reference(se, fit.df_resid)  # raw alpha: less
    # where both steps have the same seeds, that is sigma sqrt(1/n + 1/n_parent)
    s1, s2 = _chain()[1:3]
    se = pooled.sigma * math.sqrt(1 / 3 + 1 / 3)
    expected = _mde_reference(se, pooled.df, alpha)
    assert rows.loc[s2.name, "mde80"] == pytest.approx(expected, rel=1e-5)
    assert mde(1.0, 30) == pytest.approx(_mde_reference(1.0, 30), rel=1e-5)
    assert power(0.5, 0.2, 10) == pytest.approx(_power(2.5, 10), rel=1e-4)


def test_the_verdict_reads_the_pooled_holm_p_then_the_tost(fixture):
    _, frame = fixture
    tested = frame[frame["pooled_p"].notna()]
    assert set(tested["verdict"]) == {"significant", "equivalent", "n.s."}  # the fixture has all
    for _, row in tested.iterrows():
        if row["pooled_p_holm"] < 0.05:
            assert row["verdict"] == "significant"
        elif row["tost_p"] < 0.05:
            assert row["verdict"] == "equivalent"
        else:
            assert row["verdict"] == "n.s."
    assert (frame.loc[frame["pooled_p"].isna(), "verdict"] == "").all()


def test_bartlett_equals_scipy(fixture):
    values, frame = fixture
    samples = [list(v.values()) for v in values.values() if len(v) >= 2]
    expected = stats.bartlett(*samples)
    pooled = frame.attrs["pooled"]
    assert pooled.groups == len(samples)
    assert (pooled.bartlett_stat, pooled.bartlett_p) == pytest.approx(tuple(expected), rel=1e-9)
    variances = [np.var(s, ddof=1) for s in samples]
    assert bartlett(variances, [len(s) for s in samples]) == pytest.approx(tuple(expected))


def _paper_reference():
    """The paper's pooled sigma, df and each change's pooled t-test p, computed with scipy."""
    rows = {r.step: r for r in paper_rows() if r.track == TRACK}
    stds = [r.top1_std for r in rows.values() if r.top1_std is not None]
    sigma, df = math.sqrt(sum(s**2 for s in stds) / len(stds)), 2 * len(stds)  # n = 3 each
    out = {}
    for step in steps(TRACK):
        if step.parent not in rows or step.name not in rows:  # the paper did not run it
            continue
        mine, theirs = rows[step.name], rows[step.parent]
        t = (mine.top1 - theirs.top1) / (sigma * math.sqrt(2 / 3))
        out[step.name] = 2 * stats.t.sf(abs(t), df)
    samples = [[r.top1 - r.top1_std, r.top1, r.top1 + r.top1_std] for r in rows.values()
               if r.top1_std is not None]  # fmt: skip
    return sigma, df, out, stats.bartlett(*samples)


def test_the_papers_pooled_tests_equal_scipy_from_table_10():
    sigma, df, expected, bart = _paper_reference()
    frame = paper_staircase(TRACK)
    pooled = frame.attrs["pooled"]
    assert (pooled.source, pooled.df) == ("paper", df)
    assert pooled.sigma == pytest.approx(sigma, rel=1e-12)
    assert (pooled.bartlett_stat, pooled.bartlett_p) == pytest.approx(tuple(bart), rel=1e-9)
    rows = frame.set_index("step")
    for step, p in expected.items():
        assert rows.loc[step, "pooled_p"] == pytest.approx(p, rel=1e-9)
    # the reading of Table 10 (19): 0.077 and 0.059 under one sigma of 0.094 on 32 df
    assert abs(expected["inverted_bottleneck"] - 0.077) < 0.005
    assert abs(expected["patchify_stem"] - 0.059) < 0.005
    tested = frame[frame["pooled_p"].notna()]
    assert (tested["pooled_p_holm"] >= tested["pooled_p"]).all()
    assert (tested["change_p_holm"].dropna() >= tested["change_p"].dropna()).all()
    assert frame.attrs["pooled"].margin == DEFAULT_MARGIN


def test_seeds_needed_and_the_power_table_equal_statsmodels(fixture):
    _, frame = fixture
    pooled = frame.attrs["pooled"]
    n_steps = int((frame["n"] > 0).sum())
    delta = 0.5
    table = power_table(frame.to_dict("records"), pooled.sigma, pooled.df, delta)
    assert list(table.columns) == list(POWER_COLUMNS)
    assert list(table["step"]) == [s.name for s in _chain()[1:]]

    def power_at(n):  # statsmodels' power with n seeds a side on the model's df then
        se = pooled.sigma * math.sqrt(2 / n)
        return _power(delta / se, (n_steps - 1) * (n - 1))

    needed = next(n for n in range(2, 500) if power_at(n) >= 0.8)
    assert (table["seeds_needed"] == needed).all()
    assert seeds_needed(pooled.sigma, delta, n_steps) == needed
    for _, row in table.iterrows():
        se = pooled.sigma * math.sqrt(1 / row["n"] + 1 / row["parent_n"])
        expected = _power(delta / se, pooled.df)
        assert row["power_now"] == pytest.approx(expected, rel=1e-5)


def test_the_statistics_page_names_the_papers_changes_under_the_pooled_test_as_computed():
    page = (Path(__file__).resolve().parents[1] / "docs" / "statistics.md").read_text()
    text = " ".join(
        page.split("The paper's Table 10 under it", 1)[1].split("Table 11", 1)[0].split()
    )
    frame = paper_staircase(TRACK)
    pooled = frame.attrs["pooled"]
    tested = frame[frame["pooled_p"].notna()]
    shown, holm = tested[tested["pooled_p"] < 0.05], tested[tested["pooled_p_holm"] < 0.05]
    rest = tested[tested["pooled_p_holm"] >= 0.05]
    assert f"pooled sigma {pooled.sigma:.3f} on {pooled.df:g} degrees of freedom" in text
    assert f"Bartlett statistic {pooled.bartlett_stat:.2f}, p = {pooled.bartlett_p:.2f}" in text
    counts = f"{len(shown)} of the paper's {len(tested)} tested changes are shown"
    assert f"{counts} (pooled p < 0.05), {len(holm)} after Holm:" in text
    listed = text.split("after Holm:", 1)[1].split("Not shown:", 1)
    named = [n for n in re.findall(r"`(\w+)`", listed[0]) if n in set(frame["step"])]
    assert named == list(holm["step"])
    for row in holm.itertuples():
        assert f"`{row.step}` ({row.change:+.2f})" in listed[0]
    named = [n for n in re.findall(r"`(\w+)`", listed[1]) if n in set(frame["step"])]
    assert named == list(rest["step"])
    for row in rest.itertuples():
        numbers = (
            f"({row.change:+.2f}, pooled p = {row.pooled_p:.3f}, Holm p = {row.pooled_p_holm:.2f})"
        )
        assert f"`{row.step}` {numbers}" in listed[1]
    equivalent = int((tested["verdict"] == "equivalent").sum())
    assert ("None is equivalent" if equivalent == 0 else f"{equivalent} are equivalent") in text
    assert f"within ±{pooled.margin:g} (TOST)" in text
    assert set(tested["mde80"].round(2)) == {float(f"{tested['mde80'].iloc[0]:.2f}")}
    assert f"every change's MDE80 is {tested['mde80'].iloc[0]:.2f} points" in text
