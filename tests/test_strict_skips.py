"""A hosted CI's `CI=true` skips a test that needs ../shared; `ROADMAP_STRICT_SKIPS=1` fails it.

The default suite needs nothing outside the repository: run in a copy of the tests with no
../shared beside it, the cross-check against the shared reference skips with its reason, and
fails only under the project's own variable (as .ci/run sets it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TEST = "tests/test_steps.py::test_shipped_paper_numbers_equal_the_shared_reference"


@pytest.mark.parametrize(
    ("env", "code", "outcome"),
    [({"CI": "true"}, 0, "1 skipped"), ({"ROADMAP_STRICT_SKIPS": "1"}, 1, "1 failed")],
)
def test_the_shared_cross_check_needs_the_project_variable_to_be_strict(
    tmp_path: Path, env: dict[str, str], code: int, outcome: str
) -> None:
    clone = tmp_path / "clone"  # the tests and their config, and no ../shared beside them
    shutil.copytree(REPO / "tests", clone / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", clone)
    assert not (tmp_path / "shared").exists()
    keep = {k: v for k, v in os.environ.items() if k not in ("CI", "ROADMAP_STRICT_SKIPS")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", SHARED_TEST],
        cwd=clone,
        env={**keep, **env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert outcome in proc.stdout and "reference copy not found" in proc.stdout
