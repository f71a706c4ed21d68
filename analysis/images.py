"""An image-level interval of each change: seeds and validation images as two crossed samples.

Where every run of a step and of its parent has `predictions.npz` (`experiments.runs.
predictions`) on one dataset (the same fingerprint and labels), the change is the difference of
mean top-1 over runs and images (the common seeds as pairs where there are two or more, as the
paired test does; else each side's own runs), and its variance is that of a mean over a random
sample of seeds crossed with a random sample of images (`crossed_interval`). `image_ci95_low/
high` is the Student t interval on the Satterthwaite degrees of freedom, so the interval holds
the validation set's own sampling error beside the seeds'. Without predictions on every run of
both, NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from experiments.runs.predictions import read_predictions

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


def _seed_part(x: np.ndarray) -> tuple[float, float, float, float]:
    """One side's seed variance of a run's mean, the residual mean square and their df.

    x: runs x images. var(row means) estimates sigma_seed^2 + sigma_resid^2 / images; the
    residual mean square of the two-way layout estimates sigma_resid^2.
    """
    n, m = x.shape
    rows = x.mean(1)
    resid = x - rows[:, None] - x.mean(0)[None, :] + x.mean()
    return float(rows.var(ddof=1)), float((resid**2).sum() / ((n - 1) * (m - 1))), n - 1, m


def crossed_interval(a: np.ndarray, b: np.ndarray, paired: bool) -> tuple[float, float]:
    """The 95% t interval of mean(a) - mean(b) over seeds and images (a, b: runs x images).

    The ANOVA estimate of a crossed design's variance sigma_seed^2 / runs + sigma_image^2 /
    images + sigma_resid^2 / (runs images): per side var(run means) / runs (the seeds, with
    the residual in them), plus var(image means of the difference) / images less each side's
    MS_resid / (images runs) (the images alone; floored at 0 only where the sum would not be
    positive). Paired: one side, the per-seed differences. A side of one run borrows the other
    side's variances (equal variances); one run a side: the images' part only, the residual in
    it (t on images - 1 df).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    sides = [a - b] if paired else [a, b]
    parts = [_seed_part(x) if x.shape[0] >= 2 else None for x in sides]
    known = [p for p in parts if p is not None]
    d = np.mean(a, 0) - np.mean(b, 0)  # each image's difference of the mean over runs
    images = len(d)
    seeds, resid = [], 0.0  # (variance, df) of each side's seed part; the residual to take off
    for x, part in zip(sides, parts, strict=True):
        if known:
            var_r, ms_e, df_r, m = part or known[0]
            seeds.append((var_r / x.shape[0], df_r))
            resid += ms_e / (m * x.shape[0])
    v_img = float(d.var(ddof=1)) / images
    image = v_img - resid if seeds else v_img  # unbiased, so it may be below 0
    var = sum(v for v, _ in seeds) + image
    if var <= 0:  # the seeds' part small by chance: the images' part floored at 0
        image = max(image, 0.0)
        var = sum(v for v, _ in seeds) + image
    if var <= 0:
        return math.nan, math.nan
    terms = [*seeds, (image, images - 1)]  # Satterthwaite's degrees of freedom over them
    df = var**2 / sum(v**2 / k for v, k in terms)
    half = stats.t.ppf(0.975, df) * math.sqrt(var)
    est = float(np.mean(a) - np.mean(b))
    return 100.0 * (est - half), 100.0 * (est + half)


def _interval(a: np.ndarray, b: np.ndarray, seeds: tuple[list, list]) -> tuple[float, float]:
    """The interval of one change (a, b: runs x images), paired on two or more common seeds."""
    mine, theirs = seeds
    common = sorted(s for s in set(mine) & set(theirs) if s is not None)
    if len(common) >= 2:
        a = a[[mine.index(s) for s in common]]
        b = b[[theirs.index(s) for s in common]]
    return crossed_interval(a, b, paired=len(common) >= 2)


def image_columns(
    rows: Sequence[Mapping[str, Any]], parents: Sequence[str | None]
) -> dict[str, list[float]]:
    """`IMAGE_COLUMNS` of a staircase: rows with `run_dirs`, `seeds`; NaN where not computable."""
    correct = {r["step"]: _correct(r.get("run_dirs") or []) for r in rows}
    pairs = [
        (row["step"], parent)
        for row, parent in zip(rows, parents, strict=True)
        if correct[row["step"]] is not None
        and correct.get(parent) is not None
        and correct[row["step"]][:2] == correct[parent][:2]
    ]
    seeds = {r["step"]: list(r["seeds"]) for r in rows}
    found = {
        step: _interval(correct[step][2], correct[parent][2], (seeds[step], seeds[parent]))
        for step, parent in pairs
    }
    out = [found.get(r["step"], (math.nan, math.nan)) for r in rows]
    return {"image_ci95_low": [x[0] for x in out], "image_ci95_high": [x[1] for x in out]}
