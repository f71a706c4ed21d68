"""Two sweeps of one root, in two processes, submit each missing run once (issue 26)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from experiments.runs import records
from experiments.sweep import launch as launch_module
from experiments.sweep.plan import Request, make_plan
from roadmap.steps import steps

TRACK = "resnet50"
WAIT_S = 120


def _sweep(request: Request, planned, first_done, first: bool) -> None:
    """Plan; wait until the other sweep has planned too (and, second, has submitted); launch."""
    plan = make_plan(request)
    assert len(plan.to_run) == 2  # both sweeps plan both runs as missing
    planned.wait(WAIT_S)
    if not first:
        assert first_done.wait(WAIT_S)
    code = launch_module.launch(plan, out=lambda line: None)
    if first:
        first_done.set()
    raise SystemExit(code)


def test_two_sweeps_of_one_root_submit_each_missing_run_once(
    tmp_path: Path, tiny_overrides, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted = tmp_path / "submitted.txt"

    def executor(plan, configs, entry, code, out) -> int:
        """The local executor, faked: note each run, then finish it."""
        for config in configs:
            with submitted.open("a") as f:
                f.write(f"{config.parent}\n")
            result = dict.fromkeys(records.RESULT_KEYS) | {"status": "done", "top1": 1.0}
            records.write_result(config.parent, result)
        return 0

    monkeypatch.setattr(launch_module, "_launch_local", executor)
    request = Request(root=tmp_path / "runs", preset="smoke", steps=(steps(TRACK)[0].name,),
                      seeds="0,1", overrides=tiny_overrides)  # fmt: skip
    context = multiprocessing.get_context("fork")
    planned, first_done = context.Barrier(2), context.Event()
    sweeps = [
        context.Process(target=_sweep, args=(request, planned, first_done, first))
        for first in (True, False)
    ]
    for sweep in sweeps:
        sweep.start()
    for sweep in sweeps:
        sweep.join(WAIT_S)
    assert [s.exitcode for s in sweeps] == [0, 0]
    lines = submitted.read_text().splitlines()
    assert sorted(lines) == sorted(set(lines)) and len(lines) == 2, lines
