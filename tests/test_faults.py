"""kill -9 of a local sweep, driver and jobs at once, again and again: nothing lost, nothing
repeated, and every run ends bit-identical to an uninterrupted one. Marked slow (minutes).

A sweep of 2 steps x 2 seeds is launched; at a random moment once its jobs train, the whole
process tree (driver, submitit controllers, training tasks) is frozen and SIGKILLed, and the
same command is launched again; after KILLS kills one more launch runs to the end. The moment
is drawn from a seeded generator (FAULT_SEED, else the time; it is in every message).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from experiments.runs import records
from experiments.sweep.plan import run_dir
from roadmap.cli import main
from roadmap.steps import steps

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ROADMAP = str(REPO / ".venv" / "bin" / "roadmap")
TRACK = "resnet50"
KILLS = 3
# The kill falls uniformly within this many seconds once a job of the launch has started.
WINDOW_S = 2.5


def command(root: Path, tiny: tuple[str, ...], *more: str) -> list[str]:
    """The sweep: the first 2 steps x seeds 0,1, 3 epochs each (room for the kills); the final
    checkpoints are kept, to compare weights."""
    sets = (
        *tiny,
        "recipe.epochs=3",
        "recipe.keep_final_checkpoint=true",
        "recipe.checkpoint_minutes=0.05",
    )
    names = ",".join(s.name for s in steps(TRACK)[:2])
    return ["sweep", "--preset", "smoke", "--root", str(root), "--steps", names, "--seeds",
            "0,1", *[a for o in sets for a in ("--set", o)], *more]  # fmt: skip


def runs(root: Path) -> list[Path]:
    return [run_dir(root, TRACK, s, k) for s in steps(TRACK)[:2] for k in (0, 1)]


def children(pid: int) -> list[int]:
    """Child processes of every thread of `pid`."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def kill_tree(pid: int) -> int:
    """SIGSTOP `pid` and every descendant (so none starts another), then SIGKILL them all."""
    frozen, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            os.kill(p, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        frozen.append(p)
        todo += children(p)
    for p in frozen:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(frozen)


def starts(root: Path) -> int:
    """How many jobs have started on the runs (their `start` events)."""
    return sum(e.get("event") == "start" for d in runs(root) for e in records.read_events(d))


def mid_run(root: Path) -> bool:
    """Whether some run has a checkpoint and no result yet."""
    return any(
        records.newest_checkpoint_step(d) is not None and not (d / records.RESULT).exists()
        for d in runs(root)
    )


def wait_for(predicate, timeout: float, why: str, sweep: subprocess.Popen) -> None:  # noqa: ANN001
    deadline = time.time() + timeout
    while time.time() < deadline and sweep.poll() is None:
        if predicate():
            return
        time.sleep(0.2)
    if sweep.poll() is None:
        raise AssertionError(f"timed out waiting for {why}")


def done_stamps(root: Path) -> dict[Path, int]:
    return {
        d: (d / records.RESULT).stat().st_mtime_ns
        for d in runs(root)
        if (records.read_result(d) or {}).get("status") == "done"
    }


def final_weights(d: Path) -> dict[str, torch.Tensor]:
    newest = records.list_checkpoints(d / records.CHECKPOINT_DIR)[0]
    return torch.load(newest, map_location="cpu", weights_only=True)["model"]


def test_kill_9_again_and_again_loses_nothing_and_repeats_nothing(
    tmp_path: Path, tiny_overrides: tuple[str, ...]
) -> None:
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 100000))
    rng, how = random.Random(seed), f"(FAULT_SEED={seed})"
    root, seen, kills = tmp_path / "killed", {}, []
    argv = [ROADMAP, *command(root, tiny_overrides, "--jobs", "2")]
    while len(kills) < KILLS:
        before = starts(root)
        sweep = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = lambda before=before: starts(root) > before  # noqa: E731
        wait_for(started, 300, f"a job to start {how}", sweep)
        if not kills:  # the first kill lands where there is a checkpoint to resume from
            wait_for(lambda: mid_run(root), 300, f"a checkpoint {how}", sweep)
        time.sleep(rng.uniform(0, WINDOW_S))
        assert sweep.poll() is None, f"the sweep ended before kill {len(kills) + 1} {how}"
        kills.append(kill_tree(sweep.pid))
        sweep.wait()
        for d, stamp in done_stamps(root).items():
            assert seen.setdefault(d, stamp) == stamp, f"{d} trained again {how}"
    last = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert last.returncode == 0, f"{how}\n{last.stdout}\n{last.stderr}"
    assert all(n >= 2 for n in kills), kills  # the driver and at least one job each time

    stamps = done_stamps(root)
    assert len(stamps) == 4, f"not all runs done {how}"
    assert all(stamps[d] == t for d, t in seen.items()), f"a finished run ran again {how}"
    events = [e for d in runs(root) for e in records.read_events(d)]
    assert any(e["event"] == "resume" for e in events), f"nothing resumed {how}"
    leftovers = [p for d in runs(root) for p in d.rglob(".*.tmp")]
    assert not leftovers, f"temporary files left {leftovers} {how}"

    reference = tmp_path / "reference"
    assert main(command(reference, tiny_overrides, "--executor", "debug")) == 0
    for a, b in zip(runs(root), runs(reference), strict=True):
        wa, wb = final_weights(a), final_weights(b)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), (
            f"{a} differs from the uninterrupted run {how}"
        )
        epochs = [(r["epoch"], r["train_loss"], r["top1"]) for r in records.read_log(a)]
        assert epochs == [(r["epoch"], r["train_loss"], r["top1"]) for r in records.read_log(b)], (
            f"{a}: the epoch log differs from the uninterrupted run's {how}"
        )
