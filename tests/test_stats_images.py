"""The image-level interval from predictions.npz, the fidelity to the paper, and the command.

The image bootstrap is checked against the normal approximation of a paired difference of two
proportions (one seed a side: only the images vary); fidelity against scipy's Spearman and
Kendall on the changes, the paper's significant changes from its pooled test recomputed here.
"""

import math

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import build_root, write_run
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.collect import aggregate, load_runs, paper_staircase, select_runs
from analysis.fidelity import FIDELITY_COLUMNS, fidelity, kendall_rows, spearman_rows
from analysis.images import image_columns
from analysis.report import staircase_title
from experiments.runs.predictions import write_predictions
from roadmap.cli import main
from roadmap.paper import paper_rows
from roadmap.steps import steps

TRACK = "resnet50"
IMAGES = 1200
CLASSES = 10


def _predictions(rng, labels, accuracy):
    """Predictions right on a random `accuracy` share of the images."""
    right = rng.random(len(labels)) < accuracy
    wrong = (labels + 1 + rng.integers(0, CLASSES - 1, len(labels))) % CLASSES
    return {"label": labels, "pred": np.where(right, labels, wrong), "top5": right}


def _write(root, step, seed, arrays, dataset="val-1200"):
    """A done run whose top-1 is its predictions' accuracy, with its predictions.npz."""
    top1 = 100.0 * float(np.mean(arrays["pred"] == arrays["label"]))
    run = write_run(root, TRACK, step, seed, top1=top1)
    write_predictions(run, arrays, dataset)
    return run


def test_one_seed_a_side_gives_the_paired_proportions_interval(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, CLASSES, IMAGES)
    first, second = [s for s in steps(TRACK) if s.on_path][:2]
    a = _predictions(rng, labels, 0.6)
    flip = rng.random(IMAGES) < 0.08  # b is a, with 8% of the images changed: correlated
    b = {k: v.copy() for k, v in a.items()}
    b["pred"][flip] = np.where(a["top5"][flip], (labels[flip] + 1) % CLASSES, labels[flip])
    b["top5"] = b["pred"] == labels
    _write(tmp_path, first.name, 0, a)
    _write(tmp_path, second.name, 0, b)
    row = aggregate(select_runs(load_runs(tmp_path), TRACK)).set_index("step").loc[second.name]
    # the normal approximation: discordant images n01 (only b right) and n10 (only a right);
    # drawing the images apart for a and b instead would give a far wider interval
    ra, rb = a["pred"] == labels, b["pred"] == labels
    n01, n10 = int((rb & ~ra).sum()), int((ra & ~rb).sum())
    diff = (n01 - n10) / IMAGES
    se = math.sqrt((n01 + n10) / IMAGES**2 - diff**2 / IMAGES)
    half = stats.norm.ppf(0.975) * se * 100
    assert row["change"] == pytest.approx(100 * diff, abs=1e-9)
    low, high = row["image_ci95_low"], row["image_ci95_high"]
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert (low + high) / 2 == pytest.approx(100 * diff, abs=0.15 * half)
    assert math.isnan(row["change_p"])  # one seed a side: no seed test, yet an image interval


@pytest.fixture(scope="module")
def with_predictions(tmp_path_factory):
    """Two steps of three seeds with predictions; a third step missing one run's file."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(2)
    labels = rng.integers(0, CLASSES, IMAGES)
    chain = [s for s in steps(TRACK) if s.on_path][:4]
    for seed in range(3):
        _write(root, chain[0].name, seed, _predictions(rng, labels, 0.5))
        _write(root, chain[1].name, seed, _predictions(rng, labels, 0.6))
        if seed:
            _write(root, chain[2].name, seed, _predictions(rng, labels, 0.6))
        else:
            write_run(root, TRACK, chain[2].name, seed, top1=60.0)  # no predictions
        _write(root, chain[3].name, seed, _predictions(rng, labels, 0.6), dataset="other")
    frame = aggregate(select_runs(load_runs(root), TRACK)).set_index("step")
    return chain, frame


def test_image_interval_only_where_every_run_of_both_has_predictions(with_predictions):
    chain, frame = with_predictions
    first = frame.loc[chain[1].name]
    assert first["image_ci95_low"] < first["change"] < first["image_ci95_high"]
    # the images' noise comes on top of the seeds': wider than the seeds' range of changes
    assert first["image_ci95_high"] - first["image_ci95_low"] > 0
    for step in chain[2:]:  # a run without the file; predictions on another dataset
        assert math.isnan(frame.loc[step.name, "image_ci95_low"])
        assert math.isnan(frame.loc[step.name, "image_ci95_high"])


def test_the_image_bootstrap_gives_every_change_of_the_step_list_an_interval(tmp_path):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, CLASSES, IMAGES)
    rows, parents = [], []
    for step in steps(TRACK):
        dirs = []
        for seed in range(3):
            run = tmp_path / step.name / str(seed)
            run.mkdir(parents=True)
            write_predictions(run, _predictions(rng, labels, 0.6), "val")
            dirs.append(str(run))
        rows.append({"step": step.name, "seeds": [0, 1, 2], "run_dirs": dirs})
        parents.append(step.parent)
    cols = image_columns(rows, parents)  # its speed: docs/statistics.md (a speed target is no test)
    assert np.isfinite(cols["image_ci95_low"][1:]).all()


def _paper_significant():
    """The paper's changes significant under its pooled test after Holm, computed here."""
    rows = {r.step: r for r in paper_rows() if r.track == TRACK}
    stds = [r.top1_std for r in rows.values() if r.top1_std is not None]
    sigma, df = math.sqrt(sum(s**2 for s in stds) / len(stds)), 2 * len(stds)
    names, p = [], []
    for step in steps(TRACK):
        if step.parent in rows and step.name in rows:  # a step the paper did not run: none
            t = (rows[step.name].top1 - rows[step.parent].top1) / (sigma * math.sqrt(2 / 3))
            names.append(step.name)
            p.append(2 * stats.t.sf(abs(t), df))
    reject = multipletests(p, method="holm")[0]
    return {name for name, r in zip(names, reject, strict=True) if r}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity")
    build_root(root, TRACK, seeds=(0, 1, 2))
    frame = aggregate(select_runs(load_runs(root), TRACK))
    return root, frame


