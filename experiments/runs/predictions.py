"""A run's per-image predictions on its validation set: `predictions.npz` in the run folder.

Arrays, one entry per validation image in the dataset's fixed order: `label` (int64), `pred`
(int64, the top-1 class), `top5` (bool, the label among the five highest); `ema_pred` and
`ema_top5` too when the EMA weights were evaluated; `dataset` (0-d str), the fingerprint of the
dataset they were made on (`experiments.data.identity.describe`'s digest, or the built-in one's).
Written atomically, like every record.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from experiments.runs.files import atomic_file

PREDICTIONS = "predictions.npz"
ARRAYS = ("label", "pred", "top5")  # always present
EMA_ARRAYS = ("ema_pred", "ema_top5")  # present when EMA was evaluated


def write_predictions(
    run_dir: str | os.PathLike, arrays: dict[str, np.ndarray], dataset: str | None
) -> Path:
    """Write `arrays` (ARRAYS, optionally EMA_ARRAYS) and the dataset fingerprint; the path."""
    missing = [k for k in ARRAYS if k not in arrays]
    unknown = sorted(set(arrays) - set(ARRAYS) - set(EMA_ARRAYS))
    if missing or unknown:
        raise ValueError(f"predictions: missing {missing}, unknown {unknown}")
    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"predictions: arrays of different lengths {sizes}")
    path = Path(run_dir) / PREDICTIONS
    out = {
        k: np.asarray(v, dtype=bool if k.endswith("top5") else np.int64) for k, v in arrays.items()
    }
    with atomic_file(path, "wb") as f:
        np.savez_compressed(f, dataset=np.array(dataset or ""), **out)
    return path


def read_predictions(run_dir: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The run's predictions (`dataset` as a str), or None when it has none."""
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in data.files}
    out["dataset"] = str(out.get("dataset", ""))
    return out


def accuracy(predictions: dict[str, np.ndarray], ema: bool = False) -> float:
    """Top-1 (%) of the stored predictions (`ema`: of the EMA weights)."""
    pred = predictions["ema_pred" if ema else "pred"]
    return 100.0 * float(np.mean(pred == predictions["label"]))
