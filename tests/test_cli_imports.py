"""`roadmap --help`, `status` and `staircase` import neither torch nor timm (they cost seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from analysis_fixtures import build_root

REPO = Path(__file__).resolve().parent.parent
PROBE = """
import contextlib, io, json, sys
from roadmap.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as done:  # --help
        code = done.code
print(json.dumps({"code": code, "heavy": sorted({"torch", "timm"} & set(sys.modules))}))
"""


def _imports_of(*argv: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_help_status_and_staircase_import_no_torch_and_no_timm(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    build_root(root, "resnet50", seeds=(0, 1))
    for argv in (
        ("--help",),
        ("status", "--root", str(root)),
        ("staircase", "--root", str(root), "--out", str(tmp_path / "fig"), "--formats", "png"),
    ):
        seen = _imports_of(*argv)
        assert seen["code"] == 0, argv
        assert seen["heavy"] == [], f"roadmap {' '.join(argv[:1])} imported {seen['heavy']}"
    assert (tmp_path / "fig" / "staircase_resnet50.png").is_file()


def test_the_probe_sees_torch_where_a_command_builds_a_model() -> None:
    seen = _imports_of("steps", "--track", "resnet50")  # the step table builds each model
    assert seen["code"] == 0 and seen["heavy"] == ["timm", "torch"]
