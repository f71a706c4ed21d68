"""`roadmap design show`: a design's points, with what each changes and its measured cost."""

from __future__ import annotations

import argparse
import csv
import math
import sys
from functools import cache
from typing import Any

from roadmap.designs import DESIGNS, FRACTIONS, Point, design_base, design_points, lost_points
from roadmap.fractions import make_fraction
from roadmap.select import split_words
from roadmap.spec import ArchSpec
from roadmap.steps import DEFAULT_TRACK, TRACKS

COLUMNS = ("point", "valid", "reason", "same_as_step", "changes", "levels", "params", "gflops")


def add_design_options(p: argparse.ArgumentParser, positional: bool = False) -> None:
    """The options that choose a design: its name, factors, base step and fraction."""
    if positional:
        p.add_argument("design", choices=list(DESIGNS), help="the design")
    else:
        p.add_argument(
            "--design",
            default=None,
            choices=list(DESIGNS),
            help="run a design's points instead of --steps (see `roadmap design show`)",
        )
    p.add_argument(
        "--factors", default=None, metavar="STEP,STEP", help="the factorial's steps (2 or more)"
    )
    p.add_argument(
        "--base",
        default=None,
        metavar="STEP",
        help="the step the design starts from (default: the endpoint; add-one-in: the first)",
    )
    p.add_argument(
        "--fraction",
        type=int,
        default=1,
        choices=list(FRACTIONS),
        help="factorial: 1 all points (default); 2**p pyDOE3's 2^(k-p) of resolution IV or more",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `design` command and its `show` subcommand."""
    p = sub.add_parser("design", help="designs beyond the path: leave-one-out, factorial, ...")
    inner = p.add_subparsers(dest="design_command", required=True, metavar="SUBCOMMAND")
    p.set_defaults(design_subcommands=inner)  # others add theirs (experiments.sweep.design_plan)
    show = inner.add_parser(
        "show",
        help="list a design's points: what each changes, params and GFLOPs",
        description="List the points of a design on a track: each point's name, whether its "
        "spec builds (and why not), the step it equals (its runs are that step's), the fields "
        "it changes against the base, and params and GFLOPs measured from the built model.",
    )
    add_design_options(show, positional=True)
    show.add_argument("--track", default=DEFAULT_TRACK, choices=list(TRACKS))
    show.add_argument("--format", default="text", choices=["text", "csv"])
    show.set_defaults(func=cmd_show)


def _changes(point: Point) -> str:
    """`field old -> new; ...` against the base."""
    return "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in point.changed().items())


@cache
def point_cost(spec: ArchSpec) -> tuple[int, float]:
    """Params and GFLOPs of the built model (`roadmap.table.measure`), once per spec."""
    from roadmap.table import measure

    return measure(spec)


def level_text(levels: dict[str, Any]) -> str:
    """`a=+1 b=-1 kernel_size=5`: two-level codes signed, a multi-level factor's value as is."""
    return " ".join(f"{k}={v:+d}" if isinstance(v, int) else f"{k}={v}" for k, v in levels.items())


def design_rows(points: list[Point]) -> list[dict[str, Any]]:
    """One row per point (`COLUMNS`); an invalid point has no params or GFLOPs."""
    rows = []
    for point in points:
        params, gflops = point_cost(point.spec) if point.spec is not None else (None, None)
        levels = level_text(dict(point.levels))
        rows.append(
            {
                "point": point.name,
                "valid": point.valid,
                "reason": point.reason,
                "same_as_step": point.same_as_step or "",
                "changes": _changes(point),
                "levels": levels,
                "params": params,
                "gflops": None if gflops is None else round(gflops, 6),
            }
        )
    return rows


def cmd_show(args: argparse.Namespace) -> int:
    """Print the design's points as a text table or CSV."""
    from roadmap.table import align_columns

    factors = split_words(args.factors or "")
    points = design_points(args.design, args.track, factors, args.base, args.fraction)
    rows = design_rows(points)
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return 0
    head = ["point", "valid", "same as", "changes", "params", "GFLOPs"]
    body = [
        [
            r["point"],
            "yes" if r["valid"] else "no (below)",
            r["same_as_step"],
            r["changes"] + (f" [{r['levels']}]" if r["levels"] else ""),
            "" if r["params"] is None else f"{r['params']:,}",
            "" if r["gflops"] is None else f"{r['gflops']:.3f}",
        ]
        for r in rows
    ]
    print(align_columns(head, body, right={4, 5}))
    for r in rows:
        if not r["valid"]:
            print(f"invalid {r['point']}: {r['reason']}")
    base = design_base(args.design, args.track, args.base)
    print(
        f"{len(rows)} points of design {args.design!r} on {args.track}"
        + (f", base {base} (its runs are the comparison)" if base else "")
        + "; GFLOPs: multiply-adds at 224x224, measured from the built model."
    )
    lost = lost_points(points)
    if lost:
        print(lost)
    if args.fraction > 1:
        fraction = make_fraction(len(factors), int(math.log2(args.fraction)))
        print(
            f"2^({fraction.k}-{fraction.p}) of resolution {fraction.resolution}, generators "
            f"{' '.join(fraction.generators)} (a, b, ... = the factors in order); aliases: "
            + "; ".join(fraction.aliases(factors))
        )
    return 0
