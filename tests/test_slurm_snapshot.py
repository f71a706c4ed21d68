"""A Slurm sweep runs the code it was launched with (slurm/local-cluster.sh; marker `slurm`).

Launched from a copy of the project (tests/snapshot_fixtures.py): the copy's builder is edited
right after the job array is submitted, while its tasks wait in the queue (three tasks, two run
at once on the suite's cluster); every task builds the unedited model. A relaunch takes the
edit, and `roadmap status` names the step whose runs now differ. Needs a running cluster, as
tests/test_slurm.py.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest
from slurm_fixtures import PROFILE, status, wait_for
from snapshot_fixtures import EXTRA, copy_project, edit_builder, roadmap_from, short_sha

from experiments.runs import records
from experiments.sweep.snapshot import MANIFEST, SNAPSHOTS

pytestmark = pytest.mark.slurm

STEP = "resnet50_modern_recipe"
SETS = ("--set", "recipe.epochs=1", "--set", "recipe.builtin_train_per_class=20")


def submit_from(src: Path, root: Path, seeds: str) -> str:
    """`roadmap sweep --executor slurm` from the copy `src`; the array's job id."""
    proc = roadmap_from(src, "sweep", "--preset", "smoke", "--root", str(root), "--steps",
                        STEP, "--seeds", seeds, "--executor", "slurm", "--profile", PROFILE,
                        *SETS)  # fmt: skip
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    match = re.search(r"as Slurm job (\d+)", out)
    assert match, out
    return match.group(1)


def done(root: Path, n: int) -> bool:
    """Whether `n` runs under `root` are done."""
    return status(root)["totals"].get("done") == n


def test_queued_slurm_tasks_build_the_launchs_model(cluster: list[str], tmp_path: Path) -> None:
    src, root = copy_project(tmp_path / "src"), tmp_path / "runs"
    original = short_sha(src / "roadmap" / "model.py")
    submit_from(src, root, "0,1,2")
    edited_at = math.floor(time.time())
    edit_builder(src)
    wait_for("3 runs done", lambda: done(root, 3), 600, 5)
    runs = {r["seed"]: Path(r["run_dir"]) for r in status(root)["runs"]}
    results = {seed: records.read_result(d) for seed, d in runs.items()}
    starts = [
        records.parse_stamp(e["time"]).timestamp()
        for d in runs.values()
        for e in records.read_events(d)
        if e["event"] == "start"
    ]
    assert max(starts) >= edited_at  # a task started after the edit: it had waited
    assert len({r["params"] for r in results.values()}) == 1
    for result in results.values():
        assert result["code"]["files"]["roadmap/model.py"] == original
        assert result["code"]["earlier"] == []
    assert len({r["code"]["digest"] for r in results.values()}) == 1
    (snap,) = root.glob(f"{SNAPSHOTS}/*/{MANIFEST}")
    script = next((root / "resnet50" / ".submitit").rglob("*_submission.sh")).read_text()
    assert f"cd {snap.parent}" in script  # the job's script (and its requeues) use the copy

    # A relaunch snapshots the edit and trains with it; status names the step of mixed code.
    submit_from(src, root, "0,1,2,3")
    wait_for("4 runs done", lambda: done(root, 4), 600, 5)
    fourth = records.read_result(next(Path(r["run_dir"]) for r in status(root)["runs"]
                                      if r["seed"] == 3))  # fmt: skip
    assert fourth["params"] == results[0]["params"] + EXTRA
    assert len(list(root.glob(f"{SNAPSHOTS}/*/{MANIFEST}"))) == 2
    (row,) = status(root)["mixed_code"]
    assert row["step"] == STEP and "roadmap/model.py" in row["detail"]
