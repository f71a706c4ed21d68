"""A run's `config.json`: what defines the run, checked before anything is written, written once.

`run_identity` is the one definition of what makes two configs the same run
(`records.IDENTITY_KEYS`); `roadmap train` (`prepare_run`) and `roadmap sweep` (its plan) both
compare an existing config with it through `identity_diff`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from experiments import records
from experiments.files import check_writable
from experiments.recipe import Recipe, parse_overrides, recipe_from_dict, resolve_recipe
from experiments.train.data import dataset_size, validate_data
from roadmap.steps import get_step


def run_spec(track: str, step: str, recipe: Recipe) -> dict[str, Any]:
    """The step's spec with the recipe's drop path and layer scale, as a dict."""
    spec = get_step(step, track).spec.replace(
        drop_path_rate=recipe.drop_path,
        layer_scale_init=recipe.layer_scale or None,
    )
    return spec.to_dict()


def run_identity(
    track: str,
    step: str,
    seed: int,
    preset: str,
    data_root: str | None = None,
    overrides: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """The `records.IDENTITY_KEYS` of a run's config, every part checked.

    `data_root` is an already validated root (`validate_data(...)["root"]`) or None for the
    built-in dataset. An unknown track, step (with the nearest name), preset or `--set` key,
    or a bad seed is one ValueError.
    """
    get_step(step, track)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    recipe = resolve_recipe(preset, tuple(overrides))
    return {
        "track": track,
        "step": step,
        "seed": seed,
        "preset": preset,
        "overrides": parse_overrides(overrides),
        "data": data_root,
        "spec": run_spec(track, step, recipe),
        "recipe": _jsonable(dataclasses.asdict(recipe)),
    }


def identity_diff(existing: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """How an existing config differs from `wanted` in its identity (None: the same run)."""
    diff = [k for k in records.IDENTITY_KEYS if existing.get(k) != wanted[k]]
    if not diff:
        return None
    return "; ".join(_describe_diff(k, existing.get(k), wanted[k]) for k in diff)


def prepare_run(
    track: str,
    step: str,
    seed: int,
    preset: str,
    out_dir: str | Path,
    data: str | Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
) -> Path:
    """Check the run and write `<out_dir>/config.json` (kept if identical); the run directory.

    Raises ValueError / OSError with one message for an unknown track, step (with the nearest
    name), preset or `--set` key (with the valid ones), a bad seed or data root, an out_dir
    that cannot be written (read-only, full, under a file) or already holds a different run.
    """
    root = None if data is None else validate_data(data)["root"]
    identity = run_identity(track, step, seed, preset, root, overrides)
    _check_builtin_fills_a_step(recipe_from_dict(identity["recipe"]), root)
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    existing = records.read_config(out)
    if existing is not None:
        diff = identity_diff(existing, identity)
        if diff:
            raise ValueError(
                f"{out} already holds a different run ({diff}); choose another --out"
            )
        return out
    check_writable(out, "--out")
    config = {
        **identity,
        "provenance": records.provenance(),
        "created": records.now(),
        "out_dir": str(out),
    }
    records.atomic_write_json(out / records.CONFIG, config)
    return out


def _check_builtin_fills_a_step(recipe: Recipe, root: str | None) -> None:
    """The built-in dataset must fill one optimizer step on one device.

    An ImageFolder is counted when the run starts: counting ImageNet's files takes a while.
    """
    per_step = recipe.batch_size * recipe.accum_steps or recipe.base_batch
    if root is None and dataset_size(recipe, None) < per_step:
        raise ValueError(
            f"the built-in dataset's {dataset_size(recipe, None)} training images cannot fill "
            f"one optimizer step of {per_step}: use --data, or set "
            "recipe.builtin_train_per_class or the batch"
        )


def _describe_diff(key: str, old: Any, new: Any) -> str:
    """`key old -> new`, naming the differing fields of dict values."""
    if isinstance(old, dict) and isinstance(new, dict):
        fields = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        parts = [f"{key}.{f} {old.get(f)!r} -> {new.get(f)!r}" for f in fields[:4]]
        return ", ".join(parts) + (
            f" and {len(fields) - 4} more" if len(fields) > 4 else ""
        )
    return f"{key} {old!r} -> {new!r}"


def _jsonable(value: Any) -> Any:
    """Tuples as lists, recursively (what a JSON round trip gives back)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
