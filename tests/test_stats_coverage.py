"""Do the intervals keep their promise with 3 seeds? Coverage by simulation, and the baselines.

Each interval is computed on `DRAWS` simulated experiments (seeded) whose true value is known,
and its coverage must lie within `BAND` of the nominal 95% (a coverage of 95% over 2,000 draws
has a standard error of 0.5 points). The percentile bootstrap over 3 seeds that the Shapley
interval replaces is simulated beside it, and falls far below. The TOST's power bound, the
permutation baseline and the paper's noise are checked against exact enumeration and formulas
computed here.
"""

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from analysis.collect import paper_staircase
from analysis.effects import shapley_values
from analysis.fidelity import _chance, correlation_interval, kendall_rows, paper_draws
from analysis.images import crossed_interval
from analysis.power import se_of, tost_power, tost_reachable, tost_seeds_needed
from analysis.report import pooled_line
from analysis.stats import compare_runs, seed_interval

DRAWS = 2000
SEEDS = 3
BAND = (0.93, 0.97)  # nominal 0.95


def _covers(low, high, truth) -> float:
    """The share of intervals that hold the truth."""
    return float(np.mean((np.asarray(low) <= truth) & (truth <= np.asarray(high))))


def test_the_seed_t_interval_is_the_paired_t_test_interval():
    a, b = [80.1, 80.5, 79.9], [79.8, 80.0, 79.9]
    low, high = seed_interval(np.subtract(a, b)[:, None])
    change = compare_runs(a, [0, 1, 2], b, [0, 1, 2])
    assert (low[0], high[0]) == pytest.approx((change.low, change.high), rel=1e-12)
    assert np.isnan(seed_interval(np.ones((1, 2)))[0]).all()  # one seed: no interval


def test_shapley_seed_intervals_cover_95_at_3_seeds_and_the_bootstrap_did_not():
    rng = np.random.default_rng(0)
    means = {(-1, -1): 0.0, (1, -1): 1.0, (-1, 1): 0.5, (1, 1): 2.0}  # an interaction of 0.5
    truth = shapley_values(means, 2)
    seed = rng.normal(0, 0.5, (SEEDS, DRAWS))  # a seed moves every cell alike (a block)
    cells = {k: m + seed + rng.normal(0, 0.3, (SEEDS, DRAWS)) for k, m in means.items()}
    per_seed = shapley_values(cells, 2)  # linear in the cells: one array (seeds x draws) each
    for value, phi in zip(truth, per_seed, strict=True):
        low, high = seed_interval(phi)
        assert BAND[0] <= _covers(low, high, value) <= BAND[1]
    # the percentile bootstrap over the 3 seeds, as before: far below its nominal 95%
    pick = rng.integers(0, SEEDS, (1000, SEEDS))
    boot = per_seed[0][pick].mean(1)  # 1000 x draws
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    assert _covers(low, high, truth[0]) < 0.85


def _image_draw(rng, images, sigma_seed, paired):
    """Per-image correctness (seeds x images) of two steps: logistic in image and seed."""
    theta, gain = rng.normal(0, 1, images), rng.normal(0, 0.5, images)
    shared = rng.normal(0, sigma_seed, SEEDS) if paired else np.zeros(SEEDS)
    alpha_a = shared + rng.normal(0, sigma_seed, SEEDS)
    alpha_b = shared + rng.normal(0, sigma_seed, SEEDS)
    p_a = expit(theta[None] + 0.3 + gain[None] + alpha_a[:, None])
    p_b = expit(theta[None] + alpha_b[:, None])
    return (rng.random(p_a.shape) < p_a).astype(float), (rng.random(p_b.shape) < p_b).astype(float)


def _image_truth(sigma_seed, paired):
    """The change of expected top-1 over images and seeds (points), by Gauss-Hermite."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    var_seed = (2 if paired else 1) * sigma_seed**2

    def mean(mu, var):
        return float((w * expit(mu + math.sqrt(var) * x)).sum())

    return 100 * (mean(0.3, 1 + 0.25 + var_seed) - mean(0.0, 1 + var_seed))


@pytest.mark.parametrize("paired", [True, False])
def test_the_image_interval_covers_95_at_3_seeds(paired):
    rng = np.random.default_rng(1 if paired else 2)
    truth = _image_truth(0.3, paired)
    found = [crossed_interval(*_image_draw(rng, 200, 0.3, paired), paired) for _ in range(DRAWS)]
    low, high = np.array(found).T
    assert BAND[0] <= _covers(low, high, truth) <= BAND[1]


def test_one_run_a_side_gives_the_images_part_only():
    rng = np.random.default_rng(3)
    a, b = ((rng.random((1, 500)) < p).astype(float) for p in (0.6, 0.5))
    low, high = crossed_interval(a, b, paired=False)
    d = a[0] - b[0]
    half = stats.t.ppf(0.975, 499) * d.std(ddof=1) / math.sqrt(500) * 100
    assert (low, high) == pytest.approx((100 * d.mean() - half, 100 * d.mean() + half))


def test_a_side_of_one_run_borrows_the_other_sides_seed_variance():
    rng = np.random.default_rng(6)
    shift = rng.normal(0, 0.3, 3)[:, None]  # seeds that move a run's accuracy
    b = (rng.random((3, 500)) < expit(0.2 + shift)).astype(float)
    a = (rng.random((1, 500)) < 0.6).astype(float)
    low, high = crossed_interval(a, b, paired=False)
    images_only = crossed_interval(a, b[:1], paired=False)  # one run a side
    assert high - low > 2 * (images_only[1] - images_only[0])  # b's seed spread, twice over
    assert low < 100 * (a.mean() - b.mean()) < high


def _spearman_rows(x, y):
    """Spearman's rho of each row of x with the same row of y (average ranks for ties)."""
    rx, ry = stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    return (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))


