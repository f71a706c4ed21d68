"""Plan a sweep: one run per (step, seed), everything validated before anything is submitted.

A run lives in `<root>/<track>/<NN>_<step>/seed<k>/` (NN: the step's 1-based index). Planning
reads each run's state (`experiments.sweep_status`): done runs are skipped, so relaunching the
same command never repeats finished work; failed runs are re-run only with `retry_failed`
(their failed result.json is kept as `result.failed-<n>.json`); runs whose job is pending or
running are left alone. `estimate` turns the plan into device-hours for `--dry-run`: from a
`roadmap bench` CSV when given, else from this sweep's finished runs, else a stated estimate.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments import records
from experiments.sweep_profile import Profile, load_profile
from experiments.sweep_status import RunState, run_state, sacct_states

EXECUTORS = ("local", "slurm", "debug")
STEP_SETS = ("all", "on-path")
# Stated when nothing measured is at hand. GPU: training images/s of one A100-class GPU at
# 224 px, ConvNeXt-T's 1943.5 img/s inference (paper Table 12, A100, TF32, channels_last) / 3 for
# forward + backward. CPU: per core (1 torch thread) at 32 px, smoke runs of resnet50 steps on
# the project's 2-core machine (35-38 img/s). Other sizes scale with the pixel count.
GPU_IMG_S, GPU_SIZE = 650.0, 224
CPU_CORE_IMG_S, CPU_SIZE = 36.0, 32
GPU_SOURCE = "paper Table 12 A100 inference / 3"
CPU_SOURCE = "smoke runs on a 2-core CPU"


def parse_steps(spec: str, track: str) -> list[Any]:
    """`all`, `on-path`, or comma-separated step names -> Steps in roadmap order."""
    from roadmap.steps import get_step, steps

    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError(
            f"--steps is empty; give {' or '.join(STEP_SETS)} or step names"
        )
    if names == ["all"]:
        return list(steps(track))
    if names == ["on-path"]:
        return [s for s in steps(track) if s.on_path]
    # An unknown name is an error that suggests the nearest one.
    chosen = {get_step(name, track).name for name in names}
    return [s for s in steps(track) if s.name in chosen]


def parse_seeds(spec: str) -> list[int]:
    """`0,1,2` or `0-2` -> [0, 1, 2]; seeds are distinct non-negative integers."""
    seeds: list[int] = []
    for part in (p.strip() for p in spec.split(",")):
        try:
            if "-" in part[1:]:
                lo, hi = (int(x) for x in part.split("-", 1))
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(
                f"--seeds {spec!r}: expected integers like 0,1,2 or 0-2"
            ) from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {spec!r}: need distinct integers >= 0")
    return seeds


def run_dir(root: str | os.PathLike, track: str, step: Any, seed: int) -> Path:
    """The directory of one run: `<root>/<track>/<NN>_<step>/seed<k>`."""
    return Path(root) / track / f"{step.index:02d}_{step.name}" / f"seed{seed}"


@dataclass(frozen=True)
class Request:
    """What `roadmap sweep` was asked to do."""

    root: Path
    preset: str
    track: str = "resnet50"
    steps: str = "all"
    seeds: str = "0,1,2"
    data: str | None = None
    overrides: tuple[str, ...] = ()
    executor: str = "local"
    profile: str | None = None
    retry_failed: bool = False
    jobs: int | None = None  # local: jobs at once (default: what the machine holds)
    bench: str | None = None  # `roadmap bench --out` CSV for the estimate
    dry_run: bool = (
        False  # without sbatch here, a dry run skips the cluster's own check
    )


@dataclass
class PlannedRun:
    """One (step, seed) of the plan and what the sweep does with it."""

    step: Any
    seed: int
    run_dir: Path
    state: RunState
    action: str  # submit | retry | skip


@dataclass
class Plan:
    """A validated sweep: its runs, recipe and resources."""

    request: Request
    runs: list[PlannedRun]
    recipe: Any
    profile: Profile
    world_size: int
    notes: list[str] = field(default_factory=list)

    @property
    def to_run(self) -> list[PlannedRun]:
        """Runs that will be submitted."""
        return [r for r in self.runs if r.action != "skip"]


def make_plan(request: Request) -> Plan:
    """Validate the request and plan every run; any problem is one ValueError, nothing written."""
    from experiments.data import validate_data
    from experiments.recipe import parse_overrides, resolve_recipe

    if request.executor not in EXECUTORS:
        raise ValueError(
            f"unknown executor {request.executor!r}; executors: {', '.join(EXECUTORS)}"
        )
    chosen = parse_steps(request.steps, request.track)
    seeds = parse_seeds(request.seeds)
    recipe = resolve_recipe(request.preset, tuple(request.overrides))
    if request.profile and request.executor != "slurm":
        raise ValueError(
            "--profile describes a Slurm cluster; use it with --executor slurm"
        )
    if request.executor == "slurm" and not request.profile:
        raise ValueError(
            "--executor slurm needs --profile slurm/NAME.toml (see slurm/README.md)"
        )
    profile = load_profile(request.profile) if request.profile else Profile()
    data_root = None if request.data is None else validate_data(request.data)["root"]
    check_writable(request.root)
    world = profile.world_size if request.executor == "slurm" else 1
    check_batch(recipe, world, profile)
    if request.bench is not None and not Path(request.bench).is_file():
        raise FileNotFoundError(
            f"--bench {request.bench}: no such file (write it with roadmap bench --out)"
        )
    if request.jobs is not None and request.jobs < 1:
        raise ValueError("--jobs must be >= 1")
    dirs = [
        (s, k, run_dir(request.root, request.track, s, k))
        for s in chosen
        for k in seeds
    ]
    overrides = parse_overrides(request.overrides)
    for step, seed, d in dirs:
        want = {
            "track": request.track,
            "step": step.name,
            "seed": seed,
            "preset": request.preset,
            "overrides": overrides,
            "data": data_root,
        }
        check_config(d, want)
    jobs = [records.read_json(d / "job.json") or {} for _, _, d in dirs]
    ids = [
        j["job_id"] for j in jobs if j.get("executor") == "slurm" and j.get("job_id")
    ]
    sacct = sacct_states(ids)
    runs = []
    for step, seed, d in dirs:
        state = (
            run_state(d, sacct)
            if d.is_dir()
            else _missing(d, request.track, step, seed)
        )
        action = "submit"
        if state.status in ("done", "pending", "running"):
            action = "skip"
        elif state.status == "failed":
            action = "retry" if request.retry_failed else "skip"
        runs.append(PlannedRun(step, seed, d, state, action))
    plan = Plan(request, runs, recipe, profile, world)
    if request.executor == "slurm":
        _check_cluster(plan)
    return plan


def _check_cluster(plan: Plan) -> None:
    """`sbatch --test-only` the array the plan would submit; a refusal is an error."""
    from experiments.launcher import check_slurm

    if shutil.which("sbatch") is None:
        if not plan.request.dry_run:
            raise FileNotFoundError(
                "--executor slurm: sbatch is not on PATH (run the sweep where Slurm is)"
            )
        plan.notes.append("not checked with the cluster: no sbatch on this machine")
        return
    folder = plan.request.root / plan.request.track / ".submitit"
    try:
        answer = check_slurm(plan.profile, len(plan.to_run), folder)
    except ValueError as err:
        if not plan.request.dry_run:
            raise
        answer = f"REFUSED here: {err}"
    plan.notes.append(f"sbatch --test-only: {answer}")


def _missing(d: Path, track: str, step: Any, seed: int) -> RunState:
    """The state of a run that has no directory yet."""
    return RunState(d, track, step.name, step.index, seed, "missing")


def check_writable(root: Path) -> None:
    """`root` is, or can be created as, a directory this process can write into."""
    probe = Path(root).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(f"output root {root}: {probe} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".roadmap-write-test-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise PermissionError(
            f"output root {root} is not writable: {err.strerror} ({probe})"
        ) from None


def check_batch(recipe: Any, world: int, profile: Profile) -> None:
    """The recipe's effective batch must split evenly over the job's devices."""
    try:
        recipe.accum_for(world)
    except ValueError as err:
        where = f" ({profile.nodes} node(s) x {profile.gpus_per_node} GPU(s) in {profile.path})"
        raise ValueError(f"{err} -- {world} device(s) per job{where}") from None


def check_config(d: Path, want: dict[str, Any]) -> None:
    """A run directory configured before must have been configured for this very run."""
    config = records.read_json(d / records.CONFIG)
    if config is None:
        return
    diff = [
        f"{k} {config.get(k)!r} (asked: {v!r})"
        for k, v in want.items()
        if config.get(k) != v
    ]
    if diff:
        raise ValueError(
            f"{d} already holds a different run: {'; '.join(diff)}. "
            "Use another --root, or move that run away"
        )


# ---- the estimate -----------------------------------------------------------------------------


@dataclass
class Estimate:
    """Device-hours of the runs to submit, and where the throughput came from."""

    runs: int
    images_per_run: float
    img_s: dict[str, float]  # per job, by step name
    source: str
    device: str  # "GPU" or "CPU core"
    devices_per_job: int
    hours: float  # device-hours
    wall_hours: float | None = None  # local: with the planned concurrency


def estimate(
    plan: Plan, train_images: int, slots: int = 1, threads: int = 1
) -> Estimate:
    """Device-hours of the plan's runs from epochs x dataset size over a throughput figure."""
    recipe, request, profile = plan.recipe, plan.request, plan.profile
    gpu = request.executor == "slurm" and profile.gpus_per_node > 0
    device, per_job = ("GPU", plan.world_size) if gpu else ("CPU core", threads)
    size = getattr(recipe, "image_size", 224)
    names = {r.step.name for r in plan.to_run}
    img_s, source = {}, ""
    if request.bench:
        img_s, source = _bench(request.bench, request.track, names, size, gpu)
        img_s = {n: v * per_job for n, v in img_s.items()}  # per device -> per job
    if not img_s:
        img_s, source = _measured_runs(plan, names)
    if not img_s:
        per, at = (GPU_IMG_S, GPU_SIZE) if gpu else (CPU_CORE_IMG_S, CPU_SIZE)
        img_s = dict.fromkeys(names, per * per_job * (at / size) ** 2)
        source = (
            f"estimate, not measured: {per:g} img/s per {device} at {at} px "
            f"({GPU_SOURCE if gpu else CPU_SOURCE}), scaled to {size} px; measure with "
            "`roadmap bench --out FILE.csv` and pass --bench FILE.csv"
        )
    images = recipe.epochs * train_images
    job_hours = sum(
        images / img_s[r.step.name] / 3600
        for r in plan.to_run
        if img_s.get(r.step.name)
    )
    wall = job_hours / slots if request.executor == "local" else None
    return Estimate(
        len(plan.to_run),
        images,
        img_s,
        source,
        device,
        per_job,
        job_hours * per_job,
        wall,
    )


