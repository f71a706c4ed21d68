"""Two kinds of error at the `roadmap` entry point: the user's (one line, exit 2), a bug's (exit 1).

The user's mistake is the one the code means to tell (`roadmap.errors.UserError`); a bug, such
as a numpy error deep in `staircase`, must keep its traceback and must not read as a mistake.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from analysis_fixtures import build_root

import analysis.collect
from roadmap.cli import main
from roadmap.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def test_a_bad_set_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["train", "--step", "stage_ratio", "--out", str(out), "--set", "recipe.epochz=3"]
    proc = subprocess.run(
        [sys.executable, "-m", "roadmap.cli", *argv], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roadmap train: error: --set: unknown key")
    assert "'recipe.epochz'" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()  # refused before any work


def _staircase(root: Path, out: Path) -> int:
    return main(["staircase", "--root", str(root), "--out", str(out), "--formats", "png"])


def _numpy_error(*_args: object, **_kwargs: object) -> None:
    np.broadcast_arrays(np.zeros(2), np.zeros(3))  # a real numpy ValueError, as a bug would


def _zero_division(*_args: object, **_kwargs: object) -> None:
    _ = 1 / 0


@pytest.mark.parametrize(
    ("bug", "kind"), [(_numpy_error, "ValueError"), (_zero_division, "ZeroDivisionError")]
)
def test_a_bug_keeps_its_traceback_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, bug, kind
) -> None:
    root = tmp_path / "runs"
    build_root(root, "resnet50", seeds=(0, 1))
    assert _staircase(root, tmp_path / "ok") == 0  # the root draws: what follows is the bug
    capsys.readouterr()
    monkeypatch.setattr(analysis.collect, "aggregate", bug)
    assert _staircase(root, tmp_path / "bug") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):"
    assert any(bug.__name__ in line for line in err)  # the frame that raised is shown
    assert err[-1].startswith(f"roadmap staircase: internal error: {kind}: ")
    assert not any(line.startswith("roadmap staircase: error:") for line in err)


def test_a_user_error_raised_at_work_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "runs"
    build_root(root, "resnet50", seeds=(0,))

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise UserError("runs of several presets: smoke (2), proxy (2); give --preset")

    monkeypatch.setattr(analysis.collect, "aggregate", refuse)
    assert _staircase(root, tmp_path / "fig") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "roadmap staircase: error: runs of several presets: smoke (2), proxy (2); give --preset"
    ]
    assert issubclass(UserError, ValueError)  # callers that catch ValueError keep working
