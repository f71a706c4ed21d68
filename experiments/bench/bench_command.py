"""`roadmap bench`: training/inference throughput of roadmap steps against their references."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from typing import TYPE_CHECKING

from experiments.bench.results import format_table, write_csv
from experiments.recipe import resolve_recipe
from roadmap.errors import UserError
from roadmap.select import STEPS_HELP
from roadmap.steps import DEFAULT_TRACK, TRACKS

if TYPE_CHECKING:
    from experiments.bench.models import BenchConfig


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand."""
    p = sub.add_parser(
        "bench",
        help="measure train/inference images/s, memory and MFU of steps and their references",
        description="Measure training (forward, backward, AdamW) and inference images/s, peak "
        "memory and GFLOPs of a track's steps; each endpoint is measured interleaved with its "
        "reference implementation (torchvision/timm) in the same run, and their ratio printed.",
    )
    p.add_argument("--track", default=DEFAULT_TRACK, choices=list(TRACKS))
    p.add_argument("--steps", nargs="+", default=["all"], help=STEPS_HELP)
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--amp", choices=["bf16"], default=None, help="autocast dtype")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile every model")
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed iterations per model and mode (default: 2 on CPU, 5 on CUDA)",
    )
    p.add_argument(
        "--iters",
        type=int,
        default=None,
        help="iterations per timed repeat (default: 2 on CPU, 10 on CUDA)",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    _add_measurement_options(p)
    _add_data_options(p)
    p.add_argument("--out", default=None, metavar="FILE.csv", help="write rows as CSV")
    p.set_defaults(func=cmd_bench)


def _add_measurement_options(p: argparse.ArgumentParser) -> None:
    """What to measure besides the steps' throughput, and how to count time and threads."""
    p.add_argument(
        "--no-references",
        dest="references",
        action="store_false",
        help="do not measure the reference implementations",
    )
    p.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="skip the peak-memory step",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="device's dense bf16 peak for MFU (default: table by CUDA device name)",
    )
    p.add_argument(
        "--timer",
        choices=["wall", "cpu"],
        default="wall",
        help="wall clock (default), or this process's CPU seconds: on a shared CPU, "
        "with --threads 1, throughput unaffected by other processes' load",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's); 1 gives stable ratios on a shared machine",
    )


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """The optional input-pipeline measurement (`--data`)."""
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="also measure the ImageFolder training pipeline in DIR (or DIR/train)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=4,
        help="data loader worker processes (0: in process)",
    )
    p.add_argument("--data-batches", type=int, default=30, help="timed data batches")
    p.add_argument(
        "--data-preset",
        default="paper",
        help="recipe whose training transform the pipeline runs (default: paper, i.e. "
        "RandAugment and random erasing)",
    )


def command_line(args: argparse.Namespace) -> str:
    """The `roadmap bench` command that reproduces `args` (every option spelt out)."""
    parts = ["roadmap", "bench", "--track", args.track, "--steps", *args.steps]
    for name in ("device", "batch", "image_size", "warmup", "iters", "repeats"):
        parts += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.amp:
        parts += ["--amp", args.amp]
    for flag in ("channels_last", "compile"):
        if getattr(args, flag):
            parts.append(f"--{flag.replace('_', '-')}")
    if not args.references:
        parts.append("--no-references")
    if args.peak_tflops:
        parts += ["--peak-tflops", str(args.peak_tflops)]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.timer != "wall":
        parts += ["--timer", args.timer]
    if args.data:
        parts += ["--data", args.data, "--workers", str(args.workers)]
        parts += ["--data-batches", str(args.data_batches)]
        parts += ["--data-preset", args.data_preset]
    if args.out:
        parts += ["--out", args.out]
    return shlex.join(parts)


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table and write `--out`."""
    cuda = args.device.startswith("cuda")
    if args.warmup is None:
        args.warmup = 5 if cuda else 2
    if args.iters is None:
        args.iters = 10 if cuda else 2
    for name in ("batch", "image_size", "iters", "repeats", "data_batches"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("warmup", "workers"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name} must be >= 0")
    import torch  # here, not at the top: `roadmap --help` imports no torch

    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _bench(args)
    finally:
        torch.set_num_threads(threads)


def _config(args: argparse.Namespace) -> BenchConfig:
    """The measurement settings the options ask for."""
    from experiments.bench.models import BenchConfig

    given = {f.name for f in dataclasses.fields(BenchConfig)} & set(vars(args))
    return BenchConfig(**{name: getattr(args, name) for name in given})


def _bench(args: argparse.Namespace) -> int:
    """The body of `cmd_bench`, with the thread count set."""
    from experiments.bench.data import add_data_bound, check_bench_data, measure_data
    from experiments.bench.measure import run
    from experiments.bench.models import plan

    cfg = _config(args)
    checked = None
    if args.data:  # bad input fails before minutes of model timing, not after
        resolve_recipe(args.data_preset)
        checked = check_bench_data(args.data)
    groups = plan(args.track, args.steps, references=args.references)
    rows = run(groups, cfg, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    first = rows[0]
    print(f"# {command_line(args)}")
    print(
        f"# device: {first['device_name']}; torch {first['torch']}; batch {cfg.batch}, "
        f"{cfg.image_size}px, {first['amp']}, channels_last={cfg.channels_last}, "
        f"compile={cfg.compile}; median of {cfg.repeats} repeats x {cfg.iters} iterations"
        f"; timer: {'process CPU seconds' if cfg.timer == 'cpu' else 'wall clock'}"
    )
    data = None
    if checked is not None:
        data = measure_data(
            checked,
            cfg.image_size,
            cfg.batch,
            args.workers,
            args.data_batches,
            preset=args.data_preset,
        )
        add_data_bound(rows, data["data_img_s"])
    print(format_table(rows))
    if data is not None:
        print(_data_summary(args, data, rows))
    print(
        "train/infer x: ours over the reference, median of per-round ratios (each round "
        "times both back to back); peak MB: one training step (see experiments/bench/measure.py)"
    )
    if args.out:
        write_csv(rows, args.out)
        print(f"wrote {args.out}")
    return 0


def _data_summary(args: argparse.Namespace, data: dict, rows: list[dict]) -> str:
    """The input pipeline's throughput against the models', and which bounds training."""
    slowest = min(rows, key=lambda r: r["train_img_s"])
    fastest = max(rows, key=lambda r: r["train_img_s"])
    lines = [
        f"input pipeline ({data['data_dir']}, {data['images_in_folder']} images, "
        f"{args.workers} workers, {args.data_preset} preset's training transform): "
        f"{data['data_img_s']:.1f} img/s; "
        f"models train at {slowest['train_img_s']:.1f}-{fastest['train_img_s']:.1f} img/s"
        " (each measured alone; in training they share the CPU cores)"
    ]
    lines += [f"  {row['model']}: training is {row['bound']}-bound" for row in rows]
    return "\n".join(lines)
