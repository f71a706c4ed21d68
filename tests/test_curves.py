"""`roadmap curves`: per-epoch top-1 and loss per step, seeds, mean band, failed runs."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from analysis_fixtures import write_run
from PIL import Image

from analysis.collect import load_runs
from analysis.curves import ROW_IN, curve_runs, curves_figure, read_curves
from analysis.figure import COLOR, DPI, PAPER
from experiments.runs import records
from roadmap.cli import main
from roadmap.steps import steps

TRACK = "resnet50"
EPOCHS = 4


def _steps():
    """Two steps of the track (the first and the last): one with a failed seed."""
    return steps(TRACK)[0], steps(TRACK)[-1]


def _log(run, values):
    """Replace a fixture run's log with `values`: (top1, train_loss) per epoch."""
    (run / records.LOG).unlink()
    for epoch, (top1, loss) in enumerate(values, start=1):
        line = {"epoch": epoch, "top1": top1, "train_loss": loss}
        records.append_jsonl(run / records.LOG, line)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("curves")
    good, bad = _steps()
    for step in (good, bad):
        for seed in (0, 1, 2):
            run = write_run(root, TRACK, step.name, seed)
            _log(run, [(10.0 * e + seed, 3.0 - 0.5 * e) for e in range(EPOCHS)])
    failed = write_run(root, TRACK, bad.name, 3, status="failed", reason="nan loss")
    _log(failed, [(12.0, 2.5), (11.0, float("nan"))])  # stopped after epoch 2
    going = write_run(root, TRACK, good.name, 4, status=None)  # no result, no job
    _log(going, [(9.0, 2.9)])
    write_run(root, TRACK, good.name, 5, preset="other")  # another preset: not drawn
    return root


@pytest.fixture(scope="module")
def curves(root):
    return read_curves(curve_runs(load_runs(root), TRACK, None))


def test_runs_are_the_staircases_and_its_unfinished_ones(curves):
    good, bad = _steps()
    runs = curves.groupby("run")["status"].first()
    assert sorted(runs.value_counts().items()) == [
        ("done", 6),
        ("failed", 1),
        ("unfinished", 1),  # no result yet: drawn with an open end
    ]
    assert set(curves["step"]) == {good.name, bad.name}
    assert not curves["run"].str.contains("/other/").any()


def test_each_seed_is_a_line_and_the_mean_of_done_runs_is_drawn(curves):
    good, bad = _steps()
    fig = curves_figure(curves, [good, bad])
    grid = np.array(fig.axes).reshape(2, 2)
    top1 = grid[1, 0]  # the failing step's top-1 panel
    lines = [ln for ln in top1.get_lines() if len(ln.get_xdata()) > 1]
    thin = [ln for ln in lines if ln.get_linewidth() < 1]
    assert len(thin) == 3 + 1  # three done seeds and the failed one
    mean = next(ln for ln in lines if ln.get_linewidth() >= 1)
    assert list(mean.get_xdata()) == list(range(1, EPOCHS + 1))
    expected = [10.0 * e + 1 for e in range(EPOCHS)]  # mean of seeds 0, 1, 2
    assert list(mean.get_ydata()) == pytest.approx(expected)
    assert mean.get_color() == COLOR


def test_a_failed_run_shows_where_it_stopped(curves):
    good, bad = _steps()
    fig = curves_figure(curves, [good, bad])
    grid = np.array(fig.axes).reshape(2, 2)
    for ax, y in ((grid[1, 0], 11.0), (grid[1, 1], 2.5)):  # loss: the last finite epoch
        ends = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
        assert len(ends) == 1 and ends[0].get_color() == PAPER
        x = 2 if y == 11.0 else 1
        assert (ends[0].get_xdata()[0], ends[0].get_ydata()[0]) == (x, y)
    going = [
        ln
        for ln in grid[0, 0].get_lines()
        if ln.get_marker() == "o" and ln.get_markerfacecolor() == "none"
    ]
    assert len(going) == 1 and going[0].get_ydata()[0] == 9.0
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "failed: last epoch" in legend and "not done yet" in legend


def test_cli_writes_three_formats_and_only_the_chosen_steps(root, tmp_path, capsys):
    good, bad = _steps()
    out = tmp_path / "out"
    argv = ["curves", "--root", str(root), "--out", str(out), "--steps", bad.name]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 step drawn, 4 runs with a logged epoch" in printed
    paths = [out / f"curves_{TRACK}.{fmt}" for fmt in ("png", "pdf", "svg")]
    with Image.open(paths[0]) as png:
        png.load()
        assert png.size[1] == round((ROW_IN + 0.9) * DPI)  # one row
        assert png.convert("L").getextrema() == (0, 255)
    assert paths[1].read_bytes().startswith(b"%PDF")
    assert ET.parse(paths[2]).getroot().tag.endswith("svg")


def test_cli_errors(root, tmp_path, capsys):
    base = ["curves", "--root", str(root), "--out", str(tmp_path)]
    assert main([*base, "--steps", "kernel7"]) == 2
    assert "Did you mean 'kernel_7'" in capsys.readouterr().err
    assert main([*base, "--steps", steps(TRACK)[1].name]) == 2
    assert "no logged epoch of the chosen steps" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
