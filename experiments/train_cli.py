"""`roadmap train`: check a run and write its config (`prepare_run`), then train it (`run`).

The front half of a run, also what the sweep launcher calls (re-exported by experiments.train):
checks and config.json, the distributed setup, what a run prints, its result record. The command
checkpoints and exits with status 75 (EX_TEMPFAIL) on SIGUSR2/SIGTERM; the same command resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments import records
from experiments.data import dataset_size, validate_data
from experiments.recipe import PRESETS, Recipe, parse_overrides, resolve_recipe

# config.json keys that define the run; an existing config must match them to be reused.
IDENTITY_KEYS = (
    "track",
    "step",
    "seed",
    "preset",
    "overrides",
    "data",
    "spec",
    "recipe",
)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: checkpointed on a signal; run again to resume


def run_spec(track: str, step: str, recipe: Recipe) -> dict[str, Any]:
    """The step's spec with the recipe's drop path and layer scale, as a dict."""
    from roadmap.steps import get_step

    spec = get_step(step, track).spec.replace(
        drop_path_rate=recipe.drop_path,
        layer_scale_init=recipe.layer_scale or None,
    )
    return spec.to_dict()


def prepare_run(
    track: str,
    step: str,
    seed: int,
    preset: str,
    out_dir: str | Path,
    data: str | Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
) -> Path:
    """Check the run and write `<out_dir>/config.json` (kept if identical); the run directory.

    Raises ValueError / FileNotFoundError with one message for an unknown track, step (with the
    nearest name), preset or `--set` key (with the valid ones), a bad seed or data root, or an
    out_dir that already holds a different run.
    """
    from roadmap.steps import get_step

    get_step(step, track)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    overrides = tuple(overrides)
    recipe = resolve_recipe(preset, overrides)
    root = None if data is None else validate_data(data)["root"]
    # The built-in dataset must fill one optimizer step on one device (an ImageFolder is
    # counted when the run starts: counting ImageNet's files takes a while).
    per_step = recipe.batch_size * recipe.accum_steps or recipe.base_batch
    if root is None and dataset_size(recipe, None) < per_step:
        raise ValueError(
            f"the built-in dataset's {dataset_size(recipe, None)} training images cannot fill "
            f"one optimizer step of {per_step}: use --data, or set "
            "recipe.builtin_train_per_class or the batch"
        )
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    config = {
        "track": track,
        "step": step,
        "seed": seed,
        "preset": preset,
        "overrides": parse_overrides(overrides),
        "data": root,
        "spec": run_spec(track, step, recipe),
        "recipe": _jsonable(dataclasses.asdict(recipe)),
        "provenance": records.provenance(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "out_dir": str(out),
    }
    existing = _read_config(out)
    if existing is not None:
        diff = [k for k in IDENTITY_KEYS if existing.get(k) != config[k]]
        if diff:
            shown = "; ".join(
                _describe_diff(k, existing.get(k), config[k]) for k in diff
            )
            raise ValueError(
                f"{out} already holds a different run ({shown}); choose another --out"
            )
        return out
    records.atomic_write_json(out / records.CONFIG, config)
    return out


def _read_config(out: Path) -> dict[str, Any] | None:
    """The existing config.json of `out`, or None; an unreadable one is an error."""
    try:
        return records.read_json(out / records.CONFIG)
    except ValueError as err:
        raise ValueError(f"{out / records.CONFIG} is not valid JSON ({err})") from None


def _describe_diff(key: str, old: Any, new: Any) -> str:
    """`key: old -> new`, naming the differing fields of dict values."""
    if isinstance(old, dict) and isinstance(new, dict):
        fields = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        parts = [f"{key}.{f} {old.get(f)!r} -> {new.get(f)!r}" for f in fields[:4]]
        return ", ".join(parts) + (
            f" and {len(fields) - 4} more" if len(fields) > 4 else ""
        )
    return f"{key} {old!r} -> {new!r}"


def _jsonable(value: Any) -> Any:
    """Tuples as lists, recursively (what a JSON round trip gives back)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# ---- running -----------------------------------------------------------------------------------


