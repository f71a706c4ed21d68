"""Whether two configs are the same run: the one rule `train`, `sweep`, `status` and analysis use.

A config is compared on its identity keys (`records.IDENTITY_KEYS`) after `normalised`: a
spec or recipe field added since the run was configured gets its current default (the
dataclass's), so adding a field whose default leaves the model and the recipe as they were
keeps every finished run the same run. Anything else that differs (a changed value, a missing
key, a field removed since) is a difference, said in one line naming it (`run_difference`).
`spec_change` applies the same rule to a run's spec against its step's (or design point's) spec
now: a run whose spec its step no longer trains is stale, and analysis leaves it out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from experiments.recipe import Recipe, recipe_dict
from experiments.runs.records import IDENTITY_KEYS
from roadmap.designs import point_spec
from roadmap.spec import ArchSpec

SHORT = 40  # characters of a value shown in a difference
SHOWN_FIELDS = 4  # differing fields named in a difference, then "and N more"


class _Absent:
    """A key a record does not have (unequal to None, which a record may hold)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


def _json(value: Any) -> Any:
    """`value` as config.json gives it back (tuples as lists)."""
    return json.loads(json.dumps(value, default=str))


@cache
def _defaults() -> dict[str, dict[str, Any]]:
    """Each dataclass section's current defaults, as config.json holds them."""
    return {"spec": _json(ArchSpec().to_dict()), "recipe": _json(recipe_dict(Recipe()))}


def normalised(config: dict[str, Any]) -> dict[str, Any]:
    """The identity keys of `config` (`ABSENT` where missing), as JSON, spec and recipe filled.

    A spec or recipe dict lacks a field only when it was written before the field existed: it
    gets the field's current default.
    """
    out = {k: _json(config[k]) if k in config else ABSENT for k in IDENTITY_KEYS}
    for key, defaults in _defaults().items():
        if isinstance(out[key], dict):
            out[key] = {**defaults, **out[key]}
    return out


def run_difference(
    existing: dict[str, Any],
    wanted: dict[str, Any],
    describe_dataset: Callable[[dict[str, Any] | None, dict[str, Any]], str] | None = None,
) -> str | None:
    """How an existing config differs from `wanted` as a run, in one line; None: the same run.

    Both are `normalised` first; the line names each differing key or field. A dataset that
    differs is said by `describe_dataset` (recorded, wanted) where given (the data check's
    `experiments.data.identity.describe_change`), else by its differing fields.
    """
    old, new = normalised(existing), normalised(wanted)
    diff = [k for k in IDENTITY_KEYS if old[k] != new[k]]
    if not diff:
        return None
    parts = [
        part
        for k in diff
        for part in (
            [describe_dataset(_dict_or_none(old[k]), new[k])]
            if k == "dataset" and describe_dataset and isinstance(new[k], dict)
            else _field_diffs(k, old[k], new[k])
        )
    ]
    return _joined(parts)


def same_run(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the two configs are one run (`run_difference` finds nothing)."""
    return run_difference(existing, wanted) is None


def spec_change(config: dict[str, Any]) -> str | None:
    """How a run's spec differs from what its step (or design point) trains now, or None.

    The recorded spec is `normalised` as `run_difference` does it. An unknown step or design
    point, or a run without a spec, is not judged here.
    """
    recorded = normalised(config)["spec"]
    try:
        now = point_spec(str(config.get("step")), str(config.get("track")))
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(recorded, dict):
        return None
    wanted = _json(now.to_dict())
    return None if recorded == wanted else describe_diff("spec", recorded, wanted)


def describe_diff(key: str, old: Any, new: Any) -> str:
    """`key old -> new`, naming the differing fields of dict values; values cut to `SHORT`."""
    return _joined(_field_diffs(key, old, new))


def _joined(parts: list[str]) -> str:
    """The first `SHOWN_FIELDS` parts, and how many more."""
    more = f" and {len(parts) - SHOWN_FIELDS} more" if len(parts) > SHOWN_FIELDS else ""
    return ", ".join(parts[:SHOWN_FIELDS]) + more


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    """`value` if it is a dict, else None."""
    return value if isinstance(value, dict) else None


def _field_diffs(key: str, old: Any, new: Any) -> list[str]:
    """`key.field old -> new` per differing field of dict values, else `key old -> new`."""
    if isinstance(old, dict) and isinstance(new, dict):
        names = sorted(set(old) | set(new))
        fields = [f for f in names if old.get(f, ABSENT) != new.get(f, ABSENT)]
        return [
            f"{key}.{f} {_short(old.get(f, ABSENT))} -> {_short(new.get(f, ABSENT))}"
            for f in fields
        ]
    return [f"{key} {_short(old)} -> {_short(new)}"]


def _short(value: Any) -> str:
    """`repr(value)`, a dict as its number of fields, anything longer than `SHORT` cut."""
    text = f"{{{len(value)} fields}}" if isinstance(value, dict) and value else repr(value)
    return text if len(text) <= SHORT else text[: SHORT - 3] + "..."
