"""The built-in dataset, "Shapes": needs no download, drawn deterministically in memory.

`render_shapes` draws it from numpy's frozen RandomState stream in about a second: ten classes
of shape (disk, ring, square, frame, triangle, cross, bar, ell, tee, pair), turned by up to 22.5
degrees, of random size, aspect, place and colour, over a smooth two-tone background with thin
line clutter, small dots and pixel noise. The label depends on the shape only: a model must
learn shape, not colour. `BuiltinShapes` keeps what it drew in the project's cache folder
(experiments/data/cache.py `cache_dir()`, `shapes/`), keyed by the arguments, numpy's version and
this file's text, with the SHA-256 of the arrays checked on load; the next run of a sweep reads
it (milliseconds) instead of drawing it again. A cache that cannot be read or written is skipped.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from experiments.data.cache import cache_dir
from experiments.runs.files import atomic_file
from roadmap.errors import UserError

SHAPES = tuple("disk ring square frame triangle cross bar ell tee pair".split())
MAX_ANGLE = np.pi / 8  # shapes turn by up to 22.5 degrees either way


def _box(u: np.ndarray, v: np.ndarray, cu: float, cv: float, hu: float, hv: float) -> np.ndarray:
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
    "cross": lambda u, v: np.minimum(_box(u, v, 0, 0, 0.95, 0.27), _box(u, v, 0, 0, 0.27, 0.95)),
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
        raise UserError(f"the built-in dataset has 2 to {len(SHAPES)} classes, not {classes}")
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

    image = _clutter(_upsample(bg, size), rs, grid, fg)
    image = image * (1 - alpha) + fg[:, :, None, :] * alpha
    image = image + rs.normal(0, 0.04, image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), labels.astype(np.int64)


def _clutter(
    image: np.ndarray, rs: np.random.RandomState, grid: np.ndarray, fg: np.ndarray
) -> np.ndarray:
    """Clutter under the shape: three thin lines of random colour, and up to two small dots."""
    count, size = image.shape[0], image.shape[1]
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
    return image


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
    t = np.clip(((px - x0) * vx + (py - y0) * vy) / np.maximum(vx * vx + vy * vy, 1e-9), 0, 1)
    return np.hypot(px - x0 - t * vx, py - y0 - t * vy)


def cached_shapes(
    count: int, classes: int, size: int, seed: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """`render_shapes`, read from the cache when an intact copy is there (module docstring)."""
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    args = json.dumps([count, classes, size, seed, np.__version__, code])
    path = cache_dir() / "shapes" / f"{hashlib.sha256(args.encode()).hexdigest()[:24]}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            images, labels = saved["images"], saved["labels"]
            if str(saved["digest"]) == _digest(images, labels):
                return images, labels
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # none, or damaged
        pass
    images, labels = render_shapes(count, classes, size, seed)
    try:
        with atomic_file(path, "wb") as f:
            np.savez(f, images=images, labels=labels, digest=_digest(images, labels))
    except OSError:  # a read-only or full cache folder: this run draws, as without a cache
        pass
    return images, labels


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the pixels and labels (what `BuiltinShapes.fingerprint` hashes)."""
    h = hashlib.sha256(images.tobytes())
    h.update(labels.tobytes())
    return h.hexdigest()


class BuiltinShapes(Dataset):
    """One split of the built-in Shapes dataset: (PIL image, label) pairs, held in memory."""

    def __init__(self, split: str, classes: int, per_class: int, size: int, seed: int) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        stream = [seed, 0 if split == "train" else 1]
        self.images, self.targets = cached_shapes(classes * per_class, classes, size, stream)
        self.classes = list(SHAPES[:classes])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index]), int(self.targets[index])

    def fingerprint(self) -> str:
        """SHA-256 of the pixels and labels (the same on every machine and run)."""
        return _digest(self.images, self.targets)
