"""Data: ImageFolder checks, seeded augmentation, resumable order, and the run's loaders.

Every random choice of the input pipeline is a pure function of (run seed, epoch, position):
`EpochSampler` draws each epoch's order from its own generator and can start mid-epoch, and
`SeededDataset` seeds the augmentation of every sample from (seed, epoch, index). So the batches
after a resume are the very batches an uninterrupted run would have seen, with any number of
loader workers. Without `--data` a run trains on the built-in Shapes (experiments/train/shapes.py).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.datasets import ImageFolder

from experiments.recipe import Recipe
from experiments.train.parts import build_transforms
from experiments.train.shapes import BuiltinShapes

IMAGE_EXTENSIONS = tuple(".jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp".split())


# ---- ImageFolder checks ------------------------------------------------------------------------


def validate_data(path: str | os.PathLike) -> dict[str, Any]:
    """Check an ImageNet-layout root (train/ and val/ with the same class folders, none empty).

    Returns {"root": absolute path, "classes": [...]}; any problem is one FileNotFoundError or
    ValueError naming it. Only the first image of each class folder is looked for, so this is
    quick even on ImageNet.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data root {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"data root {root} is not a directory")
    classes: dict[str, list[str]] = {}
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise FileNotFoundError(
                f"data root {root} has no {split}/ folder (expected ImageNet layout: "
                f"{root}/train/<class>/*.jpg and {root}/val/<class>/*.jpg)"
            )
        names = sorted(e.name for e in os.scandir(folder) if e.is_dir())
        if not names:
            raise ValueError(f"{folder} has no class folders")
        empty = [n for n in names if not _has_image(folder / n)]
        if empty:
            shown = ", ".join(empty[:5]) + (
                f" and {len(empty) - 5} more" if len(empty) > 5 else ""
            )
            raise ValueError(
                f"{folder}: {len(empty)} class folder(s) without images "
                f"({', '.join(IMAGE_EXTENSIONS)}): {shown}"
            )
        classes[split] = names
    if classes["train"] != classes["val"]:
        only_train = sorted(set(classes["train"]) - set(classes["val"]))
        only_val = sorted(set(classes["val"]) - set(classes["train"]))
        raise ValueError(
            f"data root {root}: train/ and val/ classes differ "
            f"(only in train: {_few(only_train)}; only in val: {_few(only_val)})"
        )
    return {"root": str(root.resolve()), "classes": classes["train"]}


def _few(names: list[str]) -> str:
    """At most five names, then a count."""
    if not names:
        return "none"
    return ", ".join(names[:5]) + (
        f" and {len(names) - 5} more" if len(names) > 5 else ""
    )


def _has_image(folder: Path) -> bool:
    """Whether `folder` holds at least one image file (searched recursively, stopping early)."""
    for _, _, files in os.walk(folder):
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            return True
    return False


def count_images(folder: str | os.PathLike) -> int:
    """Image files under `folder` (recursively)."""
    return sum(
        f.lower().endswith(IMAGE_EXTENSIONS)
        for _, _, files in os.walk(folder)
        for f in files
    )


# ---- seeded, resumable pipeline ---------------------------------------------------------------


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample's augmentation."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


@contextmanager
def forked_rng(seed: int) -> Iterator[None]:
    """Seed Python's, numpy's and torch's CPU generators; restore their states afterwards."""
    py, npy, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.random.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(th)


class SeededDataset(Dataset):
    """Apply `transform` to `base[index]` with randomness seeded by (seed, epoch, index).

    Indices are (epoch, index) pairs, as `EpochSampler` yields them.
    """

    def __init__(
        self, base: Dataset, transform: Callable[[Any], Any], seed: int
    ) -> None:
        self.base, self.transform, self.seed = base, transform, seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        epoch, index = key
        image, target = self.base[index]
        with forked_rng(_sample_seed(self.seed, epoch, index)):
            return self.transform(image), target


