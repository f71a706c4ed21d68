"""What makes a bar: one step's current spec, one recipe and one dataset (docs/one-bar.md).

`collect` groups a track's runs by these three and never pools across them: a run whose
recorded spec is no longer what its step trains (the step table changed since) is left out
with the fields that differ (`experiments.runs.same_run.spec_change`: the rule `roadmap sweep`
and `roadmap train` judge a run by), and so is a run on another dataset than the
drawn one (`dataset_key`, `dataset_label`, `other_dataset`). The recipe's part is
`analysis.variants` (`other_recipe`). The rules' shared pieces live here too: a reason for some
runs (`reason_where`) and the commonest value, a tie being an error (`most_frequent`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.variants import recipe_json_diff
from experiments.data.identity import digest
from roadmap.designs import point_spec
from roadmap.errors import UserError
from roadmap.steps import step_names


def known_names(found: pd.Series, track: str) -> set[str]:
    """The step names of `track` and the valid design points among `found` (`roadmap.designs`).

    A run of a design point enters the selection as a step's run does (`roadmap effects`
    uses it); the staircase draws steps only.
    """
    names = set(step_names(track))
    for name in set(found.dropna().astype(str)) - names:
        try:
            point_spec(name, track)
        except ValueError:
            continue
        names.add(name)
    return names


def dataset_key(config: dict[str, Any]) -> str:
    """A short fingerprint of the run's recorded dataset (its classes and content); "" if none.

    `experiments.data.identity.digest`: the string a run's `predictions.npz` stores too.
    """
    return digest(config.get("dataset"))


def dataset_label(config: dict[str, Any]) -> str:
    """The run's dataset in words: `3 classes, fingerprint ab12cd34ef56` (or not recorded)."""
    dataset = config.get("dataset")
    if not isinstance(dataset, dict):
        return "dataset not recorded"
    classes = dataset.get("classes") or []
    return f"{len(classes)} classes, fingerprint {dataset_key(config)}"


def count(n: int, word: str) -> str:
    """`1 run`, `3 runs`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def listing(counts: pd.Series, word: str = "run") -> str:
    """`paper (48 runs), smoke (3 runs)`: most first, then by name."""
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    return ", ".join(f"{k} ({count(int(v), word)})" for k, v in counts.items())


def most_frequent(counts: pd.Series, what: str, how: str) -> str:
    """The most frequent value of `counts`; a tie is an error saying `how` to choose."""
    top = counts[counts == counts.max()]
    if len(top) > 1:
        raise UserError(f"runs of several {what}: {listing(counts)}; {how}")
    return str(top.index[0])


def reason_where(where: pd.Series, reason: str | pd.Series) -> pd.Series:
    """`reason` (one for all, or one per run) for the runs `where` is true, NaN elsewhere."""
    return pd.Series(reason, index=where.index, dtype=object).where(where)


def other_recipe(
    runs: pd.DataFrame, pool: pd.Series, preset: str, mixed: bool
) -> tuple[pd.Series, str]:
    """`other recipe` for runs in `pool` not of its commonest recipe; the keys that differ.

    The keys: `key=value` per recipe, the drawn one first ("" for one recipe). A tie is an
    error naming them, unless `mixed` (every recipe pooled).
    """
    counts = runs.loc[pool, "recipe_json"].value_counts()
    if len(counts) < 2:  # one recipe or none: nothing to leave out
        return reason_where(pool & False, "other recipe"), ""
    labels = dict(zip(counts.index, recipe_json_diff(list(counts.index)), strict=True))
    how = "pass --allow-mixed to pool them"
    keep = counts.index[0]
    if not mixed:
        label = most_frequent(counts.rename(labels), f"recipes in preset {preset!r}", how)
        keep = next(k for k, v in labels.items() if v == label)
    diff = "; ".join([labels[keep], *[labels[v] for v in counts.index if v != keep]])
    return reason_where(pool & (runs["recipe_json"] != keep), "other recipe"), diff


def other_dataset(runs: pd.DataFrame, pool: pd.Series) -> tuple[pd.Series, list[str]]:
    """`other dataset` for runs in `pool` not on its commonest dataset; a note naming both.

    Reference and staircase runs count together: the reference row is on the drawn data too.
    """
    counts = runs.loc[pool, "dataset_label"].value_counts()
    if len(counts) < 2:
        return reason_where(pool & False, "other dataset"), []
    how = "move the runs of all but one into another --root"
    keep = most_frequent(counts, "datasets", how)
    other = pool & (runs["dataset_label"] != keep)
    reason = runs["dataset_label"].map(lambda label: f"other dataset: {label} vs {keep} drawn")
    note = f"datasets differ: {listing(counts)}; the one with most runs is drawn"
    return reason_where(other, reason), [note]
