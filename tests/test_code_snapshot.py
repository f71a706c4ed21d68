"""A launch's copy of the code (experiments/sweep/snapshot.py) and the code a run records.

The snapshot tests copy the project and point the snapshot at the copy: the checkout is never
edited. Oracles: file bytes (filecmp), hashlib, and a fresh Python that imports from the
snapshot's environment. The local sweep end to end: tests/test_sweep_snapshot.py (slow).
"""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_fixtures import build_root
from snapshot_fixtures import REPO, copy_project, edit_builder, short_sha

from experiments.runs import code_digest, records
from experiments.sweep import snapshot
from roadmap.cli import main

STEP = "stage_ratio"


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project that the snapshot takes its packages from."""
    copied = copy_project(tmp_path / "src")
    monkeypatch.setattr(code_digest, "package_dir", lambda name: copied / name)
    return copied


def test_a_snapshot_is_the_packages_as_they_are_and_is_reused_for_the_same_code(
    tmp_path: Path, src: Path
) -> None:
    (src / "roadmap" / "untracked.py").write_text("X = 1\n")  # never committed anywhere
    (src / "roadmap" / "__pycache__").mkdir()
    (src / "roadmap" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    (src / "roadmap" / ".model.py.swp").write_bytes(b"\0")
    root = tmp_path / "root"
    first = snapshot.snapshot_code(root)
    for name in code_digest.PACKAGES:
        cmp = filecmp.dircmp(src / name, first.path / name, ignore=["__pycache__"])
        assert not cmp.left_only or cmp.left_only == [".model.py.swp"], cmp.left_only
        assert not cmp.right_only and not cmp.diff_files
    assert (first.path / "roadmap" / "untracked.py").read_text() == "X = 1\n"
    assert not list(first.path.rglob("*.pyc")) and not list(first.path.rglob(".*.swp"))
    manifest = json.loads((first.path / snapshot.MANIFEST).read_text())
    assert manifest["files"]["roadmap/model.py"] == short_sha(src / "roadmap" / "model.py")
    again = snapshot.snapshot_code(root)
    assert again == first and [p.name for p in (root / snapshot.SNAPSHOTS).iterdir()] == [
        first.path.name
    ]
    edit_builder(src)  # an uncommitted edit: the next launch copies it
    edited = snapshot.snapshot_code(root)
    assert edited.path != first.path and edited.digest != first.digest
    assert filecmp.cmp(src / "roadmap" / "model.py", edited.path / "roadmap" / "model.py", False)
    assert not filecmp.cmp(first.path / "roadmap" / "model.py", src / "roadmap" / "model.py")
    assert len(list((root / snapshot.SNAPSHOTS).iterdir())) == 2


def test_a_job_started_as_the_sweep_starts_it_imports_from_the_snapshot(
    tmp_path: Path, src: Path
) -> None:
    code = snapshot.snapshot_code(tmp_path / "root")
    probe = "import roadmap, experiments.sweep.job as j; print(roadmap.__file__, j.__file__)"
    env = code.env({"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    local = subprocess.run([sys.executable, "-c", probe], env=env, cwd=code.path,
                           capture_output=True, text=True, check=True)  # fmt: skip
    setup = "\n".join([*code.shell_setup(), f"{sys.executable} -c '{probe}'"])
    script = subprocess.run(["bash", "-c", setup], env={"PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, check=True)  # fmt: skip
    for out in (local.stdout, script.stdout):
        files = [Path(p) for p in out.split()]
        assert files and all(p.is_relative_to(code.path) for p in files), out


def test_training_code_is_the_model_and_training_files_hashed() -> None:
    code = code_digest.training_code()
    assert code["files"]["roadmap/model.py"] == short_sha(REPO / "roadmap" / "model.py")
    assert code["files"]["experiments/train/trainer.py"] == short_sha(
        REPO / "experiments" / "train" / "trainer.py"
    )
    assert not any(n.startswith(("analysis/", "experiments/sweep/")) for n in code["files"])
    assert code_digest.trained_with(None) == [code["digest"]]
    assert code_digest.trained_with(["old", code["digest"]]) == ["old", code["digest"]]
    assert code_digest.trained_with(["old"]) == ["old", code["digest"]]
    assert code_digest.code_record(["old", code["digest"]])["earlier"] == ["old"]


def version(model: str, trainer: str = "t1") -> dict:
    files = {"roadmap/model.py": model, "experiments/train/trainer.py": trainer}
    return {"digest": code_digest.combined(files), "files": files, "earlier": []}


def test_mixed_code_names_the_runs_and_the_files_that_differ() -> None:
    a, b = version("m1"), version("m2")
    assert code_digest.mixed_code({"seed0": a, "seed1": dict(a)}) is None
    assert code_digest.mixed_code({"seed0": None, "seed1": None}) is None
    found = code_digest.mixed_code({"seed0": a, "seed1": a, "seed2": b})
    assert found == (
        "2 versions of the model/training code (seed0, seed1 | seed2); "
        "files that differ: roadmap/model.py"
    )
    resumed = code_digest.mixed_code({"seed0": a | {"earlier": ["x"]}, "seed1": None})
    assert "resumed on other code than it started with: seed0" in resumed
    assert "no code recorded: seed1" in resumed


def with_code(run_dir: Path, code: dict) -> None:
    """Give a fixture run's result.json a `code`."""
    result = records.read_result(run_dir)
    records.write_result(run_dir, result | {"code": code})


def test_staircase_and_status_name_a_bar_of_mixed_code_and_strict_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "runs"
    build_root(root, seeds=(0, 1))
    for run_dir in records.run_dirs(root):
        config = records.read_config(run_dir)
        edited = config["step"] == STEP and config["seed"] == 1
        with_code(run_dir, version("m2" if edited else "m1"))
    out = tmp_path / "out"
    assert main(["staircase", "--root", str(root), "--out", str(out), "--formats", "png"]) == 0
    said = capsys.readouterr().out
    assert f"warning: bar {STEP} pools runs of different code" in said
    assert "files that differ: roadmap/model.py" in said and said.count("different code") == 1
    strict = tmp_path / "strict"
    code = main(["staircase", "--root", str(root), "--out", str(strict), "--strict-code"])
    assert code == 2 and not strict.exists()
    assert "--strict-code: 1 bar(s) of mixed code" in capsys.readouterr().err
    assert main(["status", "--root", str(root)]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("mixed code")]
    assert len(lines) == 1 and lines[0].startswith(f"mixed code: resnet50/{STEP}: 2 versions")
    assert main(["status", "--root", str(root), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["mixed_code"]
    assert row["step"] == STEP and "roadmap/model.py" in row["detail"]
