"""Carry out a validated plan (configs, then jobs) and cancel a sweep's jobs.

Each `roadmap sweep` that submits anything appends one entry to `<root>/<track>/sweep.json`
(time, command, executor, profile, runs, job ids, the driving process), under an exclusive lock
on `<root>/<track>/.sweep.lock` that the local executor holds until its last job ends.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from experiments import records
from experiments.launcher import run_debug, submit_slurm
from experiments.sweep import Plan
from experiments.sweep_local import (
    STOP_WAIT_S,
    LocalDriver,
    local_slots,
    stop_local_job,
)
from experiments.sweep_status import (
    now,
    process_alive,
    process_start,
    read_job,
    sacct_states,
    sweep_states,
    write_job,
)

MANIFEST = "sweep.json"
LOCK = ".sweep.lock"
SUBMITIT = ".submitit"  # submitit's folder (pickles, logs) under <root>/<track>/


@contextmanager
def sweep_lock(track_dir: Path) -> Iterator[None]:
    """Hold the track's sweep lock; a second sweep on the same root is a clear error."""
    track_dir.mkdir(parents=True, exist_ok=True)
    f = open(track_dir / LOCK, "a+")  # noqa: SIM115 - closed below
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ValueError(
                f"another sweep ({holder}) is submitting or running under {track_dir}; "
                f"see `roadmap status --root {track_dir.parent}`"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} since {now()}\n")
        f.flush()
        yield
    finally:
        f.close()


def _record(track_dir: Path, entry: dict[str, Any]) -> None:
    """Append or update (same id) one submission in the track's sweep.json, atomically."""
    manifest = records.read_json(track_dir / MANIFEST) or {"submissions": []}
    subs = [s for s in manifest["submissions"] if s.get("id") != entry["id"]]
    manifest["submissions"] = [*subs, entry]
    records.atomic_write_json(track_dir / MANIFEST, manifest)


def prepare(plan: Plan) -> list[Path]:
    """Write each run's config (kept if already there) and set failed runs aside; the configs."""
    from experiments.train import prepare_run

    req, configs = plan.request, []
    for run in plan.to_run:
        config = run.run_dir.absolute() / records.CONFIG  # jobs may start elsewhere
        if not config.exists():
            prepare_run(
                req.track,
                run.step.name,
                run.seed,
                req.preset,
                run.run_dir,
                data=req.data,
                overrides=tuple(req.overrides),
            )
        if run.action == "retry":
            _set_aside_failure(run.run_dir)
        configs.append(config)
    return configs


def _set_aside_failure(run_dir: Path) -> None:
    """Keep a failed result as result.failed-<n>.json, so that the run runs again."""
    result = run_dir / records.RESULT
    if result.exists():
        n = 1 + len(list(run_dir.glob("result.failed-*.json")))
        result.rename(run_dir / f"result.failed-{n}.json")


def launch(plan: Plan, out: Callable[[str], None] = print) -> int:
    """Submit the plan's runs with its executor; 0 when every run submitted/finished fine."""
    req = plan.request
    track_dir = req.root / req.track
    if not plan.to_run:
        out(
            "nothing to submit: every run is done, active, or failed (see --retry-failed)"
        )
        return 0
    with sweep_lock(track_dir):
        configs = prepare(plan)
        folder = track_dir / SUBMITIT
        entry: dict[str, Any] = {
            "id": f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}",
            "time": now(),
            "argv": sys.argv,
            "executor": req.executor,
            "profile": req.profile,
            "preset": req.preset,
            "runs": [str(c.parent.relative_to(req.root.absolute())) for c in configs],
            "driver": {
                "pid": os.getpid(),
                "start": process_start(os.getpid()),
                "host": os.uname().nodename,
            },
        }
        _record(track_dir, entry)
        if req.executor == "slurm":
            name = f"roadmap-{req.track}-{req.preset}"
            try:
                ids = submit_slurm(configs, plan.profile, folder.absolute(), name)
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
        if req.executor == "debug":
            failed = 0
            for i, config in enumerate(configs, 1):
                result = run_debug(
                    config, folder, max_requeues=plan.profile.max_requeues
                )
                failed += result.get("status") != "done"
                out(f"[{i}/{len(configs)}] {result.get('status')} {config.parent}")
            return int(failed > 0)
        slots = local_slots(req.jobs)
        counts = LocalDriver(folder, slots, plan.profile.max_requeues, out).run(configs)
        entry["counts"] = counts
        _record(track_dir, entry)
        out(
            f"local sweep: {counts['done']} done, {counts['failed']} failed, "
            f"{counts['stopped']} stopped; see roadmap status --root {req.root}"
        )
        return int(counts["failed"] > 0 or counts["stopped"] > 0)


