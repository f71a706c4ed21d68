"""Data: ImageFolder checks, the built-in Shapes dataset, seeded augmentation, resumable order.

Every random choice of the input pipeline is a pure function of (run seed, epoch, position):
`EpochSampler` draws each epoch's order from its own generator and can start mid-epoch, and
`SeededDataset` seeds the augmentation of every sample from (seed, epoch, index). So the batches
after a resume are the very batches an uninterrupted run would have seen, with any number of
loader workers.

The built-in dataset, "Shapes", needs no download: `render_shapes` draws it deterministically
(numpy's frozen RandomState stream) in about a second. Ten classes of shape (disk, ring, square,
frame, triangle, cross, bar, ell, tee, pair), turned by up to 22.5 degrees, of random size,
aspect, place and colour, over a smooth two-tone background with thin line clutter, small dots
and pixel noise. The label depends on the shape only: a model must learn shape, not colour.
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
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

SHAPES = tuple("disk ring square frame triangle cross bar ell tee pair".split())
MAX_ANGLE = np.pi / 8  # shapes turn by up to 22.5 degrees either way
IMAGE_EXTENSIONS = tuple(".jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp".split())


# ---- the built-in dataset ----------------------------------------------------------------------


def _box(
    u: np.ndarray, v: np.ndarray, cu: float, cv: float, hu: float, hv: float
) -> np.ndarray:
    """Signed distance (approximate outside corners) to an axis-aligned box."""
    return np.maximum(np.abs(u - cu) - hu, np.abs(v - cv) - hv)


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (approximate) to an equilateral triangle of circumradius 1."""
    d = -v - 0.5
    for angle in (np.pi / 6, 5 * np.pi / 6):
        d = np.maximum(d, u * np.cos(angle) + v * np.sin(angle) - 0.5)
    return d


# Shape coordinates: the shape fills about [-1, 1]^2; negative inside, positive outside.
_SDF: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "disk": lambda u, v: np.hypot(u, v) - 0.9,
    "ring": lambda u, v: np.abs(np.hypot(u, v) - 0.7) - 0.25,
    "square": lambda u, v: _box(u, v, 0, 0, 0.8, 0.8),
    "frame": lambda u, v: np.abs(_box(u, v, 0, 0, 0.7, 0.7)) - 0.22,
    "triangle": lambda u, v: _triangle(u * 0.9, v * 0.9 - 0.15),
    "cross": lambda u, v: np.minimum(
        _box(u, v, 0, 0, 0.95, 0.27), _box(u, v, 0, 0, 0.27, 0.95)
    ),
    "bar": lambda u, v: _box(u, v, 0, 0, 0.95, 0.3),
    "ell": lambda u, v: np.minimum(
        _box(u, v, -0.6, 0, 0.28, 0.95), _box(u, v, 0, 0.67, 0.88, 0.28)
    ),
    "tee": lambda u, v: np.minimum(
        _box(u, v, 0, -0.67, 0.95, 0.28), _box(u, v, 0, 0.1, 0.28, 0.85)
    ),
    "pair": lambda u, v: np.minimum(np.hypot(u - 0.55, v), np.hypot(u + 0.55, v)) - 0.4,
}


