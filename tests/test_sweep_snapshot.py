"""A local sweep runs the code it was launched with, whatever the source tree does meanwhile.

Launched from a copy of the project (tests/snapshot_fixtures.py), one job at a time: the builder
is edited once the launch has taken its snapshot, while the second run waits; both runs build
the unedited model. A relaunch takes the edit (the edit is real), and the bar that now pools
both versions is named by the staircase and `status`, and refused by `--strict-code`. Slow.
"""

from __future__ import annotations

import math
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


def wait_for(what: str, predicate, timeout: float = 120):  # noqa: ANN001, ANN201
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_waiting_jobs_build_the_launchs_model_and_a_mixed_bar_is_named(
    tmp_path: Path, tiny_overrides: tuple[str, ...]
) -> None:
    src, root = copy_project(tmp_path / "src"), tmp_path / "runs"
    original = short_sha(src / "roadmap" / "model.py")
    overrides = (*tiny_overrides, "recipe.epochs=1")
    launch = sweep(src, root, "0,1", overrides)
    wait_for("the launch's snapshot", lambda: list(root.glob(f"{SNAPSHOTS}/*/{MANIFEST}")))
    edited_at = math.floor(time.time())
    edit_builder(src)
    out, _ = launch.communicate(timeout=600)
    assert launch.returncode == 0, out
    runs = [plan.run_dir(root, "resnet50", get_step(STEP), seed) for seed in (0, 1, 2)]
    waited = [e for e in records.read_events(runs[1]) if e["event"] == "start"]
    assert records.parse_stamp(waited[0]["time"]).timestamp() >= edited_at  # it did wait
    expected = unedited_params(runs[0])
    results = [records.read_result(d) for d in runs[:2]]
    for result in results:
        assert result["status"] == "done" and result["params"] == expected
        assert result["code"]["files"]["roadmap/model.py"] == original
    assert results[0]["code"]["digest"] == results[1]["code"]["digest"]
    assert all(records.read_job(d)["code_snapshot"].startswith(str(root)) for d in runs[:2])

    # A relaunch snapshots the edited code, and trains with it.
    again = sweep(src, root, "0,1,2", overrides)
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
