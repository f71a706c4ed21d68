"""`roadmap data check ROOT`: decode every image of an ImageFolder root and list its problems."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.data.cache import ENV, cache_dir
from experiments.data.check import DataCheck, check_root, default_workers
from experiments.data.identity import class_names
from roadmap.errors import UserError

NOTE_EXAMPLES = 3  # paths shown per note


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `data` command and its `check` subcommand."""
    p = sub.add_parser("data", help="check an ImageFolder dataset before training on it")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    c = data_sub.add_parser(
        "check",
        help="decode every image of ROOT/train and ROOT/val, list every problem",
        description="List ROOT/train and ROOT/val as torchvision's ImageFolder does and "
        "decode every image as training will (PIL, then RGB), in worker processes. Prints "
        "per split its classes, images and bytes, then every problem with its path; exit "
        "status 0 when clean, 1 with problems. Results are cached outside ROOT (by path, size "
        "and modification time of every file), so checking an unchanged dataset again costs "
        "a directory walk. `roadmap train` and `roadmap sweep` run the same check.",
    )
    c.add_argument("root", type=Path, metavar="ROOT")
    c.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"decoding processes (default: the cores this process may use, here "
        f"{default_workers()})",
    )
    c.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"where results are cached (default ${ENV}, else $XDG_CACHE_HOME/"
        f"convnext-roadmap, else ~/.cache/convnext-roadmap; here {cache_dir()})",
    )
    c.add_argument("--no-cache", action="store_true", help="decode everything, cache nothing")
    c.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """Check the root, print the report; 0 clean, 1 with problems."""
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be >= 1")
    cache = False if args.no_cache else (args.cache_dir or True)
    check = check_root(args.root, workers=args.workers, cache=cache)
    print(format_check(check))
    return 1 if check.problems else 0


def format_check(check: DataCheck) -> str:
    """The report: a line per split, the notes, every problem with its path, the verdict."""
    listing = check.listing
    lines = [
        f"data check {listing.root}: {check.decoded:,} image(s) decoded, {check.cached:,} "
        f"from the cache, in {check.seconds:.1f} s"
    ]
    for name, split in listing.splits.items():
        ignored = f"; {split.ignored:,} other file(s) ignored" if split.ignored else ""
        lines.append(
            f"  {name}/: {len(class_names(split)):,} classes, {split.images:,} images, "
            f"{_size(split.bytes)}{ignored}"
        )
    lines += [f"  warning: {w}" for w in check.warnings]
    if check.notes:
        lines.append("notes (what the RGB conversion does; not problems):")
        for note, paths in sorted(check.notes.items()):
            shown = ", ".join(paths[:NOTE_EXAMPLES])
            more = ", ..." if len(paths) > NOTE_EXAMPLES else ""
            lines.append(f"  {note}: {len(paths):,} file(s), e.g. {shown}{more}")
    if not check.problems:
        lines.append("clean: no problems")
        return "\n".join(lines)
    lines.append(f"problems ({len(check.problems):,}):")
    lines += [f"  {p.line()}" for p in check.problems]
    lines.append(
        f"{len(check.problems):,} problem(s) (paths relative to {listing.root}): `roadmap "
        "train` and `roadmap sweep` refuse this root until they are fixed; bad files and "
        "folders (not the layout) can be left out with --set recipe.skip_bad_images=true"
    )
    return "\n".join(lines)


def _size(n: int) -> str:
    """Bytes in words (kB, MB, GB: powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
