"""docs/adding-a-toggle.md shows docs/examples/grn.patch as it is, and the patch applies here."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATCH = REPO / "docs" / "examples" / "grn.patch"
PAGE = REPO / "docs" / "adding-a-toggle.md"


def test_the_toggle_page_shows_the_patch_that_ci_applies():
    page = PAGE.read_text()
    section = page.split("## The worked example", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```diff\n(.*?)```", section, flags=re.S)
    assert blocks == [PATCH.read_text()]


def test_the_readme_points_to_the_toggle_page():
    assert "docs/adding-a-toggle.md" in (REPO / "README.md").read_text()


def _git_apply_check(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "apply", "--check", *flags, str(PATCH)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_patch_applies_to_this_tree():
    """It applies here, or is applied already (the copy that .ci/readme-example tests)."""
    if shutil.which("git") is None:
        pytest.fail("git is needed to check the worked example's patch")
    forward = _git_apply_check()
    if forward.returncode != 0:
        assert _git_apply_check("--reverse").returncode == 0, forward.stderr
