"""The device-hours of a sweep's plan, for `--dry-run`: measured where possible, else stated.

The throughput comes, in this order, from a `roadmap bench --out` CSV (`--bench`), from this
sweep's finished runs, or from a stated estimate (GPU_IMG_S / CPU_CORE_IMG_S below).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from experiments.bench.results import load_measured_throughput
from experiments.runs import records
from experiments.sweep.plan import Plan

# Stated when nothing measured is at hand. GPU: training images/s of one A100-class GPU at
# 224 px, ConvNeXt-T's 1943.5 img/s inference (paper Table 12, A100, TF32, channels_last) / 3 for
# forward + backward. CPU: per core (1 torch thread) at 32 px, the epochs of a `make run` on the
# project's 2-core machine (2026-12-03, every step of the resnet50 track: 44-130 img/s, mean 78;
# log.jsonl `img_s`). Other sizes scale with the pixel count.
GPU_IMG_S, GPU_SIZE = 650.0, 224
CPU_CORE_IMG_S, CPU_SIZE = 75.0, 32
GPU_SOURCE = "paper Table 12 A100 inference / 3"
CPU_SOURCE = "smoke runs on a 2-core CPU"


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


def estimate(plan: Plan, train_images: int, slots: int = 1, threads: int = 1) -> Estimate:
    """Device-hours of the plan's runs from epochs x dataset size over a throughput figure."""
    recipe, request, profile = plan.recipe, plan.request, plan.profile
    gpu = request.executor == "slurm" and profile.gpus_per_node > 0
    cores = threads * plan.world_size  # a CPU job's tasks each run `threads` threads
    device, per_job = ("GPU", plan.world_size) if gpu else ("CPU core", cores)
    size = recipe.image_size
    names = {r.step.name for r in plan.to_run}
    img_s, source = {}, ""
    if request.bench:
        img_s, source = _bench(request.bench, request.track, names, size, gpu)
        img_s = {n: v * per_job for n, v in img_s.items()}  # per device -> per job
    if not img_s:
        img_s, source = _measured_runs(plan, names)
    if not img_s:
        per_device, source = stated_img_s(gpu, size)
        img_s = dict.fromkeys(names, per_device * per_job)
    images = recipe.epochs * train_images
    job_hours = sum(
        images / img_s[r.step.name] / 3600 for r in plan.to_run if img_s.get(r.step.name)
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


def stated_img_s(gpu: bool, size: int) -> tuple[float, str]:
    """The stated training img/s of one GPU (or CPU core) at `size` px, and its source."""
    per, at = (GPU_IMG_S, GPU_SIZE) if gpu else (CPU_CORE_IMG_S, CPU_SIZE)
    device = "GPU" if gpu else "CPU core"
    return per * (at / size) ** 2, (
        f"estimate, not measured: {per:g} img/s per {device} at {at} px "
        f"({GPU_SOURCE if gpu else CPU_SOURCE}), scaled to {size} px; measure with "
        "`roadmap bench --out FILE.csv` and pass --bench FILE.csv"
    )


def _measured_runs(plan: Plan, names: set[str]) -> tuple[dict[str, float], str]:
    """Mean img/s of this sweep's finished runs, by step (same preset and executor)."""
    seen: dict[str, list[float]] = {}
    for r in plan.runs:
        result = records.read_json(r.run_dir / records.RESULT) if r.state.status == "done" else None
        if result and result.get("img_s"):
            seen.setdefault(r.step.name, []).append(float(result["img_s"]))
    if not seen:
        return {}, ""
    overall = sum(sum(v) for v in seen.values()) / sum(len(v) for v in seen.values())
    img_s = {n: sum(seen[n]) / len(seen[n]) if n in seen else overall for n in names}
    count = sum(len(v) for v in seen.values())
    return img_s, f"measured: mean img/s of {count} finished run(s) of this sweep"


def _bench(path: str, track: str, names: set[str], size: int, gpu: bool) -> tuple[dict, str]:
    """Training img/s per GPU, or per CPU core, and step from `roadmap bench --out`.

    Scaled to `size` px by pixel count; on the CPU divided by the benchmark's torch threads
    (a job's throughput is taken as proportional to its cores: rough, and said so).
    """
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
