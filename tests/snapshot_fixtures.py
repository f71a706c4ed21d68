"""Helpers of the code-snapshot tests: a copy of the project to launch from, and an edit of it.

The real checkout is never edited: a test copies the packages into a temporary folder, launches
`roadmap` from the copy (PYTHONPATH and working directory), and edits the copy's builder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("roadmap", "experiments", "analysis")  # what the project's code is
EXTRA = 7  # parameters the edited builder adds to every model
# Appended to roadmap/model.py: the builder then adds EXTRA parameters to every model.
EDIT = f"""

_unedited_build_model = build_model


def build_model(*args, **kwargs):  # noqa: D103 - a test's edit
    model = _unedited_build_model(*args, **kwargs)
    model.edited = nn.Parameter(torch.zeros({EXTRA}))
    return model
"""


def copy_project(dest: Path) -> Path:
    """Copy the project's packages (no byte code) into `dest`; `dest`."""
    for name in PACKAGES:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def short_sha(path: Path) -> str:
    """The first 16 hex characters of a file's SHA-256 (what a run's `code` keeps per file)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def edit_builder(src: Path) -> None:
    """Make the copy's builder add EXTRA parameters to every model."""
    with open(src / "roadmap" / "model.py", "a") as f:
        f.write(EDIT)


def roadmap_from(src: Path, *args: str, **popen: object) -> subprocess.Popen:
    """`roadmap ARGS` importing the project from the copy `src` (in the background)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "roadmap.cli", *args]
    return subprocess.Popen(cmd, cwd=src, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)  # fmt: skip
