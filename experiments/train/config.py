"""A run's `config.json`: what defines the run, checked before anything is written, written once.

`run_identity` is the one definition of what makes two configs the same run
(`records.IDENTITY_KEYS`); `roadmap train` (`prepare_run`) and `roadmap sweep` (its plan) both
compare an existing config with it through `identity_diff`. `run_data` is the one check of a
run's dataset that both run first: `roadmap data check` (cached), the class map and fingerprint
(experiments/data/identity.py), and the files `recipe.skip_bad_images` leaves out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from experiments.data.check import check_root, usable
from experiments.data.identity import describe_change, imagefolder_identity
from experiments.recipe import (
    Recipe,
    completed_recipe_dict,
    parse_overrides,
    recipe_dict,
    resolve_recipe,
)
from experiments.runs import records
from experiments.runs.files import check_writable
from experiments.train.data import builtin_dataset
from experiments.train.parts import check_parts
from roadmap.designs import point_spec
from roadmap.spec import ArchSpec

RANK0_CONFIG_WAIT_S = 300.0  # how long another rank waits for rank 0's config.json


@dataclass
class RunData:
    """A run's dataset, checked: what its config records of it and what it trains on."""

    root: str | None  # absolute ImageFolder root; None: the built-in data
    identity: dict[str, Any]  # config.json "dataset": class map and fingerprint
    excluded: list[dict[str, str]]  # config.json "excluded_images": path, problem
    train_images: int  # after the files left out
    summary: str  # one line saying so


def run_data(recipe: Recipe, data: str | Path | None, out: IO[str] | None = None) -> RunData:
    """Check the run's dataset; one ValueError for its problems, unless the recipe skips them.

    An ImageFolder root is checked by `roadmap data check` (every image not in the check's
    cache decoded, progress to `out`); the built-in dataset needs no check.
    """
    if data is None:
        identity = builtin_dataset(recipe)
        images = identity["train"]["images"]
        return RunData(None, identity, [], images, f"data: built-in Shapes, {images} train images")
    check = check_root(data, out=out)
    ok = usable(check, recipe.skip_bad_images)
    identity = imagefolder_identity(check.listing, {p.path for p in ok.excluded})
    excluded = [{"path": p.path, "problem": p.line()} for p in ok.excluded]
    summary = (
        f"data: {check.listing.root}, {len(ok.classes)} classes, {ok.images['train']} train / "
        f"{ok.images['val']} val images (checked: {check.decoded} decoded, {check.cached} "
        f"from the cache)"
        + (f"; {len(excluded)} bad file(s) or folder(s) left out" if excluded else "")
        + "".join(f"; {w}" for w in check.warnings)
    )
    root = str(check.listing.root.resolve())
    return RunData(root, identity, excluded, ok.images["train"], summary)


def check_fills_a_step(recipe: Recipe, images: int, world: int, builtin: bool) -> None:
    """The training images must fill one optimizer step on `world` devices."""
    per_step = (
        world * recipe.batch_size * recipe.accum_steps if recipe.accum_steps else recipe.base_batch
    )
    if images >= per_step:
        return
    where = (
        "use --data, or set recipe.builtin_train_per_class or the batch"
        if builtin
        else "set recipe.batch_size and recipe.accum_steps (or recipe.base_batch)"
    )
    raise ValueError(
        f"{'the built-in dataset' if builtin else 'the dataset'}'s {images} training images "
        f"cannot fill one optimizer step of {per_step} images ({world} device(s)): {where}"
    )


def run_spec(track: str, step: str, recipe: Recipe) -> dict[str, Any]:
    """The step's (or design point's) spec with the recipe's drop path and layer scale."""
    spec = point_spec(step, track).replace(
        drop_path_rate=recipe.drop_path,
        layer_scale_init=recipe.layer_scale or None,
    )
    return spec.to_dict()


def check_seed(seed: Any) -> None:
    """A seed is a non-negative int."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def run_identity(
    track: str,
    step: str,
    seed: int,
    preset: str,
    data_root: str | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    dataset: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `records.IDENTITY_KEYS` of a run's config, every part checked.

    `data_root` and `dataset` are a checked ImageFolder's (`run_data(...)`: root, identity),
    or None for the built-in dataset. An unknown track, step (with the nearest name), preset
    or `--set` key, or a bad seed is one ValueError.
    """
    point_spec(step, track)  # a step, or a design point (roadmap.designs)
    check_seed(seed)
    recipe = resolve_recipe(preset, tuple(overrides))
    if dataset is None:
        if data_root is not None:
            raise ValueError(f"{data_root}: check it first (run_data) for its identity")
        dataset = builtin_dataset(recipe)
    return {
        "track": track,
        "step": step,
        "seed": seed,
        "preset": preset,
        "overrides": parse_overrides(overrides),
        "data": data_root,
        "dataset": dataset,
        "spec": run_spec(track, step, recipe),
        "recipe": recipe_dict(recipe),
    }


