"""Carry out a validated plan (configs, then jobs) and cancel a sweep's jobs.

Each `roadmap sweep` that submits anything appends one entry to `<root>/<track>/sweep.json`
(time, command, executor, profile, runs, job ids, the driving process, the copy of the code its
jobs import: experiments/sweep/snapshot.py), under an exclusive lock on
`<root>/<track>/.sweep.lock` (naming its holder) that the local executor holds until its last
job ends; a second sweep of the track is refused at once, naming the first.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import submitit

from experiments.runs import records, runstate
from experiments.runs.locks import HolderLock, LockBusy, describe
from experiments.runs.runstate import sweep_states
from experiments.runs.scheduler import process_alive, this_process
from experiments.sweep.job import STOP_WAIT_S, RunJob, new_job
from experiments.sweep.local import LocalDriver, local_slots, stop_local_job
from experiments.sweep.plan import Plan, replan
from experiments.sweep.slurm import cancel_slurm, submit_slurm
from experiments.sweep.snapshot import CodeSnapshot, snapshot_code
from experiments.train.config import prepare_run
from roadmap.errors import UserError

Entry = dict[str, Any]  # one submission in sweep.json
Out = Callable[[str], None]

MANIFEST = "sweep.json"
LOCK = ".sweep.lock"
SUBMITIT = ".submitit"  # submitit's folder (pickles, logs) under <root>/<track>/


@contextmanager
def sweep_lock(track_dir: Path) -> Iterator[None]:
    """Hold the track's sweep lock; a second sweep on the same root is a clear error."""
    track_dir.mkdir(parents=True, exist_ok=True)
    lock = HolderLock(track_dir / LOCK)
    try:
        lock.acquire(0, f"the sweep lock of {track_dir}")
    except LockBusy as busy:
        raise UserError(
            f"another sweep ({describe(busy.holder)}) is submitting or running under "
            f"{track_dir}; see `roadmap status --root {track_dir.parent}`"
        ) from None
    with lock:
        yield


def _record(track_dir: Path, entry: Entry) -> None:
    """Append or update (same id) one submission in the track's sweep.json, atomically."""
    manifest = records.read_json(track_dir / MANIFEST) or {"submissions": []}
    subs = [s for s in manifest["submissions"] if s.get("id") != entry["id"]]
    manifest["submissions"] = [*subs, entry]
    records.atomic_write_json(track_dir / MANIFEST, manifest)


def prepare(plan: Plan) -> list[Path]:
    """Write each run's config (kept if already there) and set failed runs aside; the configs."""
    req, configs = plan.request, []
    for run in plan.to_run:
        config = run.run_dir.absolute() / records.CONFIG  # jobs may start elsewhere
        if records.read_or_reason(records.read_config, run.run_dir)[0] is None:
            prepare_run(
                req.track,
                run.step.name,
                run.seed,
                req.preset,
                run.run_dir,
                data=req.data,
                overrides=tuple(req.overrides),
                checked=plan.data,
            )
        if run.action == "retry":
            runstate.set_aside_failure(run.run_dir)
        configs.append(config)
    return configs


def launch(plan: Plan, out: Out = print) -> int:
    """Submit the plan's runs with its executor; 0 when every run submitted/finished fine.

    The runs are planned again under the sweep lock (`replan`): a run that another sweep
    submitted since this one planned is not submitted twice.
    """
    req = plan.request
    track_dir = req.root / req.track
    nothing = "nothing to submit: every run is done, active, failed (see --retry-failed) or "
    if not plan.to_run:
        out(nothing + "unreadable")
        return 0
    with sweep_lock(track_dir):
        plan = replan(plan)
        if not plan.to_run:
            out(nothing + "unreadable (another sweep submitted the rest)")
            return 0
        configs = prepare(plan)
        # The debug executor trains in this process, at once: it needs no copy of the code.
        code = None if req.executor == "debug" else snapshot_code(req.root)
        if code is not None:
            out(f"jobs import the code copied to {code.path} (edits from now on are not used)")
        stamp = records.now()
        entry: Entry = {
            "id": f"{stamp[:19].replace('-', '').replace(':', '')}-{os.getpid()}",
            "time": stamp,
            "argv": sys.argv,
            "executor": req.executor,
            "profile": req.profile,
            "preset": req.preset,
            "runs": [str(c.parent.relative_to(req.root.absolute())) for c in configs],
            "driver": this_process(),
            "code": None if code is None else {"digest": code.digest, "path": str(code.path)},
        }
        _record(track_dir, entry)
        executors = {
            "slurm": _launch_slurm,
            "debug": _launch_debug,
            "local": _launch_local,
        }
        return executors[req.executor](plan, configs, entry, code, out)


