"""A local sweep runs the code it was launched with, whatever the source tree does meanwhile.

Launched from a copy of the project (tests/snapshot_fixtures.py), one job at a time: the builder
is edited once the launch has taken its snapshot; the first run is then preempted (USR2) and
requeued while the second waits; both build the unedited model. A relaunch takes the edit (the
edit is real), and the bar that now pools both versions is named by the staircase and `status`,
and refused by `--strict-code`. Slow (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import math
import os
import re
import signal
import time
from pathlib import Path

import pytest
from snapshot_fixtures import EXTRA, copy_project, edit_builder, roadmap_from, short_sha

import roadmap
from experiments.recipe import build_arguments, recipe_from_dict
from experiments.runs import records
from experiments.sweep import plan
from experiments.sweep.snapshot import MANIFEST, SNAPSHOTS
from roadmap.steps import get_step

pytestmark = pytest.mark.slow

STEP = "resnet50_modern_recipe"
# 2 epochs of 6 optimizer steps, one thread, a progress line per step (time to preempt a job).
TINY = ("recipe.epochs=2", "recipe.builtin_train_per_class=20", "recipe.threads=1",
        "recipe.log_every=1")  # fmt: skip


def sweep(src: Path, root: Path, seeds: str, overrides: tuple[str, ...]):  # noqa: ANN201
    """`roadmap sweep` on the local executor, one job at a time, from the copy `src`."""
    sets = [x for o in overrides for x in ("--set", o)]
    return roadmap_from(src, "sweep", "--preset", "smoke", "--root", str(root), "--steps",
                        STEP, "--seeds", seeds, "--jobs", "1", *sets)  # fmt: skip


def unedited_params(run_dir: Path) -> int:
    """Parameters of the run's model as the checkout's (unedited) builder makes it."""
    config = records.read_config(run_dir)
    args = build_arguments(recipe_from_dict(config["recipe"]))
    classes = len(config["dataset"]["classes"])
    spec = roadmap.ArchSpec.from_dict(config["spec"])
    return roadmap.count_params(roadmap.build_model(spec, num_classes=classes, **args))


def steps_done(run_dir: Path) -> int:
    """Optimizer steps the run's current local job has reported on stdout."""
    job = records.read_job(run_dir) or {}
    try:
        text = (Path(job["submitit_folder"]) / f"{job['job_id']}_0_log.out").read_text()
    except (KeyError, TypeError, OSError):
        return 0
    return len(re.findall(r"epoch \d+/\d+ step \d+/\d+", text))


def preempt(run_dir: Path) -> None:
    """USR2 to the tasks of the run's local job (what Slurm sends before a preemption)."""
    controller = records.read_job(run_dir)["job_id"]
    for task in Path(f"/proc/{controller}/task/{controller}/children").read_text().split():
        os.kill(int(task), signal.SIGUSR2)


def wait_for(what: str, predicate, timeout: float = 120):  # noqa: ANN001, ANN201
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_waiting_and_requeued_jobs_build_the_launchs_model_and_a_mixed_bar_is_named(
    tmp_path: Path,
) -> None:
    src, root = copy_project(tmp_path / "src"), tmp_path / "runs"
    original = short_sha(src / "roadmap" / "model.py")
    runs = [plan.run_dir(root, "resnet50", get_step(STEP), seed) for seed in (0, 1, 2)]
    launch = sweep(src, root, "0,1", TINY)
    wait_for("the launch's snapshot", lambda: list(root.glob(f"{SNAPSHOTS}/*/{MANIFEST}")))
    edited_at = math.floor(time.time())
    edit_builder(src)
    wait_for("two optimizer steps", lambda: steps_done(runs[0]) >= 2, 300)
    preempt(runs[0])  # it checkpoints, is requeued and resumes: with the launch's code
    out, _ = launch.communicate(timeout=600)
    assert launch.returncode == 0, out
    (snap,) = root.glob(f"{SNAPSHOTS}/*/{MANIFEST}")
    assert f"jobs import the code copied to {snap.parent} " in out
    kinds = [e["event"] for e in records.read_events(runs[0])]
    assert kinds == ["start", "checkpoint", "requeue", "start", "resume", "end"], kinds
    waited = [e for e in records.read_events(runs[1]) if e["event"] == "start"]
    assert records.parse_stamp(waited[0]["time"]).timestamp() >= edited_at  # it did wait
    expected = unedited_params(runs[0])
    results = [records.read_result(d) for d in runs[:2]]
    for result in results:
        assert result["status"] == "done" and result["params"] == expected
        assert result["code"]["files"]["roadmap/model.py"] == original
        assert result["code"]["earlier"] == []  # one version of the code, requeue included
    assert results[0]["code"]["digest"] == results[1]["code"]["digest"]
    assert all(records.read_job(d)["code_snapshot"].startswith(str(root)) for d in runs[:2])

    # A relaunch snapshots the edited code, and trains with it.
    again = sweep(src, root, "0,1,2", TINY)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0 and "skipped: 2 done" in out, out
    assert len(list(root.glob(f"{SNAPSHOTS}/*/{MANIFEST}"))) == 2
    third = records.read_result(runs[2])
    assert third["params"] == expected + EXTRA
    assert third["code"]["files"]["roadmap/model.py"] == short_sha(src / "roadmap" / "model.py")

    status = roadmap_from(src, "status", "--root", str(root)).communicate(timeout=120)[0]
    assert f"mixed code: resnet50/{STEP}: 2 versions" in status, status
    assert "files that differ: roadmap/model.py" in status
    draw = ["staircase", "--root", str(root), "--out", str(tmp_path / "fig"), "--formats", "png"]
    drawn = roadmap_from(src, *draw)
    said = drawn.communicate(timeout=300)[0]
    assert drawn.returncode == 0 and f"bar {STEP} pools runs of different code" in said, said
    strict = roadmap_from(src, *draw, "--strict-code")
    said = strict.communicate(timeout=300)[0]
    assert strict.returncode == 2 and "--strict-code" in said, said