def test_fidelity_equals_scipy_on_the_changes(smoke):
    _, frame = smoke
    paper = paper_staircase(TRACK).set_index("step")["change"]
    mine = frame[frame["change"].notna()].set_index("step")["change"]
    common = [s for s in mine.index if pd.notna(paper.get(s))]
    table = fidelity(frame, paper_staircase(TRACK), TRACK)
    assert list(table.columns) == list(FIDELITY_COLUMNS)
    significant = _paper_significant()
    for (_, row), chosen in zip(
        table.iterrows(), (common, [s for s in common if s in significant]), strict=True
    ):
        x, y = paper[chosen].to_numpy(), mine[chosen].to_numpy()
        assert row["n_changes"] == len(chosen)
        assert row["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-9)
        assert row["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic, rel=1e-9)
        assert row["sign_agree"] == int((np.sign(x) == np.sign(y))[x != 0].sum())
        assert row["sign_n"] == int((x != 0).sum())
        for name in ("spearman", "kendall"):
            assert -1 <= row[f"{name}_ci95_low"] <= row[f"{name}_ci95_high"] <= 1


def test_fidelity_of_a_root_without_a_change_is_empty_not_an_error(tmp_path):
    write_run(tmp_path, TRACK, steps(TRACK)[0].name, 0)  # one run: no change to compare
    frame = aggregate(select_runs(load_runs(tmp_path), TRACK))
    table = fidelity(frame, paper_staircase(TRACK), TRACK)
    assert list(table["n_changes"]) == [0, 0] and table["spearman"].isna().all()


def test_vectorised_correlations_equal_scipy_row_by_row():
    rng = np.random.default_rng(4)
    x = np.round(rng.normal(size=12), 1)  # rounded: ties, as the paper's changes have
    ys = np.round(rng.normal(size=(20, 12)), 1)
    for y, rho, tau in zip(ys, spearman_rows(x, ys), kendall_rows(x, ys), strict=True):
        assert rho == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-9)
        assert tau == pytest.approx(stats.kendalltau(x, y).statistic, rel=1e-9)


def test_staircase_writes_stats_fidelity_and_power(smoke, tmp_path, capsys):
    root, frame = smoke
    out = tmp_path / "out"
    argv = ["staircase", "--root", str(root), "--out", str(out), "--formats", "png"]
    assert main([*argv, "--power", "0.5", "--equivalence", "0.2"]) == 0
    printed = capsys.readouterr().out
    pooled = pd.read_csv(out / f"stats_{TRACK}.csv").iloc[0]
    assert pooled["source"] == "runs" and pooled["margin"] == 0.2
    assert f"sigma {pooled['sigma']:.3f} on {pooled['df']:g} df" in printed
    table = pd.read_csv(out / f"fidelity_{TRACK}.csv")
    assert f"Spearman {table.iloc[0]['spearman']:.2f}" in printed
    every = table.iloc[0]  # the chance baseline and the paper's noise, printed beside it
    assert f"chance {every['sign_chance']:.1f}, p = {every['sign_p']:.2f}" in printed
    assert f"permutation p = {every['spearman_p']:.3f}" in printed
    assert every["sign_noise_low"] <= every["sign_noise_high"] <= every["n_changes"]
    power = pd.read_csv(out / f"power_{TRACK}.csv")
    assert len(power) == int(frame["change_parent"].notna().sum())
    assert "roadmap sweep --seeds 0-" in printed
    staircase = pd.read_csv(out / f"staircase_{TRACK}.csv")
    for col in ("pooled_p", "pooled_p_holm", "change_p_bh", "mde80", "tost_p", "verdict"):
        assert col in staircase.columns
    assert (out / f"fidelity_{TRACK}.png").stat().st_size > 1000
    # the smoke staircase says what it is, with the Spearman just measured
    title = staircase_title("label", "smoke", table)
    assert "a pipeline check, not the paper" in title
    assert f"{table.iloc[0]['spearman']:.2f}".replace("-", "−") in title
    assert "pipeline" not in staircase_title("label", "paper", table)


def test_one_seed_per_step_without_predictions_still_works(tmp_path, capsys):
    build_root(tmp_path / "runs", TRACK, seeds=(0,))
    out = tmp_path / "out"
    assert main(["staircase", "--root", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert "no pooled model" in capsys.readouterr().out
    frame = pd.read_csv(out / f"staircase_{TRACK}.csv")
    for col in ("pooled_p", "mde80", "tost_p", "image_ci95_low", "seed_corr", "change_p_holm"):
        assert frame[col].isna().all(), col
    assert frame["verdict"].isna().all()  # "" in the frame: no test, no verdict
    assert pd.read_csv(out / f"stats_{TRACK}.csv")["source"].isna().all()


@pytest.mark.parametrize("flag", ["--power", "--equivalence"])
@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_bad_power_and_margin_are_refused_before_anything_is_written(tmp_path, flag, value):
    with pytest.raises(SystemExit):
        main(["staircase", "--paper", "--out", str(tmp_path / "out"), flag, value])
    assert not (tmp_path / "out").exists()