class EpochSampler(Sampler):
    """One rank's (epoch, index) pairs of an epoch, in an order drawn from (seed, epoch).

    Training: a fresh permutation each epoch, cut to `length` samples per rank (whole optimizer
    steps), starting at `start`. Evaluation (`shuffle=False`): every index, in order, split over
    ranks without padding.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        length: int | None = None,
        shuffle: bool = True,
    ) -> None:
        self.size, self.seed, self.rank, self.world = size, seed, rank, world_size
        self.length, self.shuffle = length, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Order of `epoch`, skipping this rank's first `start` samples (resume mid-epoch)."""
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        """The rank's indices of the current epoch (before `start` is skipped)."""
        if not self.shuffle:
            return list(range(self.rank, self.size, self.world))
        g = torch.Generator()
        g.manual_seed(
            int(np.random.SeedSequence([self.seed, self.epoch, 7]).generate_state(1)[0])
        )
        order = torch.randperm(self.size, generator=g).tolist()
        per_rank = self.size // self.world
        mine = order[self.rank :: self.world][:per_rank]
        return mine[: self.length] if self.length is not None else mine

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, i) for i in self.indices()[self.start :]])

    def __len__(self) -> int:
        if not self.shuffle:
            return len(range(self.rank, self.size, self.world))
        per_rank = self.size // self.world
        total = per_rank if self.length is None else min(per_rank, self.length)
        return max(total - self.start, 0)


# ---- datasets and loaders ----------------------------------------------------------------------


def dataset_size(recipe: Recipe, data: str | os.PathLike | None = None) -> int:
    """Training images of one epoch: the built-in dataset's, or the files under data/train."""
    if data is None:
        return recipe.builtin_classes * recipe.builtin_train_per_class
    return count_images(Path(data) / "train")


def datasets(
    recipe: Recipe, data: str | os.PathLike | None
) -> tuple[Dataset, Dataset, dict]:
    """Train and val datasets (untransformed) and a description of them."""
    if data is None:

        def shapes(split: str, per_class: int) -> BuiltinShapes:
            return BuiltinShapes(
                split,
                recipe.builtin_classes,
                per_class,
                recipe.image_size,
                recipe.builtin_seed,
            )

        train = shapes("train", recipe.builtin_train_per_class)
        val = shapes("val", recipe.builtin_val_per_class)
        info = {
            "name": "builtin-shapes",
            "fingerprint": train.fingerprint()[:16] + val.fingerprint()[:16],
        }
    else:
        checked = validate_data(data)
        train = ImageFolder(str(Path(checked["root"]) / "train"))
        val = ImageFolder(str(Path(checked["root"]) / "val"))
        info = {"name": "imagefolder", "root": checked["root"]}
    info.update(
        classes=len(train.classes), train_images=len(train), val_images=len(val)
    )
    return train, val, info


@dataclass
class Loaders:
    """The run's data: loaders, the resumable train sampler and the sizes that follow."""

    train: DataLoader
    val: DataLoader
    sampler: EpochSampler
    info: dict[str, Any]
    steps_per_epoch: int  # optimizer steps per epoch (whole ones; the rest is dropped)


def build_loaders(
    recipe: Recipe, data: str | None, seed: int, rank: int, world: int, accum: int
) -> Loaders:
    """Seeded, resumable train and val loaders of the run's data for this rank."""
    train_set, val_set, info = datasets(recipe, data)
    train_tf, val_tf = build_transforms(recipe)
    batch = recipe.batch_size
    steps = len(train_set) // world // (batch * accum)
    if steps < 1:
        raise ValueError(
            f"{len(train_set)} training images cannot fill one optimizer step of "
            f"{world * batch * accum} images ({world} device(s) x {batch} x {accum})"
        )
    sampler = EpochSampler(len(train_set), seed, rank, world, steps * accum * batch)
    common = {
        "num_workers": recipe.workers,
        "pin_memory": torch.cuda.is_available(),
        "persistent_workers": recipe.workers > 0,
        "generator": torch.Generator(),  # keeps the loaders off the global generator
    }
    train = DataLoader(
        SeededDataset(train_set, train_tf, seed),
        batch_size=batch,
        sampler=sampler,
        **common,
    )
    val_sampler = EpochSampler(len(val_set), seed, rank, world, shuffle=False)
    val = DataLoader(
        SeededDataset(val_set, val_tf, seed),
        batch_size=2 * batch,
        sampler=val_sampler,
        **common,
    )
    return Loaders(train, val, sampler, info, steps)
