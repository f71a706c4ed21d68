"""Run folders survive edits to the step list, and roots of the old `<NN>_<step>` layout work."""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

import pytest

from experiments.runs import records
from experiments.runs.runstate import sweep_states
from experiments.sweep.plan import run_dir
from experiments.train import Trainer, prepare_run
from roadmap.cli import main
from roadmap.steps import Step, get_step, steps

# The module (`roadmap.steps` as an attribute of `roadmap` is its function `steps`).
step_table = importlib.import_module("roadmap.steps")
TRACK = "resnet50"
# One epoch of 1 step: a run of a few seconds.
TINY = ("recipe.epochs=1", "recipe.builtin_classes=2", "recipe.builtin_train_per_class=16",
        "recipe.builtin_val_per_class=4", "recipe.threads=1")  # fmt: skip


WIDER = {
    "side_a": 8,
    "side_b": 16,
}  # the side branches the tests insert: wider first stages


def sweep(root: Path, names: list[str], *more: str) -> int:
    """`roadmap sweep` of `names` x seed 0 with the debug executor."""
    sets = [a for o in TINY for a in ("--set", o)]
    return main(["sweep", "--preset", "smoke", "--root", str(root), "--executor", "debug",
                 "--steps", ",".join(names), "--seeds", "0", *sets, *more])  # fmt: skip


def with_side_branches(
    monkeypatch: pytest.MonkeyPatch, names: list[str], after: str
) -> tuple[Step, ...]:
    """The track with side branches `names` (wider first stages), in order, after `after`.

    The step table is edited as a researcher edits it: rows inserted into `STEP_TABLE`.
    """
    base = get_step(after, TRACK)
    width = (base.spec if base.on_path else get_step(base.parent, TRACK).spec).width
    table = [row for row in step_table.STEP_TABLE if row.name not in names]
    at = next(i for i, row in enumerate(table) if row.name == after) + 1
    rows = [
        step_table.Row(name, base.group, False, {"width": width + WIDER[name]}, (TRACK,))
        for name in names
    ]
    monkeypatch.setattr(step_table, "STEP_TABLE", (*table[:at], *rows, *table[at:]))
    # A fresh cache of resolved tracks for the edited table (the original comes back after).
    monkeypatch.setattr(step_table, "_resolve", cache(step_table._resolve.__wrapped__))
    return steps(TRACK)


def finished(root: Path, names: list[str]) -> list[Path]:
    """Done runs of `names` x seed 0, as a sweep leaves them (configs, results)."""
    out = []
    for name in names:
        run = prepare_run(TRACK, name, 0, "smoke", run_dir(root, TRACK, get_step(name), 0),
                          overrides=TINY)  # fmt: skip
        result = dict.fromkeys(records.RESULT_KEYS)
        result.update(status="done", top1=30.0)
        records.write_result(run, result)
        out.append(run)
    return out


class Killed(Exception):
    """The process dying mid-epoch, as far as the trainer can tell."""


def stamps(paths: list[Path]) -> list[int]:
    return [(p / records.RESULT).stat().st_mtime_ns for p in paths]


def test_inserting_or_moving_a_step_reruns_no_finished_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    first, second = (s.name for s in steps(TRACK)[:2])
    old = finished(tmp_path, [first, second])
    before = stamps(old)

    # Two side branches inserted after the first step: every later step moves down two.
    edited = with_side_branches(monkeypatch, ["side_a", "side_b"], after=first)
    assert get_step(second).index == steps(TRACK)[0].index + 3
    names = [first, "side_a", "side_b", second]
    assert sweep(tmp_path, names) == 0
    out = capsys.readouterr().out
    assert "to submit: 2 (2 new" in out and "skipped: 2 done" in out, out
    assert "[2/2] done" in out
    assert stamps(old) == before  # not trained again, not moved
    new = [run_dir(tmp_path, TRACK, get_step(n), 0) for n in ("side_a", "side_b")]
    assert all(records.read_result(run)["status"] == "done" for run in new)
    # `roadmap status` lists each run under its step's position now.
    assert main(["status", "--root", str(tmp_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    for step in edited[:4]:
        assert any(x.startswith(f"{step.index:02d}  {step.name} ") for x in table), table

    # The two swapped: the same specs in another order, so the same runs.
    with_side_branches(monkeypatch, ["side_b", "side_a"], after=first)
    new_stamps = stamps(new)
    assert sweep(tmp_path, names) == 0
    out = capsys.readouterr().out
    assert "to submit: 0" in out and "skipped: 4 done" in out, out
    assert stamps(old) + stamps(new) == before + new_stamps


def test_an_old_root_is_read_resumed_and_skipped_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture, tiny_overrides: tuple[str, ...]
) -> None:
    # Folders named `<NN>_<step>` as roots were before: done, failed, interrupted mid-run.
    done, failed, cut = steps(TRACK)[:3]
    sets = tiny_overrides  # 2 epochs
    old = {
        s.name: tmp_path / TRACK / f"{s.index:02d}_{s.name}" / "seed0" for s in (done, failed, cut)
    }
    for step in (done, failed, cut):
        prepare_run(TRACK, step.name, 0, "smoke", old[step.name], overrides=sets)
    for step, status in ((done, "done"), (failed, "failed")):
        result = dict.fromkeys(records.RESULT_KEYS)
        result.update(status=status, top1=25.0, reason="boom" if status == "failed" else None)
        records.write_result(old[step.name], result)
    trainer = Trainer(old[cut.name])  # trains epoch 1 (a checkpoint), dies in epoch 2

    def die_in_epoch_2(module, inputs, output):  # noqa: ANN001, ANN202
        if module.training and trainer.state["epoch"] == 1:
            raise Killed
        return output

    trainer.model.register_forward_hook(die_in_epoch_2)
    with pytest.raises(Killed):
        trainer.fit()
    saved = records.newest_checkpoint_step(old[cut.name])
    assert saved == trainer.steps_per_epoch and not (old[cut.name] / records.RESULT).exists()

    states = {s.step: s for s in sweep_states(tmp_path)}
    assert [states[s.name].status for s in (done, failed, cut)] == [
        "done",
        "failed",
        "interrupted",
    ]
    assert states[cut.name].checkpoint == saved and states[cut.name].index == cut.index

    argv = ["sweep", "--preset", "smoke", "--root", str(tmp_path), "--executor", "debug",
            "--steps", ",".join(s.name for s in (done, failed, cut)), "--seeds", "0"]  # fmt: skip
    argv += [a for o in sets for a in ("--set", o)]
    capsys.readouterr()
    assert main([*argv, "--dry-run"]) == 0
    plan = capsys.readouterr().out
    rows = {p[0]: p[1:] for p in map(str.split, plan.splitlines()) if len(p) == 3}
    for step, state, action in ((done, "done", "skip"), (failed, "failed", "skip"),
                                (cut, "interrupted", "resume")):  # fmt: skip
        assert rows[f"{old[step.name].parent.name}/seed0"] == [state, action], plan
    assert "1 interrupted to resume" in plan and "1 failed (rerun with --retry-failed)" in plan

    assert main(argv) == 0
    assert records.read_result(old[cut.name])["status"] == "done"
    resumed = [e for e in records.read_events(old[cut.name]) if e["event"] == "resume"]
    assert len(resumed) == 1 and resumed[0]["global_step"] == saved
    for step in (done, failed, cut):  # nothing was written in the new layout
        assert not run_dir(tmp_path, TRACK, step, 0).exists()