def test_the_fisher_z_correlation_intervals_cover_95_at_14_changes():
    rng = np.random.default_rng(4)
    n, rho = 14, 0.5  # the README's 14-15 changes
    xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], (DRAWS, n))
    x, y = xy[..., 0], xy[..., 1]
    spearman = _spearman_rows(x, y)
    kendall = [kendall_rows(xi, yi[None])[0] for xi, yi in zip(x, y, strict=True)]
    truths = {"spearman": 6 / np.pi * np.arcsin(rho / 2), "kendall": 2 / np.pi * np.arcsin(rho)}
    for kind, values in (("spearman", spearman), ("kendall", kendall)):
        low, high = np.array([correlation_interval(r, n, kind) for r in values]).T
        assert BAND[0] <= _covers(low, high, truths[kind]) <= BAND[1], kind
    assert np.isnan(correlation_interval(0.5, 3, "spearman")).all()  # n - 3 = 0: none


def test_tost_power_bounds_a_simulated_tost_and_the_paper_cannot_reach_equivalence():
    rng = np.random.default_rng(5)
    sigma, margin, n, df = 0.094, 0.1, 16, 30
    se = se_of(sigma, n, n)
    # the TOST at a true change of 0 with a sigma estimated on df degrees of freedom
    est = rng.normal(0, se, 20_000)
    se_hat = se * np.sqrt(rng.chisquare(df, 20_000) / df)
    crit = stats.t.ppf(0.95, df)
    shown = np.mean((est - crit * se_hat > -margin) & (est + crit * se_hat < margin))
    bound = tost_power(margin, se, df)
    assert bound <= shown + 0.01 and shown - bound < 0.05  # a bound, and a close one
    assert not tost_reachable(se_of(sigma, 3, 3), 32, margin)  # t(0.95, 32) 0.077 > 0.1
    needed = tost_seeds_needed(sigma, margin, 16)
    assert tost_power(margin, se_of(sigma, needed, needed), 15 * (needed - 1)) >= 0.8
    fewer = needed - 1
    assert tost_power(margin, se_of(sigma, fewer, fewer), 15 * (fewer - 1)) < 0.8
    line = pooled_line(paper_staircase("resnet50"), "resnet50")
    assert (
        f"equivalent at margin 0.1 is unreachable with 3 seeds (15 of 15 changes): needs "
        f"{needed:.0f} seeds per step at sigma 0.094" in line
    )


def test_the_permutation_baseline_equals_exact_enumeration():
    x = np.array([0.5, -1.2, 2.2, 0.1, -0.7, 0.4, 0.0])
    y = np.array([0.3, 0.2, 1.0, -0.4, -0.1, 0.6, 0.2])
    found = _chance(x, y)
    perms = np.array(list(itertools.permutations(y)))  # all 5040 pairings
    agree = ((np.sign(perms) == np.sign(x)) & (x != 0)).sum(1)
    rho = _spearman_rows(np.tile(x, (len(perms), 1)), perms)  # average ranks for y's tie
    obs_agree = int(((np.sign(x) == np.sign(y)) & (x != 0)).sum())
    obs_rho = stats.spearmanr(x, y).statistic
    assert found["sign_chance"] == pytest.approx(agree.mean(), rel=1e-12)
    assert found["sign_p"] == pytest.approx(np.mean(agree >= obs_agree), abs=0.015)
    assert found["spearman_p"] == pytest.approx(np.mean(rho >= obs_rho - 1e-12), abs=0.015)


def test_the_papers_changes_are_redrawn_within_their_std_and_rounding():
    paper = paper_staircase("resnet50")
    rows = paper.set_index("step")
    steps = ["stage_ratio", "width_96", "kernel_9"]
    draws = paper_draws(paper, steps)
    for step, column in zip(steps, draws.T, strict=True):
        parent = rows.loc[step, "change_parent"]
        sd = math.sqrt(
            (rows.loc[step, "top1_std"] ** 2 + rows.loc[parent, "top1_std"] ** 2) / 3
            + 2 * 0.01**2 / 12  # each mean's rounding to 0.01: uniform
        )
        assert column.mean() == pytest.approx(rows.loc[step, "change"], abs=3 * sd / 40)
        assert column.std() == pytest.approx(sd, rel=0.08)
