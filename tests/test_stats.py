"""The change tests: interval and p-value equal scipy's, paired exactly when seeds match."""

import io
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from analysis_fixtures import write_run
from scipy import stats

from analysis.collect import aggregate, load_runs, paper_staircase, select_runs
from analysis.stats import CONFIDENCE, NO_TEST, compare_runs, compare_stats
from analysis.table import MARKS, to_csv, to_latex, to_markdown, verdict_note
from roadmap.paper import paper_rows
from roadmap.steps import steps

TRACK = "resnet50"
# t(0.975, df=2) and the two-sided p of t = 2 sqrt(3) on 2 df, as printed in t tables.
T_975_DF2 = 4.3027
P_TWO_SQRT3_DF2 = 0.0742


def _path(track: str = TRACK):
    """The first three on-path steps: a child paired with its parent, a grandchild not."""
    first, child, grandchild = [s for s in steps(track) if s.on_path][:3]
    assert (child.parent, grandchild.parent) == (first.name, child.name)
    return child, grandchild


def test_paired_differences_1_2_3_give_the_textbook_interval():
    # differences 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t = 2 sqrt(3) on 2 degrees of freedom
    change = compare_runs([11.0, 12.0, 13.0], [0, 1, 2], [10.0, 10.0, 10.0], [0, 1, 2])
    half = T_975_DF2 / math.sqrt(3)  # the table's four decimals: 3e-5 at most off
    assert change.test == "paired"
    assert (change.low, change.high) == pytest.approx((2 - half, 2 + half), abs=1e-4)
    assert change.p == pytest.approx(P_TWO_SQRT3_DF2, abs=1e-4) and change.within_noise
    assert change.p == pytest.approx(2 * stats.t.sf(2 * math.sqrt(3), 2), rel=1e-12)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Known values: a step paired with its parent by seed, the next one not."""
    root = tmp_path_factory.mktemp("stats")
    child, grandchild = _path()
    values = {
        child.parent: {0: 30.0, 1: 31.0, 2: 35.0},
        child.name: {0: 32.0, 1: 33.2, 2: 37.1},  # +2.0, +2.2, +2.1: a clear change
        grandchild.name: {
            3: 20.0,
            4: 50.0,
        },  # other seeds than its parent's: Welch, wide
    }
    for step, by_seed in values.items():
        for seed, top1 in by_seed.items():
            write_run(root, TRACK, step, seed, top1=top1)
    frame = aggregate(select_runs(load_runs(root), TRACK)).set_index("step")
    return values, frame


def test_matching_seeds_are_paired_and_equal_scipy_ttest_rel(runs):
    values, frame = runs
    child, _ = _path()
    mine, theirs = values[child.name], values[child.parent]
    expected = stats.ttest_rel([mine[s] for s in sorted(mine)], [theirs[s] for s in sorted(mine)])
    interval = expected.confidence_interval(CONFIDENCE)
    row = frame.loc[child.name]
    assert row["change_test"] == "paired"
    assert row["change_ci95_low"] == pytest.approx(interval.low, rel=1e-12)
    assert row["change_ci95_high"] == pytest.approx(interval.high, rel=1e-12)
    assert row["change_p"] == pytest.approx(expected.pvalue, rel=1e-12)
    # the unpaired test of the same numbers is another (wider) interval: pairing matters
    welch = stats.ttest_ind(list(mine.values()), list(theirs.values()), equal_var=False)
    assert welch.pvalue != pytest.approx(row["change_p"])


def test_other_seeds_are_welch_and_equal_scipy_ttest_ind(runs):
    values, frame = runs
    child, grandchild = _path()
    expected = stats.ttest_ind(
        list(values[grandchild.name].values()),
        list(values[child.name].values()),
        equal_var=False,
    )
    interval = expected.confidence_interval(CONFIDENCE)
    row = frame.loc[grandchild.name]
    assert row["change_test"] == "welch"
    assert (row["change_ci95_low"], row["change_ci95_high"]) == pytest.approx(
        (interval.low, interval.high), rel=1e-12
    )
    assert row["change_p"] == pytest.approx(expected.pvalue, rel=1e-12)


def test_paired_on_two_or_more_common_seeds_else_welch():
    a, b = [1.0, 2.5, 2.0], [0.5, 1.0, 1.5]
    assert compare_runs(a, [0, 1, 2], b, [0, 1, 2]).test == "paired"
    assert compare_runs(a, [2, 0, 1], b, [0, 1, 2]).test == "paired"  # any order
    assert compare_runs(a, [0, 1, 3], b, [0, 1, 2]).test == "paired"  # on 0 and 1
    assert compare_runs(a[:2], [0, 1], b, [0, 1, 2]).test == "paired"
    assert compare_runs(a, [0, 1, None], b, [0, 1, None]).test == "paired"  # None never pairs
    assert compare_runs(a, [0, 3, 4], b, [0, 1, 2]).test == "welch"  # one common seed
    assert compare_runs(a, [None] * 3, b, [None] * 3).test == "welch"
    assert compare_runs(a[:1], [0], b, [0, 1, 2]) == NO_TEST
    assert compare_runs(a, [0, 1, 2], b[:1], [0]) == NO_TEST


def test_seeds_0_to_3_against_0_to_2_pair_on_the_common_three():
    mine, theirs = [1.0, 2.5, 2.0, 9.0], [0.5, 1.0, 1.6]
    change = compare_runs(mine, [0, 1, 2, 3], theirs, [0, 1, 2])
    expected = stats.ttest_rel(mine[:3], theirs)
    assert change.test == "paired"
    assert change.p == pytest.approx(expected.pvalue, rel=1e-12)
    interval = expected.confidence_interval(CONFIDENCE)
    assert (change.low, change.high) == pytest.approx((interval.low, interval.high), rel=1e-12)
    assert change.corr == pytest.approx(stats.pearsonr(mine[:3], theirs).statistic, rel=1e-12)
    # two common seeds: a correlation of +-1 says nothing, so none is reported
    assert math.isnan(compare_runs(mine[:2], [0, 1], theirs, [0, 1, 2]).corr)


def test_below_two_seeds_and_missing_parents_have_no_test(runs):
    _, frame = runs
    without = frame[frame["n"] < 2]
    assert len(without) and (without["change_test"] == "").all()
    assert without["change_p"].isna().all()


def test_summary_statistics_are_welch_from_stats_as_scipy():
    change = compare_stats(80.57, 0.14, 3, (79.92, 0.08, 3))
    expected = stats.ttest_ind_from_stats(80.57, 0.14, 3, 79.92, 0.08, 3, False)
    assert change.test == "welch"
    assert change.p == pytest.approx(expected.pvalue, rel=1e-12)
    # The interval: scipy's own ttest_ind on samples that have exactly these statistics
    # (mean +- std, and the mean: sample std = std for three values).
    samples = [[m - s, m, m + s] for m, s in ((80.57, 0.14), (79.92, 0.08))]
    interval = stats.ttest_ind(*samples, equal_var=False).confidence_interval()
    assert (change.low, change.high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert compare_stats(80.0, math.nan, 3, (79.0, 0.1, 3)) == NO_TEST
    assert compare_stats(80.0, 0.1, 1, (79.0, 0.1, 3)) == NO_TEST


def test_the_paper_staircase_tests_its_own_mean_std_and_seeds():
    frame = paper_staircase(TRACK).set_index("step")
    paper = {r.step: r for r in paper_rows() if r.track == TRACK}
    tested = frame[frame["change_test"] != ""]
    assert len(tested) and (tested["change_test"] == "welch").all()
    for name, row in tested.iterrows():
        mine, parent = paper[name], paper[row["parent"]]
        expected = stats.ttest_ind_from_stats(
            mine.top1, mine.top1_std, 3, parent.top1, parent.top1_std, 3, False
        )
        assert row["change_p"] == pytest.approx(expected.pvalue, rel=1e-9)
    # Table 11 gives no std: nothing to test there
    assert (paper_staircase("resnet200")["change_test"] == "").all()


def test_tables_carry_the_interval_and_the_verdict_mark(runs):
    _, frame = runs
    frame = frame.reset_index()
    back = pd.read_csv(io.StringIO(to_csv(frame)), keep_default_na=False)
    for col in ("change_ci95_low", "change_ci95_high", "change_p", "change_test", "verdict"):
        assert col in back.columns
    assert set(back["change_test"]) <= {"paired", "welch", ""}
    md, tex = to_markdown(frame), to_latex(frame)
    assert "95% CI" in md.splitlines()[0] and "95\\% CI" in tex
    assert set(frame["verdict"]) - {""}  # some change has a verdict
    for _, row in frame.iterrows():
        line = next(x for x in md.splitlines() if x.startswith(f"| {row['step']} |"))
        marks = [m for m in MARKS.values() if m in line]
        assert marks == ([MARKS[row["verdict"]]] if row["verdict"] else []), line
    assert md.rstrip().endswith(verdict_note(frame))


def test_the_statistics_page_names_the_papers_changes_within_noise_as_computed():
    page = (Path(__file__).resolve().parents[1] / "docs" / "statistics.md").read_text()
    text = " ".join(page.split("By that test,", 1)[1].split("The other", 1)[0].split())
    frame = paper_staircase(TRACK)
    noisy = frame[frame["change_within_noise"] == True]  # noqa: E712 (None: no test)
    named = [n for n in re.findall(r"`(\w+)`", text) if n in set(frame["step"])]
    assert named == list(noisy["step"])
    for _, row in noisy.iterrows():
        low, high = row["change_ci95_low"], row["change_ci95_high"]
        numbers = f"{row['change']:+.2f}, {'95% CI ' if named[0] == row['step'] else ''}"
        numbers += f"[{low:+.2f}, {high:+.2f}], p = {row['change_p']:.2f})"
        assert f"`{row['step']}` ({numbers}" in text, numbers
    assert f"{len(noisy)} of the paper's {int((frame['change_test'] != '').sum())}" in text
