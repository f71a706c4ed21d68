"""Data: the run's datasets, seeded augmentation, resumable order, and its loaders.

An ImageFolder root is listed by experiments/data/listing.py (the run checks, by the data
check's cached content digests, that it is still the dataset its config recorded) and loaded
by experiments/data/images.py: a file that breaks after the check fails the run with its path
in the reason, or, with `recipe.skip_bad_images`, is replaced by the next good sample and
recorded.

Every random choice of the input pipeline is a pure function of (run seed, epoch, position):
`EpochSampler` draws each epoch's order from its own generator and can start mid-epoch, and
`SeededDataset` seeds the augmentation of every sample from (seed, epoch, index). So the batches
after a resume are the very batches an uninterrupted run would have seen, with any number of
loader workers. Without `--data` a run trains on the built-in Shapes (experiments/train/shapes.py).
"""

from __future__ import annotations

import json
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

from experiments.data.check import LEAVABLE, check_root, dataset_identity, refusal
from experiments.data.dataset import ListedImages
from experiments.data.identity import (
    builtin_identity,
    class_names,
    class_problems,
    describe_change,
)
from experiments.data.images import BadImageError
from experiments.data.listing import list_root
from experiments.recipe import Recipe
from experiments.runs import records
from experiments.train.parts import build_transforms
from experiments.train.shapes import SHAPES, BuiltinShapes
from experiments.train.signals import blocked, worker_signals
from roadmap.errors import UserError

SUBSTITUTES = 16  # a bad file's sample is taken from the next good one among this many
SKIPPED = "skipped-image"  # the events.jsonl line of a file skipped during training


# ---- ImageFolder checks ------------------------------------------------------------------------


