"""`roadmap recipe`: print a run's resolved recipe and spec before the run exists.

It prints `run_config`, what `roadmap train` writes into the run's config.json (less when and
where it is written): the preset with its `--set` overrides and the track's drop path resolved,
and the step's spec. Nothing is written, and whether the data fills one optimizer step (which
`roadmap train` checks too) is not asked.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from experiments.recipe import resolve_recipe
from experiments.train.train_command import add_recipe_overrides
from roadmap.steps import DEFAULT_TRACK, get_step


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `recipe` subcommand."""
    p = sub.add_parser(
        "recipe",
        help="print the resolved recipe and spec of a run, as its config.json will hold them",
        description="Print the config of a run of --step with --preset and --set overrides: "
        "the JSON that `roadmap train` writes into its config.json (less when and where), or "
        "one `key value` line per field. Nothing is written.",
    )
    p.add_argument("--step", required=True, help="step name (see `roadmap steps`)")
    p.add_argument("--track", default=DEFAULT_TRACK, help="track (see `roadmap steps`)")
    p.add_argument("--preset", default="smoke", help="recipe preset (see docs/recipe.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data",
        default=None,
        help="ImageFolder root, checked as `roadmap train` checks it (default: built-in data)",
    )
    p.add_argument("--format", default="text", choices=["text", "json"])
    add_recipe_overrides(p)
    p.set_defaults(func=cmd_recipe)


def cmd_recipe(args: argparse.Namespace) -> int:
    """Print the run's config; an unknown preset, track, step or key raises (one line, 2)."""
    overrides = tuple(args.overrides)
    get_step(args.step, args.track)
    from experiments.train.config import run_config, run_data  # torch: at use, not at --help

    checked = run_data(resolve_recipe(args.preset, overrides), args.data)
    config = run_config(args.track, args.step, args.seed, args.preset, checked, overrides)
    if args.format == "json":
        print(json.dumps(config, indent=1, sort_keys=True, default=str))
    else:
        lines = sorted(_flat(config).items())
        width = max(len(key) for key, _ in lines)
        print("\n".join(f"{key.ljust(width)}  {value}" for key, value in lines))
    return 0


def _flat(obj: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts as `a.b` keys; every other value as JSON."""
    out: dict[str, str] = {}
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = json.dumps(value, default=str)
    return out