def _launch_slurm(
    plan: Plan, configs: list[Path], entry: Entry, code: CodeSnapshot | None, out: Out
) -> int:
    """Submit one job array and return: the jobs run on the cluster."""
    req = plan.request
    track_dir = req.root / req.track
    folder = (track_dir / SUBMITIT).absolute()
    name = f"roadmap-{req.track}-{req.preset}"
    try:
        ids = submit_slurm(configs, plan.profile, folder, name, code)
    except ValueError as err:
        entry["error"] = str(err)
        _record(track_dir, entry)
        raise
    entry["job_ids"] = ids
    _record(track_dir, entry)
    array = ids[0].split("_")[0] if ids else "?"
    out(
        f"submitted {len(ids)} run(s) as Slurm job {array} "
        f"(ids {ids[0]} .. {ids[-1]}); follow with: roadmap status --root {req.root}"
    )
    return 0


def _launch_debug(
    plan: Plan, configs: list[Path], entry: Entry, code: CodeSnapshot | None, out: Out
) -> int:
    """Run the jobs one after another in this process (submitit's DebugExecutor)."""
    folder = plan.request.root / plan.request.track / SUBMITIT
    failed = 0
    for i, config in enumerate(configs, 1):
        executor = submitit.DebugExecutor(folder=folder)
        job = executor.submit(RunJob(str(config), 0, plan.profile.max_requeues, raise_errors=False))
        new_job(
            config.parent,
            executor="debug",
            job_id=str(job.job_id),
            submitit_folder=str(folder),
            driver=this_process(),
        )
        result = job.result()
        failed += result.get("status") != "done"
        out(f"[{i}/{len(configs)}] {result.get('status')} {config.parent}")
    return int(failed > 0)


def _launch_local(
    plan: Plan, configs: list[Path], entry: Entry, code: CodeSnapshot | None, out: Out
) -> int:
    """Run the jobs on this machine, a few at a time, until the last one ends."""
    req = plan.request
    track_dir = req.root / req.track
    slots = local_slots(req.jobs, plan.recipe)
    driver = LocalDriver(track_dir / SUBMITIT, slots, plan.profile.max_requeues, out, code)
    counts = driver.run(configs)
    entry["counts"] = counts
    _record(track_dir, entry)
    out(
        "local sweep: "
        + ", ".join(f"{n} {what}" for what, n in counts.items())
        + f"; see roadmap status --root {req.root}"
    )
    return int(any(n for what, n in counts.items() if what != "done"))


# ---- cancel -----------------------------------------------------------------------------------


def cancel(
    root: Path,
    track: str | None = None,
    now_: bool = False,
    out: Out = print,
) -> int:
    """Stop every pending or running job under `root`; how many runs were cancelled."""
    reason = f"cancelled by roadmap cancel at {records.now()}"
    tracks = [d for d in sorted(Path(root).iterdir()) if (d / MANIFEST).exists()]
    for track_dir in tracks:
        if track is None or track_dir.name == track:
            _stop_driver(track_dir, out)
    states = [s for s in sweep_states(root, track) if s.status in ("pending", "running")]
    slurm = [s for s in states if s.executor == "slurm" and s.job_id]
    local = [s for s in states if s.executor == "local"]
    if slurm:
        cancel_slurm(slurm, reason, graceful=not now_, out=out)
    for s in local:
        how = stop_local_job(s.run_dir, reason, cancelled=True, wait_s=0 if now_ else STOP_WAIT_S)
        out(f"{s.run_dir}: local job {s.job_id} {how}")
    if not states:
        out(f"nothing to cancel under {root}: no pending or running job")
    return len(states)


def _stop_driver(track_dir: Path, out: Out) -> None:
    """SIGTERM a local sweep still driving jobs of this track, and wait for it to stop them."""
    manifest = records.read_json(track_dir / MANIFEST) or {}
    for entry in manifest.get("submissions", []):
        driver = entry.get("driver") or {}
        if entry.get("executor") != "local" or driver.get("pid") == os.getpid():
            continue
        if not process_alive(driver.get("pid"), driver.get("start"), driver.get("host")):
            continue
        out(f"stopping the local sweep (pid {driver['pid']}) of {track_dir}")
        os.kill(int(driver["pid"]), signal.SIGTERM)
        deadline = time.time() + STOP_WAIT_S + 30
        while process_alive(driver["pid"], driver.get("start"), driver.get("host")):
            if time.time() > deadline:
                out(f"  the sweep (pid {driver['pid']}) did not stop; stopping its jobs directly")
                break
            time.sleep(0.5)