def validate_data(path: str | os.PathLike) -> dict[str, Any]:
    """Check the layout of an ImageNet-style root, without decoding (see `roadmap data check`).

    train/ and val/ with the same class folders, none empty, none hidden, nested, linked in a
    loop or broken: the walk's problems (experiments/data/listing.py). Returns {"root": absolute
    path, "classes": [...]}; any problem is one FileNotFoundError or UserError naming it.
    """
    listing = list_root(path)
    problems = listing.all_problems() + class_problems(listing, set())
    if problems:
        leavable = all(p.kind in LEAVABLE for p in problems)
        raise UserError(refusal(listing.root, problems, can_skip=leavable))
    return {
        "root": str(listing.root.resolve()),
        "classes": class_names(listing.splits["train"]),
    }


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

    Indices are (epoch, index) pairs, as `EpochSampler` yields them. Items are (image, target,
    bad): a sample whose file fails to load (`BadImageError`) is replaced by the next one that
    loads, and `bad` lists the failures as JSON ("" when none), for `Batches` to raise or
    record in the main process: an error raised in a loader worker would reach the run as a
    worker's traceback.
    """

    def __init__(self, base: Dataset, transform: Callable[[Any], Any], seed: int) -> None:
        self.base, self.transform, self.seed = base, transform, seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int, str]:
        epoch, index = key
        bad: list[list[str]] = []
        for step in range(min(SUBSTITUTES, len(self))):
            try:
                image, target = self.base[(index + step) % len(self)]
                break
            except BadImageError as err:
                bad.append([err.path, err.kind, err.detail])
        else:
            raise BadImageError(*bad[0])
        with forked_rng(_sample_seed(self.seed, epoch, index)):
            return self.transform(image), target, json.dumps(bad) if bad else ""


class Batches:
    """The (images, targets) batches of a loader of `SeededDataset` items.

    A file that failed to load raises its `BadImageError` here, in the main process, or, with
    `skip`, is passed to `report` (its sample was replaced by the next good one).
    """

    def __init__(
        self,
        loader: DataLoader,
        skip: bool,
        report: Callable[[BadImageError], None],
    ) -> None:
        self.loader, self.skip, self.report = loader, skip, report

    def __len__(self) -> int:
        return len(self.loader)

    def indices(self) -> list[int]:
        """The dataset index of each sample of the batches, in their order (the sampler's)."""
        return [index for _, index in self.loader.sampler]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        with blocked():  # the loader's workers start here (the first time)
            batches = iter(self.loader)
        for images, targets, bad in batches:
            for failures in filter(None, bad):
                for path, kind, detail in json.loads(failures):
                    if not self.skip:
                        raise BadImageError(path, kind, detail)
                    self.report(BadImageError(path, kind, detail))
            yield images, targets


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
        g.manual_seed(int(np.random.SeedSequence([self.seed, self.epoch, 7]).generate_state(1)[0]))
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
    """Training images of one epoch: the built-in dataset's, or those listed in data/train."""
    if data is None:
        return recipe.builtin_classes * recipe.builtin_train_per_class
    return list_root(data).splits["train"].images


def builtin_dataset(recipe: Recipe) -> dict[str, Any]:
    """The `dataset` identity of a run on the built-in data (a function of the recipe)."""
    return builtin_identity(
        list(SHAPES[: recipe.builtin_classes]),
        recipe.builtin_classes * recipe.builtin_train_per_class,
        recipe.builtin_classes * recipe.builtin_val_per_class,
    )


def datasets(recipe: Recipe, config: dict[str, Any]) -> tuple[Dataset, Dataset, dict]:
    """Train and val datasets (untransformed) of a run's config, and a description of them.

    An ImageFolder root is checked again (`roadmap data check`, cached) and must still be the
    dataset the config recorded (its classes and content fingerprint); the files the config
    left out stay out.
    """
    if config["data"] is None:
        train, val = _builtin(recipe, "train"), _builtin(recipe, "val")
        info = {
            "name": "builtin-shapes",
            "fingerprint": train.fingerprint()[:16] + val.fingerprint()[:16],
        }
        found = builtin_dataset(recipe)
    else:
        check = check_root(config["data"])  # cached: decodes only what changed
        listing = check.listing
        left = [e["path"] for e in config.get("excluded_images") or []]
        found = dataset_identity(check, set(left))
        train, val = (ListedImages(listing.splits[s], set(left)) for s in ("train", "val"))
        info = {"name": "imagefolder", "root": config["data"], "excluded": left}
    if found != config.get("dataset"):
        where = config["data"] or "the built-in dataset"
        raise UserError(
            f"{where}: {describe_change(config.get('dataset'), found)}, since this run was "
            "configured; train it on the data it started with, or start a new run"
        )
    info.update(classes=len(train.classes), train_images=len(train), val_images=len(val))
    return train, val, info


def _builtin(recipe: Recipe, split: str) -> BuiltinShapes:
    """One split of the built-in dataset as the recipe sizes it."""
    per_class = recipe.builtin_train_per_class if split == "train" else recipe.builtin_val_per_class
    return BuiltinShapes(
        split, recipe.builtin_classes, per_class, recipe.image_size, recipe.builtin_seed
    )


@dataclass
class Loaders:
    """The run's data: loaders, the resumable train sampler and the sizes that follow."""

    train: Batches
    val: Batches
    sampler: EpochSampler
    info: dict[str, Any]
    steps_per_epoch: int  # optimizer steps per epoch (whole ones; the rest is dropped)


def build_loaders(
    recipe: Recipe,
    config: dict[str, Any],
    run_dir: Path,
    rank: int,
    world: int,
    accum: int,
) -> Loaders:
    """Seeded, resumable train and val loaders of the run's data for this rank."""
    seed = int(config["seed"])
    train_set, val_set, info = datasets(recipe, config)
    train_tf, val_tf = build_transforms(recipe)
    batch = recipe.batch_size
    steps = len(train_set) // world // (batch * accum)
    if steps < 1:
        raise UserError(
            f"{len(train_set)} training images cannot fill one optimizer step of "
            f"{world * batch * accum} images ({world} device(s) x {batch} x {accum})"
        )
    sampler = EpochSampler(len(train_set), seed, rank, world, steps * accum * batch)
    common = {
        "num_workers": recipe.workers,
        "pin_memory": torch.cuda.is_available(),
        "persistent_workers": recipe.workers > 0,
        "generator": torch.Generator(),  # keeps the loaders off the global generator
        "worker_init_fn": worker_signals,  # workers never run the trainer's signal handlers
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
    report = _skip_reporter(run_dir, info, rank)
    skip = recipe.skip_bad_images
    return Loaders(Batches(train, skip, report), Batches(val, skip, report), sampler, info, steps)


def _skip_reporter(
    run_dir: Path, info: dict[str, Any], rank: int
) -> Callable[[BadImageError], None]:
    """Record a file skipped during training: in `info["skipped"]` (result.json) and events.

    The list starts with what earlier jobs of the run skipped (their `events.jsonl` lines).
    """
    info["skipped"] = sorted(
        {e["path"] for e in records.read_events(run_dir) if e.get("event") == SKIPPED}
    )

    def report(err: BadImageError) -> None:
        if err.path not in info["skipped"]:
            info["skipped"].append(err.path)
            print(f"skipped a bad image (recipe.skip_bad_images): {err}", flush=True)
            records.append_event(
                run_dir,
                SKIPPED,
                path=err.path,
                problem=err.kind,
                detail=err.detail,
                rank=rank,
            )

    return report