def identity_diff(existing: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """How an existing config differs from `wanted` in its identity (None: the same run).

    A config written before the dataset was part of a run's identity (no `dataset` key) is
    compared on the rest: there is nothing recorded to compare the data with, and its runs
    must keep working (`record_dataset` then records it).
    """
    keys = [k for k in records.IDENTITY_KEYS if k != "dataset" or "dataset" in existing]
    existing = _completed(existing)
    diff = [k for k in keys if existing.get(k) != wanted[k]]
    if not diff:
        return None
    return "; ".join(
        describe_change(existing.get(k), wanted[k])
        if k == "dataset"
        else _describe_diff(k, existing.get(k), wanted[k])
        for k in diff
    )


def prepare_run(
    track: str,
    step: str,
    seed: int,
    preset: str,
    out_dir: str | Path,
    data: str | Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    checked: RunData | None = None,
    write: bool = True,
) -> Path:
    """Check the run and write `<out_dir>/config.json` (kept if identical); the run directory.

    `write=False` (the other ranks of a `torchrun` run) checks the same and writes nothing: it
    waits for the config that rank 0 writes, and compares it.

    Raises ValueError / OSError with one message for an unknown track, step (with the nearest
    name), preset or `--set` key (with the valid ones), a bad seed, a data root with problems
    (`run_data`; `checked`: its result, when the caller has it already), too few images for one
    optimizer step, an out_dir that cannot be written (read-only, full, under a file) or that
    already holds a different run.
    """
    point_spec(step, track)  # a step, or a design point (roadmap.designs)
    check_seed(seed)
    recipe = resolve_recipe(preset, tuple(overrides))
    checked = checked or run_data(recipe, data)
    identity = run_identity(track, step, seed, preset, checked.root, overrides, checked.identity)
    check_fills_a_step(recipe, checked.train_images, 1, checked.root is None)
    check_parts(recipe, len(checked.identity["classes"]))
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    existing = records.read_config(out) if write else _written_by_rank0(out)
    if existing is None:
        check_writable(out, "--out")
        config = {**identity, "excluded_images": checked.excluded}
        config |= {"provenance": records.provenance(), "created": records.now()}
        records.atomic_write_json(out / records.CONFIG, config | {"out_dir": str(out)})
        return out
    diff = identity_diff(existing, identity)
    if diff:
        raise ValueError(f"{out} already holds a different run ({diff}); choose another --out")
    if write:
        record_dataset(out, existing, checked)
    return out


def _written_by_rank0(out: Path) -> dict[str, Any]:
    """The run's config once rank 0 has written it (another rank writes nothing of a run)."""
    timeout_s = RANK0_CONFIG_WAIT_S
    deadline = time.monotonic() + timeout_s
    while (config := records.read_config(out)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank 0 wrote no {out / records.CONFIG} in {timeout_s:.0f} s")
        time.sleep(0.2)
    return config


def _completed(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with its recipe and spec as this version writes them.

    Fields added since are at their defaults, which keep the old behaviour; a recipe or spec
    that does not parse stays as written.
    """
    out = dict(config)
    try:
        if isinstance(config.get("recipe"), dict):
            out["recipe"] = completed_recipe_dict(config["recipe"])
        if isinstance(config.get("spec"), dict):
            out["spec"] = ArchSpec.from_dict(config["spec"]).to_dict()
    except (ValueError, TypeError):
        pass  # compared as written: the difference is then shown
    return out


def record_dataset(out: Path, existing: dict[str, Any], checked: RunData) -> None:
    """Record the dataset in a config written before it was part of a run's identity.

    From then on the run checks its data like any other; `dataset_recorded` says when the
    record was added (the data the run trained on before that was not checked).
    """
    if "dataset" in existing:
        return
    check_writable(out, "--out")
    upgraded = {
        **existing,
        "dataset": checked.identity,
        "excluded_images": checked.excluded,
        "dataset_recorded": records.now(),
    }
    records.atomic_write_json(out / records.CONFIG, upgraded)


def _describe_diff(key: str, old: Any, new: Any) -> str:
    """`key old -> new`, naming the differing fields of dict values."""
    if isinstance(old, dict) and isinstance(new, dict):
        fields = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        parts = [f"{key}.{f} {old.get(f)!r} -> {new.get(f)!r}" for f in fields[:4]]
        return ", ".join(parts) + (f" and {len(fields) - 4} more" if len(fields) > 4 else "")
    return f"{key} {old!r} -> {new!r}"
