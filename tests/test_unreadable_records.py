"""Torn, empty and wrong-shape records in one run: status, staircase and sweep name the file
and go on with the others; the sweep writes over none of them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from experiments.runs import records
from experiments.sweep.plan import run_dir
from experiments.train.config import prepare_run
from roadmap.cli import main
from roadmap.steps import steps

TRACK = "resnet50"
STEPS = 4  # the damaged root: its first STEPS steps x as many seeds as the cases need
DAMAGE = {
    "torn": lambda text: text.rstrip()[:-5],  # the end cut off, as by a crash mid-write
    "empty": lambda text: "",
    "wrong shape": lambda text: "[]\n",
}
# The file, whether the run has a result, and the state the damage leaves it in.
FILES = {
    records.CONFIG: (True, "unreadable"),
    records.RESULT: (True, "unreadable"),
    records.JOB: (False, "unreadable"),  # no result: whether a job runs cannot be told
    records.EVENTS: (True, "done"),  # events only count requeues
}
REASONS = {"torn": "not valid JSON", "empty": "empty file", "wrong shape": "an array"}


def _done(run: Path, top1: float) -> None:
    result = dict.fromkeys(records.RESULT_KEYS)
    result.update(status="done", top1=top1, params=1, gflops=0.1)
    records.write_result(run, result)


def _grid() -> tuple[list, int]:
    """The steps and the number of seeds of a rectangle with room for every case and more."""
    chosen = list(steps(TRACK))[:STEPS]
    return chosen, -(-(len(FILES) * len(DAMAGE) + 1) // len(chosen))


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[Path, dict[tuple[str, str], Path], list[Path]]:
    """A root of done runs, one run per (file, damage) damaged; also the intact runs."""
    cases = list(itertools.product(FILES, DAMAGE))
    chosen, seeds = _grid()
    pairs = [(s, k) for k in range(seeds) for s in chosen]
    broken, intact = {}, []
    for i, (step, seed) in enumerate(pairs):
        run = prepare_run(TRACK, step.name, seed, "smoke", run_dir(tmp_path, TRACK, step, seed))
        if i >= len(cases):
            _done(run, 20.0 + i)
            intact.append(run)
            continue
        name, how = cases[i]
        has_result, _ = FILES[name]
        if has_result:
            _done(run, 20.0 + i)
        records.write_job(run, {"executor": "local", "job_id": "1", "host": "elsewhere"})
        records.append_event(run, "start", job_id="1")
        records.append_event(run, "end", status="done")
        path = run / name
        path.write_text(DAMAGE[how](path.read_text()))
        broken[(name, how)] = path
    return tmp_path, broken, intact


def test_status_names_each_damaged_file_and_shows_the_others(
    damaged, capsys: pytest.CaptureFixture
) -> None:
    root, broken, intact = damaged
    assert main(["status", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    for (name, how), path in broken.items():
        if (name, how) == (records.EVENTS, "empty"):
            continue  # no line at all is a valid JSON-lines file: nothing is wrong
        line = next((x for x in out.splitlines() if str(path) in x), None)
        assert line is not None, f"{path} not named:\n{out}"
        assert REASONS[how] in line, line
    assert main(["status", "--root", str(root), "--format", "json"]) == 0
    runs = {r["run_dir"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    for (name, _), path in broken.items():
        assert runs[str(path.parent)]["status"] == FILES[name][1], (name, path)
    assert all(runs[str(run)]["status"] == "done" for run in intact)


def test_staircase_leaves_unreadable_runs_out_by_name(
    damaged, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, broken, intact = damaged
    out_dir = tmp_path / "figures"
    argv = ["staircase", "--root", str(root), "--out", str(out_dir), "--formats", "png"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    read = (records.CONFIG, records.RESULT)  # analysis reads no job.json: that is `status`'s
    for (name, _), path in broken.items():
        if name in read:
            assert f"unreadable: {path}: " in out, out
        else:
            assert str(path) not in out, out
    excluded = (out_dir / f"staircase_{TRACK}_excluded.csv").read_text()
    assert excluded.count("unreadable: ") == sum(n in read for n, _ in broken)
    assert excluded.count("unfinished") == sum(n == records.JOB for n, _ in broken)
    assert (out_dir / f"staircase_{TRACK}.png").stat().st_size > 0


def test_sweep_names_unreadable_runs_and_writes_over_none(
    damaged, capsys: pytest.CaptureFixture
) -> None:
    root, broken, intact = damaged
    before = {path: path.read_bytes() for path in broken.values()}
    chosen, seeds = _grid()
    argv = ["sweep", "--preset", "smoke", "--root", str(root), "--executor", "debug"]
    argv += ["--steps", ",".join(s.name for s in chosen), "--seeds", f"0-{seeds - 1}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    unreadable = [p for (n, _), p in broken.items() if FILES[n][1] == "unreadable"]
    for path in unreadable:
        assert f"left as it is (fix or remove the file, then run again): {path}" in out
    done = len(chosen) * seeds - len(unreadable)
    assert "to submit: 0 " in out and f"skipped: {done} done" in out, out
    assert f", {len(unreadable)} unreadable" in out and "nothing to submit" in out
    assert {path: path.read_bytes() for path in broken.values()} == before
