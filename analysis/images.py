"""An image-level interval of each change: a bootstrap over validation images and seeds.

Where every run of a step and of its parent has `predictions.npz` (`experiments.runs.
predictions`) on one dataset (the same fingerprint and labels), each replicate draws the
validation images with replacement (the same draw for both steps: one validation set) and the
seeds with replacement (the common seeds as pairs where there are two or more, as the paired
test does; else each side's own), and takes the difference of the mean top-1 over the drawn
seeds. `image_ci95_low/high` are the 2.5 and 97.5 percentiles of `BOOTSTRAP` replicates from
a fixed seed, so the interval holds the validation set's own sampling error beside the seeds'.
Without predictions on every run of both, NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments.runs.predictions import read_predictions

BOOTSTRAP = 1000  # replicates
RNG_SEED = 0  # one fixed draw, so that reruns give the same interval
IMAGE_COLUMNS = ("image_ci95_low", "image_ci95_high")

Correct = tuple[str, bytes, np.ndarray]  # dataset, labels' bytes, correct (seeds x images)


def _correct(run_dirs: Sequence[str]) -> Correct | None:
    """One step's per-image correctness (one row per run), or None unless every run has it."""
    if not run_dirs:
        return None
    found = [read_predictions(d) for d in run_dirs]
    if any(p is None for p in found):
        return None
    keys = {(p["dataset"], p["label"].tobytes()) for p in found}
    if len(keys) != 1:
        return None
    dataset, labels = keys.pop()
    return dataset, labels, np.stack([p["pred"] == p["label"] for p in found]).astype(np.float32)


def _weights(n_images: int, rng: np.random.Generator) -> np.ndarray:
    """How often each image is drawn in each replicate (BOOTSTRAP x n_images), over n_images."""
    draws = rng.integers(0, n_images, (BOOTSTRAP, n_images))
    flat = (draws + n_images * np.arange(BOOTSTRAP)[:, None]).ravel()
    counts = np.bincount(flat, minlength=BOOTSTRAP * n_images).reshape(BOOTSTRAP, n_images)
    return counts.astype(np.float32) / n_images


def _interval(
    a: np.ndarray, b: np.ndarray, seeds: tuple[list, list], rng: np.random.Generator
) -> tuple[float, float]:
    """The percentile interval of mean(a) - mean(b) over seed draws (a, b: BOOTSTRAP x runs)."""
    mine, theirs = seeds
    common = sorted(s for s in set(mine) & set(theirs) if s is not None)
    if len(common) >= 2:
        a = a[:, [mine.index(s) for s in common]]
        b = b[:, [theirs.index(s) for s in common]]
        pick = rng.integers(0, len(common), (BOOTSTRAP, len(common)))
        pick_a = pick_b = pick
    else:
        pick_a = rng.integers(0, a.shape[1], (BOOTSTRAP, a.shape[1]))
        pick_b = rng.integers(0, b.shape[1], (BOOTSTRAP, b.shape[1]))
    diff = np.take_along_axis(a, pick_a, 1).mean(1) - np.take_along_axis(b, pick_b, 1).mean(1)
    low, high = np.percentile(100.0 * diff, [2.5, 97.5])
    return float(low), float(high)


def _accuracies(correct: dict[str, Correct | None], rng: np.random.Generator) -> dict:
    """Each step's bootstrap accuracies (BOOTSTRAP x runs): one product per number of images."""
    out = {}
    sizes = {c[2].shape[1] for c in correct.values() if c is not None}
    for n in sorted(sizes):
        names = [k for k, c in correct.items() if c is not None and c[2].shape[1] == n]
        stacked = np.concatenate([correct[k][2] for k in names])  # runs x images
        product = _weights(n, rng) @ stacked.T  # one pass over the weights
        ends = np.cumsum([correct[k][2].shape[0] for k in names])
        out |= dict(zip(names, np.split(product, ends[:-1], axis=1), strict=True))
    return out


def image_columns(
    rows: Sequence[Mapping[str, Any]], parents: Sequence[str | None]
) -> dict[str, list[float]]:
    """`IMAGE_COLUMNS` of a staircase: rows with `run_dirs`, `seeds`; NaN where not computable."""
    rng = np.random.default_rng(RNG_SEED)
    correct = {r["step"]: _correct(r.get("run_dirs") or []) for r in rows}
    pairs = [
        (row["step"], parent)
        for row, parent in zip(rows, parents, strict=True)
        if correct[row["step"]] is not None
        and correct.get(parent) is not None
        and correct[row["step"]][:2] == correct[parent][:2]
    ]
    used = {name for pair in pairs for name in pair}
    accuracy = _accuracies({k: c for k, c in correct.items() if k in used}, rng)
    seeds = {r["step"]: list(r["seeds"]) for r in rows}
    found = {
        step: _interval(accuracy[step], accuracy[parent], (seeds[step], seeds[parent]), rng)
        for step, parent in pairs
    }
    out = [found.get(r["step"], (math.nan, math.nan)) for r in rows]
    return {"image_ci95_low": [x[0] for x in out], "image_ci95_high": [x[1] for x in out]}
