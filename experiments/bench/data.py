"""Throughput of the ImageFolder training pipeline, to compare with the model's (`--data`)."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import torch

from experiments.data.check import DataCheck, check_split, usable
from experiments.data.dataset import ListedImages
from experiments.data.listing import IMAGE_EXTENSIONS
from experiments.recipe import resolve_recipe
from experiments.train.parts import build_transforms
from experiments.train.signals import worker_signals
from roadmap.errors import UserError


def check_bench_data(root: str | Path) -> DataCheck:
    """Check the training folder of `--data` (ROOT/train, or ROOT itself) before measuring.

    `roadmap data check` on it (cached): a folder that is not an ImageFolder, or one with a bad
    file that would stop the measurement halfway, is one UserError naming the files.
    """
    root = Path(root).expanduser()
    train_dir = root / "train" if (root / "train").is_dir() else root
    if not train_dir.is_dir():
        raise FileNotFoundError(f"--data {root}: no such directory")
    check = check_split(train_dir)
    split = next(iter(check.listing.splits.values()))
    if not split.classes or not split.images:
        raise UserError(
            f"--data {root}: {train_dir} is not an ImageFolder (class folders with "
            f"{', '.join(IMAGE_EXTENSIONS)} images)"
        )
    usable(check, skip=False)
    return check


def measure_data(
    data: str | Path | DataCheck,
    image_size: int = 224,
    batch: int = 32,
    workers: int = 4,
    batches: int = 30,
    warmup_batches: int = 5,
    preset: str = "paper",
) -> dict[str, Any]:
    """Images/s of the ImageFolder training pipeline of `preset`'s recipe over `batches`.

    The recipe's training transform (timm's `create_transform`: decoding, RandomResizedCrop,
    flip, RandAugment or colour jitter, normalisation, random erasing), at `image_size`, runs in
    `workers` processes; the first `warmup_batches` (worker start-up) are not timed. Mixup and
    CutMix act on whole batches in the training loop and are not part of it. Measured alone:
    in training the pipeline's workers and the model share the machine's CPU cores. `data`
    is a `--data` folder or its `check_bench_data`.
    """
    recipe = dataclasses.replace(resolve_recipe(preset), image_size=image_size)
    check = data if isinstance(data, DataCheck) else check_bench_data(data)
    split = next(iter(check.listing.splits.values()))
    dataset = ListedImages(split, transform=build_transforms(recipe)[0])
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=False,
        # A small folder is cycled through several times: keep the workers between passes.
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
        worker_init_fn=worker_signals,  # as the trainer's loaders (experiments/train/signals.py)
    )
    return {
        "data_dir": str(split.folder),
        "preset": preset,
        "images_in_folder": len(dataset),
        "workers": workers,
        "batch": batch,
        "batches": batches,
        "data_img_s": _images_per_second(loader, warmup_batches, batches),
    }


def _images_per_second(
    loader: torch.utils.data.DataLoader, warmup_batches: int, batches: int
) -> float:
    """Images/s over `batches` after `warmup_batches`, cycling over a small folder."""
    total_batches = warmup_batches + batches
    timed_images, t0, seen = 0, None, 0
    while seen < total_batches:  # cycle over a small folder as often as needed
        for images, _ in loader:
            if seen == warmup_batches:
                t0 = time.perf_counter()
            if seen >= warmup_batches:
                timed_images += images.shape[0]
            seen += 1
            if seen >= total_batches:
                break
    seconds = time.perf_counter() - t0 if t0 is not None else math.nan
    return timed_images / seconds if seconds > 0 else math.nan


def add_data_bound(rows: list[dict[str, Any]], data_img_s: float) -> None:
    """Annotate each row with the pipeline's images/s and which of the two bounds training."""
    for row in rows:
        row["data_img_s"] = data_img_s
        row["bound"] = "data" if data_img_s < row["train_img_s"] else "model"