def _measured_runs(plan: Plan, names: set[str]) -> tuple[dict[str, float], str]:
    """Mean img/s of this sweep's finished runs, by step (same preset and executor)."""
    seen: dict[str, list[float]] = {}
    for r in plan.runs:
        result = (
            records.read_json(r.run_dir / records.RESULT)
            if r.state.status == "done"
            else None
        )
        if result and result.get("img_s"):
            seen.setdefault(r.step.name, []).append(float(result["img_s"]))
    if not seen:
        return {}, ""
    overall = sum(sum(v) for v in seen.values()) / sum(len(v) for v in seen.values())
    img_s = {n: sum(seen[n]) / len(seen[n]) if n in seen else overall for n in names}
    count = sum(len(v) for v in seen.values())
    return img_s, f"measured: mean img/s of {count} finished run(s) of this sweep"


def _bench(
    path: str, track: str, names: set[str], size: int, gpu: bool
) -> tuple[dict, str]:
    """Training img/s per GPU, or per CPU core, and step from `roadmap bench --out`.

    Scaled to `size` px by pixel count; on the CPU divided by the benchmark's torch threads
    (a job's throughput is taken as proportional to its cores: rough, and said so).
    """
    from experiments.bench_report import load_measured_throughput

    device = "cuda" if gpu else "cpu"
    measured = load_measured_throughput(path, device=device)
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("device") == device]
    sizes = {int(r["image_size"]) for r in rows if r.get("image_size")}
    bench_size = sizes.pop() if len(sizes) == 1 else size
    threads = {int(r["threads"]) for r in rows if r.get("threads")}
    cores = threads.pop() if not gpu and len(threads) == 1 else 1
    scale = (bench_size / size) ** 2 / cores
    img_s = {n: measured[(track, n)] * scale for n in names if (track, n) in measured}
    missing = sorted(names - set(img_s))
    if missing and img_s:  # steps not benchmarked: the mean of those that were
        mean = sum(img_s.values()) / len(img_s)
        img_s.update(dict.fromkeys(missing, mean))
    if not img_s:
        return {}, ""
    return img_s, (
        f"measured by roadmap bench ({path}, {device}, {bench_size} px"
        f"{f' scaled to {size} px' if bench_size != size else ''}"
        f"{f', {cores} threads taken as {cores} cores' if cores > 1 else ''}"
        f"{f'; {len(missing)} step(s) not in it use the mean' if missing else ''})"
    )
