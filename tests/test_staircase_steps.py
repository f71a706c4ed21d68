"""`roadmap staircase --steps`: only the chosen rows; the verdict mark in the figure."""

import pandas as pd
import pytest
from analysis_fixtures import build_root, write_run

from analysis.collect import aggregate, draw_only, load_runs, select_runs
from analysis.figure import VERDICT_LEGEND, bar_label, group_label, staircase_figure, step_label
from analysis.table import MARKS
from roadmap.cli import main
from roadmap.steps import steps

TRACK = "resnet50"


def _two_steps():
    """A step whose parent is not chosen, and one that is not the first."""
    track_steps = steps(TRACK)
    return track_steps[2], track_steps[-1]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    short = steps(TRACK)[4].name  # not chosen below: its missing seeds are no warning there
    build_root(root, TRACK, seeds=(0, 1, 2), skip=((short, 1), (short, 2)))
    return root


def _staircase(root, out, *extra):
    """`roadmap staircase` on `root` into `out`, PNG only; its exit status."""
    return main(["staircase", "--root", str(root), "--out", str(out), "--formats", "png",
                 *extra])  # fmt: skip


def test_all_steps_warn_about_the_missing_seeds(root, tmp_path, capsys):
    assert _staircase(root, tmp_path) == 0
    assert f"fewer seeds than the others (3): {steps(TRACK)[4].name} (1)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("form", ["{a},{b}", "{a} {b}", "{b}, {a}"])
def test_only_the_chosen_steps_are_drawn(root, tmp_path, capsys, form):
    a, b = _two_steps()
    out = tmp_path / "out"
    words = form.format(a=a.name, b=b.name).split(" ")
    assert _staircase(root, out, "--steps", *words) == 0
    printed = capsys.readouterr().out
    assert "2 of 2 steps drawn from 6 runs (2 steps with 3 seeds)" in printed
    assert "fewer seeds" not in printed  # the step short of seeds is not chosen
    table = pd.read_csv(out / f"staircase_{TRACK}.csv")
    # roadmap order, whatever the order given
    assert list(table["step"]) == [a.name, b.name]
    md = (out / f"staircase_{TRACK}.md").read_text()
    assert sum(line.startswith(f"| {s.name} |") for s in steps(TRACK) for line in
               md.splitlines()) == 2  # fmt: skip


def test_the_figure_has_only_the_chosen_rows_and_changes_keep_their_parents(root):
    a, b = _two_steps()
    sel = draw_only(select_runs(load_runs(root), TRACK), [a.name, b.name])
    frame = aggregate(sel)
    labels = [t.get_text() for t in staircase_figure(frame).axes[0].get_yticklabels()]
    headers = list(dict.fromkeys(group_label(s.group) for s in (a, b)))
    assert [x for x in labels if x not in headers] == [
        step_label(a.name),
        step_label(b.name),
    ]
    full = aggregate(select_runs(load_runs(root), TRACK)).set_index("step")
    for name in (a.name, b.name):  # the change is still against the (undrawn) parent
        row = frame.set_index("step").loc[name]
        assert row["change"] == pytest.approx(full.loc[name, "change"])
        assert row["change_p"] == pytest.approx(full.loc[name, "change_p"])
        # the pooled model and its Holm adjustment are the whole track's, drawn or not
        for col in ("pooled_p", "pooled_p_holm", "verdict"):
            assert row[col] == full.loc[name, col] or row[col] == pytest.approx(full.loc[name, col])


def test_unknown_steps_are_an_error_naming_the_nearest(root, tmp_path, capsys):
    assert _staircase(root, tmp_path, "--steps", "kernel7") == 2
    assert "Did you mean 'kernel_7'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_change_is_marked_with_its_verdict_at_its_bar(tmp_path):
    first, second = [s for s in steps(TRACK) if s.on_path][:2]
    for seed, (x, y) in enumerate([(30.0, 31.0), (31.0, 30.5), (32.0, 32.7)]):
        write_run(tmp_path, TRACK, first.name, seed, top1=x)
        write_run(tmp_path, TRACK, second.name, seed, top1=y)
    frame = aggregate(draw_only(select_runs(load_runs(tmp_path), TRACK), [second.name]))
    row = frame.iloc[0]
    assert row["change_test"] == "paired" and row["change_within_noise"]
    assert row["verdict"] == "n.s."  # 3 seeds, a change of +0.4 on a sigma near 0.5
    fig = staircase_figure(frame)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [bar_label(row)] and MARKS["n.s."] in texts[0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    keys = [t for t in legend if t[0] in MARKS.values()]
    assert keys == [f"{MARKS['n.s.']} {VERDICT_LEGEND['n.s.']}"]
