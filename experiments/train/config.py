"""A run's `config.json`: what defines the run, checked before anything is written, written once.

`run_config` is the config a run gets (everything but when and where it was written): its
identity (`run_identity`, the keys `records.IDENTITY_KEYS` compares) and the files its dataset
leaves out. `roadmap train` (`prepare_run`) writes it, `roadmap recipe` prints it, and both
`prepare_run` and `roadmap sweep` (its plan) compare an existing config with it through
`experiments.runs.same_run.run_difference`, which refuses any difference, in one line naming
it (a spec or recipe field added since the run was configured takes its default). `run_data`
is the one check of a run's dataset: `roadmap data check` (cached), the class map and
fingerprint (experiments/data/identity.py), and the files `recipe.skip_bad_images` leaves out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from experiments.data.check import check_root, dataset_identity, usable
from experiments.data.identity import describe_change
from experiments.recipe import (
    Recipe,
    parse_overrides,
    recipe_dict,
    resolve_recipe,
    run_recipe,
)
from experiments.runs import records
from experiments.runs.files import check_writable
from experiments.runs.same_run import run_difference
from roadmap.designs import point_spec
from roadmap.errors import UserError

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
    """Check the run's dataset; one UserError for its problems, unless the recipe skips them.

    An ImageFolder root is checked by `roadmap data check` (every image not in the check's
    cache decoded, progress to `out`); the built-in dataset needs no check.
    """
    if data is None:
        from experiments.train.data import builtin_dataset  # torch: only when a run is made

        identity = builtin_dataset(recipe)
        images = identity["train"]["images"]
        return RunData(None, identity, [], images, f"data: built-in Shapes, {images} train images")
    check = check_root(data, out=out)
    ok = usable(check, recipe.skip_bad_images)
    identity = dataset_identity(check, {p.path for p in ok.excluded})
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
    raise UserError(
        f"{'the built-in dataset' if builtin else 'the dataset'}'s {images} training images "
        f"cannot fill one optimizer step of {per_step} images ({world} device(s)): {where}"
    )


def check_seed(seed: Any) -> None:
    """A seed is a non-negative int."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"seed must be a non-negative int, got {seed!r}")


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
    or `--set` key, or a bad seed is one UserError.
    """
    spec = point_spec(step, track)  # a step, or a design point (roadmap.designs)
    check_seed(seed)
    recipe = run_recipe(resolve_recipe(preset, tuple(overrides)), track)
    if dataset is None:
        if data_root is not None:
            raise UserError(f"{data_root}: check it first (run_data) for its identity")
        from experiments.train.data import builtin_dataset

        dataset = builtin_dataset(recipe)
    return {
        "track": track,
        "step": step,
        "seed": seed,
        "preset": preset,
        "overrides": parse_overrides(overrides),
        "data": data_root,
        "dataset": dataset,
        "spec": spec.to_dict(),  # the step's, unchanged
        "recipe": recipe_dict(recipe),
    }


def run_config(
    track: str,
    step: str,
    seed: int,
    preset: str,
    checked: RunData,
    overrides: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """The config.json of a run on the `checked` data, less when and where it is written.

    Its identity (`run_identity`) and the files the data check leaves out; `prepare_run`
    writes it with its provenance, time and folder, and `roadmap recipe` prints it.
    """
    identity = run_identity(track, step, seed, preset, checked.root, overrides, checked.identity)
    return {**identity, "excluded_images": checked.excluded}


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

    Raises UserError / OSError with one message for an unknown track, step (with the nearest
    name), preset or `--set` key (with the valid ones), a bad seed, a data root with problems
    (`run_data`; `checked`: its result, when the caller has it already), too few images for one
    optimizer step, an out_dir that cannot be written (read-only, full, under a file) or that
    already holds a different run.
    """
    point_spec(step, track)  # a step, or a design point (roadmap.designs)
    check_seed(seed)
    recipe = run_recipe(resolve_recipe(preset, tuple(overrides)), track)
    checked = checked or run_data(recipe, data)
    config = run_config(track, step, seed, preset, checked, overrides)
    check_fills_a_step(recipe, checked.train_images, 1, checked.root is None)
    from experiments.train.parts import check_parts  # timm: only when a run is made

    check_parts(recipe, len(checked.identity["classes"]))
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    existing = records.read_config(out) if write else _written_by_rank0(out)
    if existing is None:
        check_writable(out, "--out")
        config |= {"provenance": records.provenance(), "created": records.now()}
        records.atomic_write_json(out / records.CONFIG, config | {"out_dir": str(out)})
        return out
    diff = run_difference(existing, config, describe_change)
    if diff:
        raise UserError(f"{out} already holds a different run ({diff}); choose another --out")
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
