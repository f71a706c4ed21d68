"""`roadmap steps` and `roadmap check-endpoints` (`--family`: the ConvNeXt family too)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from roadmap.steps import DEFAULT_TRACK, TRACKS


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `steps` and `check-endpoints` subcommands."""
    p = sub.add_parser("steps", help="list a track's steps with measured params and GFLOPs")
    p.add_argument("--track", default=DEFAULT_TRACK, choices=list(TRACKS))
    p.add_argument("--format", default="table", choices=["table", "csv", "json"])
    p.set_defaults(func=cmd_steps)

    p = sub.add_parser(
        "check-endpoints",
        help="convert torchvision/timm reference weights into each track's endpoints and "
        "compare logits",
    )
    p.add_argument("--track", choices=list(TRACKS), help="only this track (default: both)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--family",
        action="store_true",
        help="also the ConvNeXt family's models that timm builds (S, L, XL; roadmap.family)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest max_abs_diff of logits that passes (default 1e-4)",
    )
    p.set_defaults(func=cmd_check_endpoints)


def cmd_steps(args: argparse.Namespace) -> int:
    """Print the step table of one track."""
    from roadmap.table import step_table

    rows = step_table(args.track)
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "changes": json.dumps(row["changes"], sort_keys=True)})
    else:
        print(format_table(rows, args.track))
    return 0


def format_table(rows: list[dict[str, Any]], track: str) -> str:
    """Aligned text table of `roadmap steps` rows, this project's assumptions marked "*"."""
    from roadmap.assumptions import assumption
    from roadmap.table import align_columns

    head = ["#", "step", "group", "path", "params", "GFLOPs", "paper", "diff"]
    body = [
        [
            str(r["index"]),
            r["step"] + (" *" if r["assumed"] else ""),
            r["group"],
            "yes" if r["on_path"] else "side",
            f"{r['params']:,}",
            f"{r['gflops']:.3f}",
            "" if r["paper_gflops"] is None else f"{r['paper_gflops']:.2f}",
            "" if r["diff"] is None else f"{r['diff']:+.3f}",
        ]
        for r in rows
    ]
    notes = [f"* {r['step']}: {r['assumed']}" for r in rows if r["assumed"]]
    if every := assumption(track):
        notes.append(f"* every step of {track}: {every}")
    return "\n".join(
        [
            align_columns(head, body, right={0, 4, 5, 6, 7}),
            "GFLOPs: multiply-adds at 224x224, measured from the built model; paper: Table 10/11.",
            *notes,
        ]
    )


def cmd_check_endpoints(args: argparse.Namespace) -> int:
    """One JSON line per endpoint pair; exit 1 if any max_abs_diff is above the tolerance."""
    from roadmap.endpoint_check import check_endpoint, check_member
    from roadmap.endpoints import ENDPOINTS
    from roadmap.family import FAMILY

    checks: list[Callable[[], dict[str, Any]]] = [
        partial(check_endpoint, e, args.image_size, args.batch, args.seed)
        for e in ENDPOINTS
        if not args.track or e.track == args.track
    ]
    if args.family:
        ends = {(e.track, e.reference) for e in ENDPOINTS}  # T and B: checked above
        checks += [
            partial(check_member, m, args.image_size, args.batch, args.seed)
            for m in FAMILY
            if m.reference
            and (m.track, m.reference) not in ends
            and (not args.track or m.track == args.track)
        ]
    worst = 0.0
    for check in checks:
        result = check()
        result["ok"] = result["max_abs_diff"] <= args.tolerance
        worst = max(worst, result["max_abs_diff"])
        print(json.dumps(result), flush=True)
    return 0 if worst <= args.tolerance else 1
