"""Analysis reads records only: no scheduler, no executor, each config.json once (issue 26)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from analysis_fixtures import build_root, write_run

from experiments.runs import records
from roadmap.cli import main
from roadmap.steps import steps

TRACK = "resnet50"


def _fake_scheduler(folder: Path, called: Path) -> None:
    """`sacct` and `squeue` scripts that only note that they were called."""
    folder.mkdir()
    for name in ("sacct", "squeue"):
        script = folder / name
        script.write_text(f"#!/bin/sh\necho {name} >> {called}\nexit 1\n")
        script.chmod(0o755)


def test_the_staircase_asks_no_scheduler_and_reads_each_config_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    root = tmp_path / "runs"
    build_root(root, TRACK, seeds=(0, 1))
    pending = write_run(root, TRACK, steps(TRACK)[1].name, 7, status=None)
    for i, run in enumerate(records.run_dirs(root)):  # every run has a Slurm job, done or not
        job = {"executor": "slurm", "job_id": f"4242_{i}", "submitted": "2024-05-01T12:00:00"}
        records.write_job(run, job)
    called = tmp_path / "called"
    _fake_scheduler(tmp_path / "bin", called)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    reads: Counter = Counter()
    read_json = records.read_json

    def counting(path, *args, **kwargs):
        reads[Path(path)] += 1
        return read_json(path, *args, **kwargs)

    monkeypatch.setattr(records, "read_json", counting)
    assert main(["staircase", "--root", str(root), "--out", str(tmp_path / "out")]) == 0
    assert not called.exists(), called.read_text()
    configs = {p: n for p, n in reads.items() if p.name == records.CONFIG}
    assert len(configs) == len(records.run_dirs(root))
    assert set(configs.values()) == {1}, configs
    assert "unfinished" in capsys.readouterr().out  # the run without a result, not its job state
    assert (pending / records.JOB).exists()