def init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); starts torch.distributed under torchrun or submitit."""
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", 0))
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), local
    launched = int(os.environ.get("WORLD_SIZE", 1)) > 1  # torchrun (or done by hand)
    if not launched and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        import submitit

        with contextlib.suppress(RuntimeError):  # not a Slurm job after all
            env = submitit.helpers.TorchDistributedEnvironment()
            env.export(set_cuda_visible_devices=False)
            local = env.local_rank
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return 0, 1, 0
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", local))


def describe(trainer: Any) -> str:
    """What a trainer is about to train, in three lines."""
    import torch

    t, c, r, st, data = (
        trainer,
        trainer.config,
        trainer.recipe,
        trainer.state,
        trainer.data,
    )
    where = f"resuming {t.resumed_from.name}" if t.resumed_from else "from scratch"
    return (
        f"train {c['track']}/{c['step']} seed {c['seed']} preset {c['preset']} -> {t.run_dir}\n"
        f"  model {t.params / 1e6:.2f}M params, {t.gflops:.3f} GFLOPs at {r.image_size} px; "
        f"{data.info['name']}: {data.info['train_images']} train / {data.info['val_images']} "
        f"val images, {t.num_classes} classes\n"
        f"  {r.epochs} epochs x {t.steps_per_epoch} steps of {t.effective_batch} images "
        f"({t.world} x {r.batch_size} x {t.accum}), peak lr {t.lr:.3g}; {t.device}, "
        f"{torch.get_num_threads()} thread(s); {where} (epoch {st['epoch']}, "
        f"step {st['step_in_epoch']})"
    )


class Preempted(BaseException):  # noqa: N818 - a requested stop, not an error
    """Raised after a signal-triggered checkpoint to leave the training loop."""


def run(run_dir: str | Path, checkpoint_signals: Sequence[int] = ()) -> dict[str, Any]:
    """Train the run in `run_dir` (resuming if it can) and return its result.

    A done run is returned as it is; a failed one trains again from its newest checkpoint, its
    old result kept as result.failed-<n>.json. On any of `checkpoint_signals` the run saves a
    checkpoint and raises `Preempted`. An exception is recorded as a failed result, then raised.
    """
    from experiments.train import Trainer

    run_dir = Path(run_dir)
    result = records.read_json(run_dir / records.RESULT)
    if result is not None and result.get("status") == "done":
        return result
    if result is not None:
        n = 1 + len(list(run_dir.glob("result.failed-*.json")))
        (run_dir / records.RESULT).rename(run_dir / f"result.failed-{n}.json")
    try:
        trainer = Trainer(run_dir)
    except Exception as err:
        record_failure(run_dir, f"{type(err).__name__}: {err}")
        raise

    def on_signal(signum: int, frame: Any) -> None:
        trainer.save_checkpoint(f"signal {signal.Signals(signum).name}")
        raise Preempted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in checkpoint_signals}
    try:
        return trainer.fit()
    except Exception as err:
        trainer.record_failure(f"{type(err).__name__}: {err}")
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _terminal_columns() -> int:
    """Width of the terminal on stderr, 0 where it reports none."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


def progress_bar(trainer: Any) -> Any:
    """A tqdm bar for the rest of the epoch on an interactive terminal (rank 0), else None.

    A terminal that reports no width (`script`, some editors' shells) gets the plain lines: tqdm
    would draw nothing there.
    """
    if not (trainer.main and sys.stderr.isatty() and _terminal_columns() > 0):
        return None
    from tqdm import tqdm

    st = trainer.state
    return tqdm(
        total=trainer.steps_per_epoch,
        initial=st["step_in_epoch"],
        desc=f"epoch {st['epoch'] + 1}/{trainer.recipe.epochs}",
        unit="step",
        leave=False,
        dynamic_ncols=True,
    )


def result_record(trainer: Any, status: str, reason: str | None) -> dict[str, Any]:
    """result.json of a trainer that ends now: `records.RESULT_KEYS`, then more context."""
    import torch

    t, st = trainer, trainer.state
    last = st["last_eval"] or {}
    return {
        "status": status,
        "reason": reason,
        "top1": last.get("top1"),
        "top5": last.get("top5"),
        "best_top1": st["best_top1"],
        "ema_top1": last.get("ema_top1"),
        "params": t.params,
        "gflops": t.gflops,
        "wall_s": t.wall_seconds(),
        "img_s": st["train_images"] * t.world / max(st["train_s"], 1e-9),
        "ema_top5": last.get("ema_top5"),
        "epochs": st["epoch"],
        "iterations": st["global_step"],
        "failed_iteration": st["failed_iteration"],
        "lr": t.lr,
        "effective_batch": t.effective_batch,
        "accum_steps": t.accum,
        "world_size": t.world,
        "device": str(t.device),
        "threads": torch.get_num_threads(),
        "dataset": t.data.info,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


def record_failure(run_dir: str | Path, reason: str, **known: Any) -> None:
    """Write a failed result.json unless the run already has a result."""
    if (Path(run_dir) / records.RESULT).exists():
        return
    result: dict[str, Any] = dict.fromkeys(records.RESULT_KEYS)
    result.update(known, status="failed", reason=reason)
    records.write_result(run_dir, result)


# ---- the command -------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    from roadmap.steps import DEFAULT_TRACK, TRACKS

    p = sub.add_parser(
        "train",
        help="train one roadmap step with a recipe preset and write its run record",
        description="Train one step and write <out>/config.json, log.jsonl and result.json. "
        "Running the same command again resumes from the newest checkpoint (or returns at "
        "once if the run is done).",
    )
    p.add_argument("--step", required=True, help="step name (see `roadmap steps`)")
    p.add_argument("--track", default=DEFAULT_TRACK, choices=list(TRACKS))
    p.add_argument("--preset", default="smoke", choices=list(PRESETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument(
        "--data",
        default=None,
        help="ImageFolder root with train/ and val/ (default: the built-in Shapes dataset)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="recipe.FIELD=VALUE",
        help="override a recipe field (repeatable), e.g. --set recipe.epochs=5",
    )
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Prepare the run, train it; 0 when done, 1 when failed, 75 when checkpointed on a signal."""
    run_dir = prepare_run(
        args.track,
        args.step,
        args.seed,
        args.preset,
        args.out,
        args.data,
        args.overrides,
    )
    done = records.read_json(run_dir / records.RESULT)
    if done is not None and done.get("status") == "done":
        print(
            f"{run_dir} is already done: top-1 {done['top1']:.2f}% ({records.RESULT})"
        )
        return 0
    try:
        result = run(run_dir, checkpoint_signals=(signal.SIGUSR2, signal.SIGTERM))
    except Preempted as stop:
        print(f"stopped by {stop}; run the same command to resume", file=sys.stderr)
        return EXIT_PREEMPTED
    if result["status"] != "done":
        print(f"run failed: {result['reason']}", file=sys.stderr, flush=True)
        return 1
    return 0
