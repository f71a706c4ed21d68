"""A run's per-image predictions on its validation set: `predictions.npz` in the run folder.

Arrays, one entry per validation image in the dataset's fixed order (index i: the i-th image of
the val split, as the run's loader lists it, the same for any number of ranks): `label` (int64,
the class the image was scored against), `pred` (int64, the top-1 class), `top5` (bool, the
label among the five highest); `ema_pred` and `ema_top5` too when the EMA weights were
evaluated; `dataset` (0-d str), the fingerprint of the dataset they were made on:
`experiments.data.identity.digest` of the run's config.json `dataset` identity (ImageFolder or
built-in; "" for a config that records none), the string `analysis.bars.dataset_key` gives;
`epoch` (0-d int, written by training), the 1-based epoch whose evaluation they are.
Written atomically, like every record, by each evaluation of a run (experiments/train/evaluate.py);
a result that reports another one removes them (`drop_unmatched`), so `accuracy` and `top5` of a
finished run's predictions are its result.json `top1` / `top5` (`ema_top1` / `ema_top5`) exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from experiments.runs import records
from experiments.runs.files import atomic_file

PREDICTIONS = "predictions.npz"
ARRAYS = ("label", "pred", "top5")  # always present
EMA_ARRAYS = ("ema_pred", "ema_top5")  # present when EMA was evaluated


def write_predictions(
    run_dir: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    dataset: str | None,
    epoch: int | None = None,
) -> Path:
    """Write `arrays` (ARRAYS, optionally EMA_ARRAYS), the dataset fingerprint and the epoch."""
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
    if epoch is not None:
        out["epoch"] = np.array(epoch, dtype=np.int64)
    with atomic_file(path, "wb") as f:
        np.savez_compressed(f, dataset=np.array(dataset or ""), **out)
    return path


def read_predictions(run_dir: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The run's predictions (`dataset` a str, `epoch` an int), or None when it has none."""
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in data.files}
    out["dataset"] = str(out.get("dataset", ""))
    if "epoch" in out:
        out["epoch"] = int(out["epoch"])
    return out


def accuracy(predictions: dict[str, np.ndarray], ema: bool = False) -> float:
    """Top-1 (%) of the stored predictions (`ema`: of the EMA weights)."""
    pred = predictions["ema_pred" if ema else "pred"]
    return _percent(pred == predictions["label"])


def top5(predictions: dict[str, np.ndarray], ema: bool = False) -> float:
    """Top-5 (%) of the stored predictions (`ema`: of the EMA weights)."""
    return _percent(predictions["ema_top5" if ema else "top5"])


def _percent(hits: np.ndarray) -> float:
    """100 x hits / images, in the evaluation's own arithmetic (so equal to its numbers)."""
    return 100 * float(np.count_nonzero(hits)) / float(len(hits))


def matches(predictions: dict[str, np.ndarray], result: dict[str, Any], epoch: int | None) -> bool:
    """Whether `predictions` are those of the evaluation `result` reports, that of `epoch`.

    Their `epoch` is `epoch` (None: no evaluation reported), and their top-1 and top-5 (and
    EMA's, present just when the result has them) are the result's, exactly.
    """
    if predictions.get("epoch") != epoch:
        return False
    for ema, key in ((False, ""), (True, "ema_")):
        wanted = (result.get(f"{key}top1"), result.get(f"{key}top5"))
        if f"{key}pred" not in predictions:
            if wanted != (None, None):
                return False
        elif wanted != (accuracy(predictions, ema), top5(predictions, ema)):
            return False
    return True


def reported_epoch(run_dir: str | os.PathLike) -> int | None:
    """The epoch of the run's last evaluation in log.jsonl (the one its result reports), or None."""
    evaluated = [row["epoch"] for row in records.read_log(run_dir) if "top1" in row]
    return evaluated[-1] if evaluated else None


def drop_unmatched(run_dir: str | os.PathLike, result: dict[str, Any]) -> bool:
    """Delete the run's predictions.npz unless it `matches` `result`; whether it was deleted.

    For a result whose last evaluation is not the newest one written (a run that failed after
    evaluating, before the epoch's end was recorded): better no predictions than others.
    """
    found = read_predictions(run_dir)
    if found is None or matches(found, result, reported_epoch(run_dir)):
        return False
    (Path(run_dir) / PREDICTIONS).unlink(missing_ok=True)
    return True
