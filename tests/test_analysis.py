"""Collecting and aggregating run records: maths, order, side branches, exclusions, tables."""

import io
import statistics

import pandas as pd
import pytest
from analysis_fixtures import RECIPE, build_root, synthetic_top1, write_run

from analysis.cli import TRACK_LABELS, summary
from analysis.collect import aggregate, load_runs, paper_staircase, select_runs
from analysis.paper import figure_label_mismatches
from analysis.table import gflops_cell, to_csv, to_latex, to_markdown
from roadmap.paper import paper_row, paper_rows
from roadmap.steps import TRACKS, step_names, steps

TRACK = "resnet50"
SKIP = (("kernel_9", 2), ("kernel_11", 1), ("kernel_11", 2))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Three seeds of every step (fewer for two side branches) plus runs to leave out."""
    root = tmp_path_factory.mktemp("runs")
    written = build_root(root, TRACK, seeds=(0, 1, 2), skip=SKIP)
    write_run(root, TRACK, "relu_to_gelu", 3, status="failed", reason="loss is NaN")
    # logged, no result, no job: its trainer has ended, so it is interrupted
    write_run(root, TRACK, "fewer_norms", 4, status=None)
    write_run(root, TRACK, "fewer_norms", 5, status=None, epochs=0)  # nothing yet: missing
    write_run(root, TRACK, "stage_ratio", 0, preset="debug")
    write_run(root, TRACK, "no_such_step", 0)
    write_run(root, "resnet200", "patchify_stem", 0)
    # an older run of the same step and seed: the newer one (already written) is drawn
    write_run(root, TRACK, "width_96", 1, top1=1.0, created="2024-01-01", name="old")
    return root, written


@pytest.fixture(scope="module")
def selected(root):
    return select_runs(load_runs(root[0]), TRACK)


@pytest.fixture(scope="module")
def frame(selected):
    return aggregate(selected)


def test_mean_std_and_n_per_step_come_from_the_seeds(root, frame):
    _, written = root
    for _, row in frame.iterrows():
        values = [v for (step, _), v in sorted(written.items()) if step == row["step"]]
        assert row["n"] == len(values) and row["values"] == pytest.approx(values)
        assert row["top1_mean"] == pytest.approx(statistics.mean(values))
        if len(values) > 1:
            assert row["top1_std"] == pytest.approx(statistics.stdev(values))
        else:
            assert pd.isna(row["top1_std"])
    assert list(frame.loc[frame["step"] == "kernel_11", "seeds"]) == [[0]]


def test_rows_follow_the_roadmap_order_with_groups_and_side_branches(frame):
    assert list(frame["step"]) == step_names(TRACK)
    assert list(frame["index"]) == [s.index for s in steps(TRACK)]
    assert list(frame["group"]) == [s.group for s in steps(TRACK)]
    side = set(frame.loc[~frame["on_path"], "step"])
    assert side == {s.name for s in steps(TRACK) if not s.on_path}


def test_change_is_against_the_parent_step(frame):
    mean = dict(zip(frame["step"], frame["top1_mean"], strict=True))
    change = dict(zip(frame["step"], frame["change"], strict=True))
    for step in steps(TRACK)[1:]:
        assert change[step.name] == pytest.approx(mean[step.name] - mean[step.parent])
    # side branches start from the on-path step before them; the path goes on from kernel_7
    assert change["kernel_5"] == pytest.approx(mean["kernel_5"] - mean["move_up_dwconv"])
    assert change["kernel_11"] == pytest.approx(mean["kernel_11"] - mean["kernel_7"])
    assert change["relu_to_gelu"] == pytest.approx(mean["relu_to_gelu"] - mean["kernel_7"])
    assert pd.isna(change[steps(TRACK)[0].name])  # no reference runs, no paper: nothing


def test_left_out_runs_are_listed_with_their_reason(root, selected, frame):
    reasons = dict(zip(selected.excluded["run"], selected.excluded["reason"], strict=True))
    assert reasons == {
        f"{TRACK}/smoke/relu_to_gelu/seed3": "failed: loss is NaN",
        f"{TRACK}/smoke/fewer_norms/seed4": "unfinished",  # analysis asks no job (status does)
        f"{TRACK}/smoke/fewer_norms/seed5": "unfinished",
        f"{TRACK}/debug/stage_ratio/seed0": "other preset 'debug'",
        f"{TRACK}/smoke/no_such_step/seed0": "unknown step 'no_such_step'",
        f"{TRACK}/smoke/width_96/old": (
            f"duplicate seed (the newer run {TRACK}/smoke/width_96/seed1 is drawn)"
        ),
    }
    text = summary(selected, frame)
    for run, reason in reasons.items():
        assert run in text and reason in text
    assert "runs of other tracks not drawn: resnet200 (1 run)" in text
    assert "preset 'smoke' drawn (most runs)" in text
    assert "fewer seeds than the others (3): kernel_9 (2), kernel_11 (1)" in text
    n = len(steps(TRACK))
    assert f"{n} of {n} steps drawn from {len(root[1])} runs" in text


def test_a_tie_between_presets_is_an_error_naming_them(tmp_path):
    write_run(tmp_path, TRACK, "stage_ratio", 0, preset="smoke")
    write_run(tmp_path, TRACK, "stage_ratio", 0, preset="debug")
    with pytest.raises(ValueError, match=r"debug \(1 run\), smoke \(1 run\).*--preset"):
        select_runs(load_runs(tmp_path), TRACK)
    sel = select_runs(load_runs(tmp_path), TRACK, preset="debug")
    assert list(sel.runs["preset"]) == ["debug"]
    assert list(sel.excluded["reason"]) == ["other preset 'smoke'"]
    mixed = select_runs(load_runs(tmp_path), TRACK, allow_mixed=True)
    assert sorted(mixed.runs["preset"]) == ["debug", "smoke"] and mixed.excluded.empty
    with pytest.raises(ValueError, match="presets found: .*smoke"):
        select_runs(load_runs(tmp_path), TRACK, preset="paper")


def test_runs_of_another_recipe_are_left_out_and_named(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path, TRACK, "stage_ratio", seed)
    write_run(tmp_path, TRACK, "stage_ratio", 2, recipe={**RECIPE, "epochs": 9})
    sel = select_runs(load_runs(tmp_path), TRACK)
    assert list(sel.excluded["reason"]) == ["other recipe"]
    assert "recipe.epochs=2; recipe.epochs=9" in " ".join(sel.notes)
    assert len(select_runs(load_runs(tmp_path), TRACK, allow_mixed=True).runs) == 3


def test_original_recipe_runs_become_the_reference_row(tmp_path):
    base = steps(TRACK)[0]
    build_root(tmp_path, TRACK, seeds=(0, 1), preset="paper")
    low = [
        write_run(tmp_path, TRACK, base.name, s, preset="original", top1=30.0 + s) for s in (0, 1)
    ]
    assert len(low) == 2
    frame = aggregate(select_runs(load_runs(tmp_path), TRACK))
    ref = frame.iloc[0]
    assert bool(ref["reference"]) and ref["step"] == f"{TRACK}_original_recipe"
    assert ref["top1_mean"] == pytest.approx(30.5) and ref["n"] == 2
    first = frame.iloc[1]
    assert first["step"] == base.name
    assert first["change"] == pytest.approx(first["top1_mean"] - 30.5)
    # the preset is `paper`: the paper's numbers stand beside the runs'
    for _, row in frame.iterrows():
        paper = paper_row(TRACK, row["step"])
        if paper is None:  # a step the paper does not have
            assert pd.isna(row["paper_top1"]) and pd.isna(row["paper_gflops"])
        else:
            assert (row["paper_top1"], row["paper_gflops"]) == (
                paper.top1,
                paper.gflops,
            )
    assert first["paper_change"] == pytest.approx(
        paper_row(TRACK, base.name).top1 - ref["paper_top1"]
    )


def test_reference_runs_have_their_own_recipe_and_duplicate_rules(tmp_path):
    base = steps(TRACK)[0].name
    for seed in (0, 1):
        write_run(tmp_path, TRACK, base, seed)
        write_run(tmp_path, TRACK, base, seed, preset="original", top1=30.0)
    write_run(tmp_path, TRACK, base, 0, preset="original", created="2024-01-01", name="old")
    write_run(tmp_path, TRACK, base, 2, preset="original", recipe={**RECIPE, "lr": 1.0})
    sel = select_runs(load_runs(tmp_path), TRACK)
    assert sel.preset == "smoke" and len(sel.runs) == 2
    assert sorted(sel.reference["seed"]) == [0, 1]
    reasons = dict(zip(sel.excluded["run"], sel.excluded["reason"], strict=True))
    assert reasons == {
        f"{TRACK}/original/{base}/old": (
            f"duplicate seed (the newer run {TRACK}/original/{base}/seed0 is drawn)"
        ),
        f"{TRACK}/original/{base}/seed2": "other recipe",
    }
    drawn_as_preset = select_runs(load_runs(tmp_path), TRACK, preset="original")
    assert drawn_as_preset.reference.empty and len(drawn_as_preset.runs) == 2


def test_track_labels_name_roadmap_tracks():
    assert set(TRACK_LABELS) <= set(TRACKS)


def test_paper_columns_only_for_the_paper_preset_or_when_asked(selected):
    assert aggregate(selected)["paper_top1"].isna().all()
    asked = aggregate(selected, with_paper=True)
    in_paper = [paper_row(TRACK, s) is not None for s in asked["step"]]
    assert list(asked["paper_top1"].notna()) == in_paper and asked.iloc[0]["reference"]


def test_other_metric_and_empty_roots(tmp_path, root, frame):
    best = aggregate(select_runs(load_runs(root[0]), TRACK, metric="best_top1"))
    top1 = frame
    assert (best["top1_mean"] - top1["top1_mean"]).round(6).eq(0.1).all()
    with pytest.raises(ValueError, match="no run records"):
        load_runs(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_runs(tmp_path / "nope")


@pytest.mark.parametrize("track", ["resnet50", "resnet200"])
def test_paper_staircase_is_the_shipped_numbers(track):
    frame = paper_staircase(track)
    rows = sorted((r for r in paper_rows() if r.track == track), key=lambda r: r.order)
    assert list(frame["step"]) == [r.step for r in rows]
    assert list(frame["top1_mean"]) == [r.top1 for r in rows]
    assert list(frame["gflops"]) == [r.gflops for r in rows]
    mean = dict(zip(frame["step"], frame["top1_mean"], strict=True))
    for _, row in frame[frame["parent"].notna()].iterrows():
        assert row["change"] == pytest.approx(row["top1_mean"] - mean[row["parent"]])
    assert frame.iloc[1]["change"] == pytest.approx(rows[1].top1 - rows[0].top1)


def test_figure_labels_that_disagree_with_table_10_are_found():
    assert figure_label_mismatches("resnet50") == ["bn_to_ln GFLOPs: table 4.46, figure 4.2"]


@pytest.mark.parametrize(
    ("gflops", "text"),
    [
        (4.456, "4.46"),
        (15.355, "15.36"),
        (1.0, "1.00"),
        (0.0835, "0.084"),
        (0.09, "0.090"),
    ],
)
def test_gflops_cell(gflops, text):
    assert gflops_cell(gflops) == text


def test_markdown_table(frame):
    lines = to_markdown(frame).splitlines()
    head = (
        "| step | group | on path | GFLOPs | params | precision | top-1 | change | 95% CI | p "
        "| test | pooled p | Holm p | MDE80 | verdict |"
    )
    assert lines[0] == head
    assert len([x for x in lines if x.startswith("|")]) == 2 + len(frame)
    k7 = frame.set_index("step").loc["kernel_7"]
    row = next(line for line in lines if line.startswith("| kernel_7 |"))
    expected = f"{k7['top1_mean']:.2f} ± {k7['top1_std']:.2f} (3)"
    assert f"| large kernel | yes | {k7['gflops']:.2f} |" in row and expected in row
    assert "| kernel_11 | large kernel | side |" in to_markdown(frame)
    assert f"{synthetic_top1(11, 0):.2f} (1)" in to_markdown(frame)


def test_latex_table_is_booktabs_with_a_rule_between_groups(frame):
    tex = to_latex(frame)
    assert "\\toprule" in tex and "\\bottomrule" in tex
    groups = frame["group"].nunique()
    assert tex.count("\\midrule") == 1 + (groups - 1)
    assert "kernel\\_7" in tex and "$\\pm$" in tex and "_7" not in tex.replace("\\_7", "")
    body = [line for line in tex.splitlines() if line.endswith("\\\\") and "&" in line]
    columns = to_markdown(frame).splitlines()[0].count("|") - 1
    assert len(body) == 1 + len(frame)
    assert all(line.count("&") == columns - 1 for line in body)


def test_csv_table_round_trips(frame):
    back = pd.read_csv(io.StringIO(to_csv(frame)))
    assert list(back["step"]) == list(frame["step"])
    assert back["top1_mean"].to_numpy() == pytest.approx(frame["top1_mean"].to_numpy(), abs=1e-6)
    assert list(back["n"]) == list(frame["n"])
    assert back.loc[back["step"] == "kernel_9", "seeds"].item() == "0;1"


def test_paper_table_leaves_out_empty_columns():
    md = to_markdown(paper_staircase("resnet200"))
    assert md.splitlines()[0] == "| step | group | on path | GFLOPs | top-1 | change |"
    assert "| resnet200_original_recipe | baseline | ref |" in md


def test_status_names_the_error_its_submitit_job_pickled_analysis_reads_no_job(tmp_path) -> None:
    import pickle
    import socket

    from experiments.runs import records, runstate
    from experiments.submitit_private import job_outcome_error

    run = write_run(tmp_path, TRACK, steps(TRACK)[0].name, 0, status=None)
    folder = tmp_path / "submitit"
    folder.mkdir()
    with open(folder / "999999999_0_result.pkl", "wb") as f:  # submitit's outcome file
        pickle.dump(("error", "Traceback (most recent call last):\nValueError: bad shard"), f)
    job = {"executor": "local", "job_id": "999999999", "host": socket.gethostname(),
           "submitit_folder": str(folder)}  # fmt: skip
    records.atomic_write_json(run / records.JOB, job)
    (state,) = runstate.sweep_states(tmp_path, job_error=job_outcome_error)
    assert state.status == "interrupted" and state.detail.endswith("ValueError: bad shard")
    row = load_runs(tmp_path).iloc[0]  # records only: no job, no submitit file is read
    assert row["status"] == "unfinished" and "roadmap status" in row["reason"]
