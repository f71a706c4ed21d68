"""The README's worked example is docs/examples/grn.patch, and it applies to this tree."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATCH = REPO / "docs" / "examples" / "grn.patch"


def test_the_readme_shows_the_patch_that_ci_applies():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Add a design toggle", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```diff\n(.*?)```", section, flags=re.S)
    assert blocks == [PATCH.read_text()]


def _git_apply_check(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "apply", "--check", *flags, str(PATCH)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_patch_applies_to_this_tree():
    """It applies here, or is applied already (the copy that .ci/readme-example tests)."""
    if shutil.which("git") is None:
        pytest.fail("git is needed to check the README's patch")
    forward = _git_apply_check()
    if forward.returncode != 0:
        assert _git_apply_check("--reverse").returncode == 0, forward.stderr