# ---- cancel -----------------------------------------------------------------------------------


def cancel(
    root: Path,
    track: str | None = None,
    now_: bool = False,
    out: Callable[[str], None] = print,
) -> int:
    """Stop every pending or running job under `root`; how many runs were cancelled."""
    reason = f"cancelled by roadmap cancel at {now()}"
    tracks = [d for d in sorted(Path(root).iterdir()) if (d / MANIFEST).exists()]
    for track_dir in tracks:
        if track is None or track_dir.name == track:
            _stop_driver(track_dir, out)
    states = [
        s for s in sweep_states(root, track) if s.status in ("pending", "running")
    ]
    slurm = [s for s in states if s.executor == "slurm" and s.job_id]
    local = [s for s in states if s.executor == "local"]
    if slurm:
        _cancel_slurm(slurm, reason, graceful=not now_, out=out)
    for s in local:
        how = stop_local_job(
            s.run_dir, reason, cancelled=True, wait_s=0 if now_ else STOP_WAIT_S
        )
        out(f"{s.run_dir}: local job {s.job_id} {how}")
    if not states:
        out(f"nothing to cancel under {root}: no pending or running job")
    return len(states)


def _stop_driver(track_dir: Path, out: Callable[[str], None]) -> None:
    """SIGTERM a local sweep still driving jobs of this track, and wait for it to stop them."""
    manifest = records.read_json(track_dir / MANIFEST) or {}
    for entry in manifest.get("submissions", []):
        driver = entry.get("driver") or {}
        if entry.get("executor") != "local" or driver.get("pid") == os.getpid():
            continue
        if not process_alive(
            driver.get("pid"), driver.get("start"), driver.get("host")
        ):
            continue
        out(f"stopping the local sweep (pid {driver['pid']}) of {track_dir}")
        os.kill(int(driver["pid"]), signal.SIGTERM)
        deadline = time.time() + STOP_WAIT_S + 30
        while process_alive(driver["pid"], driver.get("start"), driver.get("host")):
            if time.time() > deadline:
                out(
                    f"  the sweep (pid {driver['pid']}) did not stop; stopping its jobs directly"
                )
                break
            time.sleep(0.5)


def _cancel_slurm(
    states: list, reason: str, graceful: bool, out: Callable[[str], None]
) -> None:
    """Cancel Slurm jobs; running ones first get USR2 + stop_requested (checkpoint, no requeue)."""
    if shutil.which("scancel") is None:
        raise FileNotFoundError(
            "scancel is not on PATH: run roadmap cancel where Slurm is"
        )
    running = [s for s in states if s.status == "running"]
    if graceful and running:
        for s in running:
            job = read_job(s.run_dir) or {}
            job["stop_requested"] = reason
            write_job(s.run_dir, job)
        ids = [s.job_id for s in running]
        subprocess.run(["scancel", "--signal=USR2", *ids], check=False)
        out(f"asked {len(ids)} running job(s) to checkpoint and stop: {' '.join(ids)}")
        deadline = time.time() + STOP_WAIT_S
        while time.time() < deadline:
            info = sacct_states(ids)
            if all(
                info.get(i, {}).get("State", "").split(" ")[0]
                not in ("RUNNING", "COMPLETING")
                for i in ids
            ):
                break
            time.sleep(2)
    ids = [s.job_id for s in states]
    subprocess.run(["scancel", *ids], check=False)
    for s in states:
        job = read_job(s.run_dir) or {}
        job.pop("stop_requested", None)
        job["stopped"] = {"time": now(), "cancelled": True, "reason": reason}
        write_job(s.run_dir, job)
    out(f"cancelled {len(ids)} Slurm job(s): {' '.join(ids)}")
