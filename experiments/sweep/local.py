"""The local executor: a sweep's jobs on this machine through submitit, a few at a time.

submitit's `LocalExecutor` starts one controller process per job and has no limit of its own, so
the sweep process (the driver) keeps at most `len(slots)` jobs alive, starts the next when one
ends, and prints a line per finished run with counts and an ETA. Controllers run in their own
session: Ctrl-C reaches only the driver, which then asks each running job to checkpoint and stop
(USR2 with `stop_requested` in its job.json); a later `roadmap sweep` resumes them. SIGTERM (what
`roadmap cancel` sends) does the same but records the runs as cancelled.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import submitit

from experiments.recipe import Recipe
from experiments.runs import records, runstate
from experiments.runs.locks import update_job
from experiments.runs.scheduler import process_alive, process_start, this_process
from experiments.submitit_private import SessionLocalExecutor, job_outcome_error
from experiments.sweep.job import STOP_WAIT_S, RunJob, mark_stopped, new_job
from experiments.sweep.snapshot import CodeSnapshot
from roadmap.errors import UserError

POLL_S = 0.5


@dataclass(frozen=True)
class Slot:
    """Room for one local job: the torch threads its run applies and the GPUs it may see."""

    threads: int
    gpus: tuple[int, ...] = ()


def local_slots(jobs: int | None = None, recipe: Recipe | None = None) -> list[Slot]:
    """Slots for this machine: one job per GPU if there are GPUs, else jobs sharing the cores.

    A slot's threads are what its runs apply: `recipe.torch_threads` of its share of the cores
    (the recipe's own count when it sets one), so job.json and the estimate record them.

    A local job is one process on one GPU (several-GPU DDP runs are for the Slurm executor).
    Without GPUs the default is one single-threaded job per core, as far as memory allows
    (2 GiB each): on 2 cores the smoke sweep ran fastest that way (docs/sweeps.md), and
    one-thread jobs do not slow down under other load the way multi-threaded torch does.
    """
    if jobs is not None and jobs < 1:
        raise UserError("--jobs must be >= 1")
    cores = len(os.sched_getaffinity(0))
    gpus = _gpu_count()
    if gpus:  # numbered as the machine does (through our CUDA_VISIBLE_DEVICES), not 0..n-1
        n = min(jobs or gpus, gpus)
        from experiments.train import cuda

        threads = _applied(max(1, cores // n), recipe)
        return [Slot(threads, (i,)) for i in cuda.visible_devices(gpus)[:n]]
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    n = jobs or max(1, min(cores, int(memory_gib // 2)))
    return [Slot(_applied(max(1, cores // n), recipe)) for _ in range(n)]


def _applied(share: int, recipe: Recipe | None) -> int:
    """The threads a run of `recipe` applies given `share` (the share itself without one)."""
    return recipe.torch_threads(share) if recipe is not None else share


def _gpu_count() -> int:
    """CUDA devices visible to this process (0 without torch.cuda)."""
    import torch  # here: `roadmap status` and `--help` import no torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _children(pid: int) -> list[int]:
    """Child process ids of `pid` (the tasks of a local controller)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def stop_local_job(run_dir: Path, reason: str, cancelled: bool, wait_s: float = STOP_WAIT_S) -> str:
    """Ask a running local job to checkpoint and exit; kill it if it does not; record it."""
    job = records.read_job(run_dir) or {}
    pid = job.get("job_id")
    alive = process_alive(pid, job.get("proc_start"), job.get("host"))
    how = "was not running"
    if alive:
        update_job(run_dir, lambda job: job.update(stop_requested=reason))
        for task in _children(int(pid)):
            _signal(task, signal.SIGUSR2)
        how = "checkpointed and stopped"
        deadline = time.time() + wait_s
        while process_alive(pid, job.get("proc_start"), job.get("host")) and time.time() < deadline:
            time.sleep(POLL_S)
        for sig in (signal.SIGINT, signal.SIGKILL):
            if process_alive(pid, job.get("proc_start"), job.get("host")):
                how = "killed (no checkpoint in time)"
                _signal(int(pid), sig)
                for task in _children(int(pid)):
                    _signal(task, sig)
                time.sleep(2)
    update_job(run_dir, lambda job: mark_stopped(job, f"{reason}; {how}", cancelled))
    return how


def _signal(pid: int, sig: int) -> None:
    """Send a signal, ignoring a process that is already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _fmt_s(seconds: float) -> str:
    """Seconds as 1h02m, 3m05s or 42s."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class LocalDriver:
    """Run configs as local submitit jobs, at most one per slot, with progress lines."""

    def __init__(
        self,
        folder: Path,
        slots: list[Slot],
        max_requeues: int = 3,
        out: Callable[[str], None] | None = None,
        code: CodeSnapshot | None = None,
    ) -> None:
        self.folder = folder
        self.code = code  # the launch's copy of the code, which every job imports from
        self.slots = slots
        self.max_requeues = max_requeues
        self.out = out or (lambda line: print(line, flush=True))
        # (reason, cancelled) once a signal asked the driver to stop.
        self.stop: tuple[str, bool] | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            self.stop = ("cancelled (roadmap cancel, or SIGTERM to the sweep)", True)
        else:
            self.stop = (
                "interrupted (Ctrl-C on the sweep); resumes from its checkpoint",
                False,
            )

    def run(self, configs: list[Path]) -> dict[str, int]:
        """Run every config; the counts of done, failed and stopped runs."""
        me = this_process()
        for config in configs:
            new_job(config.parent, executor="local", job_id=None, queued_by=me)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._loop(list(configs))
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def _loop(self, queue: list[Path]) -> dict[str, int]:
        """Keep every slot busy until the queue is empty or a signal asks to stop."""
        total, t_start = len(queue), time.time()
        free = list(self.slots)
        running: dict[Path, tuple[submitit.LocalJob, Slot, float]] = {}
        counts = {"done": 0, "failed": 0, "interrupted": 0, "stopped": 0}
        durations: list[float] = []
        while queue or running:
            if self.stop is not None:
                self._stop_all(queue, running, counts)
                break
            while queue and free:
                config, slot = queue.pop(0), free.pop(0)
                running[config] = (self._start(config, slot), slot, time.time())
            time.sleep(POLL_S)
            for config, (job, slot, t0) in list(running.items()):
                if not job.done():
                    continue
                del running[config]
                free.append(slot)
                durations.append(time.time() - t0)
                status, detail = self._outcome(config.parent, job)
                counts[status] += 1
                finished = sum(counts.values()) - counts["stopped"]
                left = len(queue) + len(running)
                eta = sum(durations) / len(durations) * left / len(self.slots)
                name = f"{config.parent.parent.name}/{config.parent.name}"
                cut = counts["interrupted"]
                self.out(
                    f"[{finished:>{len(str(total))}}/{total}] {status:<6} {name:<34} {detail}"
                    f" ({_fmt_s(durations[-1])}) | done {counts['done']}, failed "
                    f"{counts['failed']}"
                    + (f", interrupted {cut}" if cut else "")
                    + f", running {len(running)}, queued {len(queue)}"
                    f" | elapsed {_fmt_s(time.time() - t_start)}, ETA {_fmt_s(eta)}"
                )
        return counts

    def _start(self, config: Path, slot: Slot) -> submitit.LocalJob:
        """Start one local job on `slot`; record its controller in job.json."""
        code = self.code
        executor = SessionLocalExecutor(
            folder=self.folder,
            max_num_timeout=self.max_requeues,
            environ=None if code is None else code.env(os.environ),
            cwd=None if code is None else code.path,
        )
        executor.update_parameters(
            timeout_min=60 * 24 * 365,
            visible_gpus=slot.gpus,
            gpus_per_node=len(slot.gpus),
        )
        job = executor.submit(RunJob(str(config), slot.threads, self.max_requeues))
        pid = str(job.job_id)
        new_job(
            config.parent,
            executor="local",
            job_id=pid,
            proc_start=process_start(pid),
            submitit_folder=str(self.folder),
            threads=slot.threads,
            gpus=list(slot.gpus),
            code_snapshot=None if code is None else str(code.path),
        )
        return job

    def _outcome(self, run_dir: Path, job: submitit.LocalJob) -> tuple[str, str]:
        """(done|failed|interrupted, detail) of a local job that has ended (its run's state)."""
        state = runstate.run_state(run_dir, job_error=job_outcome_error)
        if state.status == "done":
            return "done", f"top-1 {state.detail or '?'}"
        if state.status == "failed":
            return "failed", state.detail
        log = Path(self.folder) / f"{job.job_id}_0_log.err"
        return "interrupted", f"ended without a result: {state.detail} (log: {log})"

    def _stop_all(
        self, queue: list[Path], running: dict[Path, Any], counts: dict[str, int]
    ) -> None:
        """Stop running jobs (checkpoint first) and mark queued runs as not started."""
        reason, cancelled = self.stop or ("stopped", False)
        self.out(f"stopping: {reason}; {len(running)} running, {len(queue)} queued")
        for config in queue:
            never = f"{reason}; never started"
            update_job(config.parent, lambda job, why=never: mark_stopped(job, why, cancelled))
        for config in running:
            how = stop_local_job(config.parent, reason, cancelled)
            counts["stopped"] += 1
            self.out(f"  {config.parent.parent.name}/{config.parent.name}: {how}")