def render_shapes(
    count: int, classes: int, size: int, seed: int | list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Images (count, size, size, 3) uint8 and balanced labels (count,) of the Shapes dataset."""
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(
            f"the built-in dataset has 2 to {len(SHAPES)} classes, not {classes}"
        )
    rs = np.random.RandomState(seed)
    labels = np.arange(count) % classes
    rs.shuffle(labels)
    half = size / 2
    radius = rs.uniform(0.25, 0.42, count) * size  # half-extent of the shape, pixels
    aspect = np.exp(rs.uniform(-0.2, 0.2, count))
    angle = rs.uniform(-MAX_ANGLE, MAX_ANGLE, count)
    room = np.maximum(half - radius * 0.85, 0)
    cx = half + rs.uniform(-1, 1, count) * room
    cy = half + rs.uniform(-1, 1, count) * room
    # Polarity: a dark background and a light shape, or the reverse.
    dark = rs.rand(count) < 0.5
    bg_low = np.where(dark, 0.0, 0.5)[:, None, None, None]
    bg = bg_low + 0.5 * rs.rand(count, 3, 3, 3)  # 3x3 colour grid per image, upsampled
    fg = (0.5 - bg_low[:, :, :, 0]) + 0.5 * rs.rand(count, 1, 3)

    grid = np.arange(size) + 0.5
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = (cos * dx + sin * dy) / (radius * aspect)[:, None, None]
    v = (-sin * dx + cos * dy) / (radius / aspect)[:, None, None]
    dist = np.empty((count, size, size))
    for k in range(classes):
        mask = labels == k
        dist[mask] = _SDF[SHAPES[k]](u[mask], v[mask])
    alpha = np.clip(0.5 - dist * radius[:, None, None], 0, 1)[..., None]

    image = _upsample(bg, size)
    # Clutter under the shape: three thin lines of random colour, and up to two small dots.
    ends = rs.uniform(0, size, (count, 3, 4))
    tones = rs.rand(count, 3, 3)
    for j in range(3):
        d = _segment_distance(grid, ends[:, j])
        line = np.clip(1.0 - np.abs(d - 0.2), 0, 1)[..., None] * 0.8
        image = image * (1 - line) + tones[:, j, None, None, :] * line
    dots = rs.uniform(0, size, (count, 2, 2))
    shown = rs.rand(count, 2) < 0.5
    for j in range(2):
        d = np.hypot(
            grid[None, None, :] - dots[:, j, None, None, 0],
            grid[None, :, None] - dots[:, j, None, None, 1],
        )
        dot = (np.clip(1.6 - d, 0, 1) * shown[:, j, None, None])[..., None]
        image = image * (1 - dot) + fg[:, :, None, :] * dot
    image = image * (1 - alpha) + fg[:, :, None, :] * alpha
    image = image + rs.normal(0, 0.04, image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), labels.astype(np.int64)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of (n, gh, gw, 3) colour grids to (n, size, size, 3)."""
    n, gh, gw, _ = grid.shape
    pos_y = (np.arange(size) + 0.5) / size * (gh - 1)
    pos_x = (np.arange(size) + 0.5) / size * (gw - 1)
    y0 = np.minimum(pos_y.astype(int), gh - 2)
    x0 = np.minimum(pos_x.astype(int), gw - 2)
    wy = (pos_y - y0)[None, :, None, None]
    wx = (pos_x - x0)[None, None, :, None]
    top = grid[:, y0][:, :, x0] * (1 - wx) + grid[:, y0][:, :, x0 + 1] * wx
    bottom = grid[:, y0 + 1][:, :, x0] * (1 - wx) + grid[:, y0 + 1][:, :, x0 + 1] * wx
    return top * (1 - wy) + bottom * wy


def _segment_distance(grid: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Distance of every pixel centre to one segment per image, ends (n, 4) = x0, y0, x1, y1."""
    x0, y0, x1, y1 = (ends[:, i, None, None] for i in range(4))
    px, py = grid[None, None, :], grid[None, :, None]
    vx, vy = x1 - x0, y1 - y0
    t = np.clip(
        ((px - x0) * vx + (py - y0) * vy) / np.maximum(vx * vx + vy * vy, 1e-9), 0, 1
    )
    return np.hypot(px - x0 - t * vx, py - y0 - t * vy)


class BuiltinShapes(Dataset):
    """One split of the built-in Shapes dataset: (PIL image, label) pairs, held in memory."""

    def __init__(
        self, split: str, classes: int, per_class: int, size: int, seed: int
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        stream = [seed, 0 if split == "train" else 1]
        self.images, self.targets = render_shapes(
            classes * per_class, classes, size, stream
        )
        self.classes = list(SHAPES[:classes])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index]), int(self.targets[index])

    def fingerprint(self) -> str:
        """SHA-256 of the pixels and labels (the same on every machine and run)."""
        import hashlib

        h = hashlib.sha256(self.images.tobytes())
        h.update(self.targets.tobytes())
        return h.hexdigest()


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


def dataset_size(recipe: Any, data: str | os.PathLike | None = None) -> int:
    """Training images of one epoch: the built-in dataset's, or the files under data/train."""
    if data is None:
        return recipe.builtin_classes * recipe.builtin_train_per_class
    return count_images(Path(data) / "train")


def datasets(
    recipe: Any, data: str | os.PathLike | None
) -> tuple[Dataset, Dataset, dict]:
    """Train and val datasets (untransformed) and a description of them."""
    if data is None:
        args = (recipe.builtin_classes, recipe.image_size, recipe.builtin_seed)
        train = BuiltinShapes(
            "train", args[0], recipe.builtin_train_per_class, *args[1:]
        )
        val = BuiltinShapes("val", args[0], recipe.builtin_val_per_class, *args[1:])
        info = {
            "name": "builtin-shapes",
            "fingerprint": train.fingerprint()[:16] + val.fingerprint()[:16],
        }
    else:
        from torchvision.datasets import ImageFolder

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
    recipe: Any, data: str | None, seed: int, rank: int, world: int, accum: int
) -> Loaders:
    """Seeded, resumable train and val loaders of the run's data for this rank."""
    train_set, val_set, info = datasets(recipe, data)
    from experiments.recipe import build_transforms

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
