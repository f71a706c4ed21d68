"""`roadmap staircase`: the accuracy/GFLOPs staircase and table of runs, or of the paper."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from roadmap.errors import UserError
from roadmap.select import STEPS_HELP
from roadmap.steps import DEFAULT_TRACK, TRACKS

if TYPE_CHECKING:  # pandas and the records load when the command runs, not at `--help`
    import pandas as pd

    from analysis.collect import Selection

METRIC_LABELS = {
    "top1": "Top-1 accuracy (%)",
    "best_top1": "Best top-1 accuracy (%)",
    "ema_top1": "EMA top-1 accuracy (%)",
}
DEFAULT_METRIC = "top1"
PAPER_XLABEL = "ImageNet-1K top-1 (%)"
# Display names of the tracks of `roadmap.steps.TRACKS`; a track without one shows its name.
TRACK_LABELS = {
    "resnet50": "ResNet-50 → ConvNeXt-T",
    "resnet200": "ResNet-200 → ConvNeXt-B",
}
SHOWN_RUNS = 6  # runs named per exclusion reason in the summary


def track_label(track: str) -> str:
    """The display name of `track`: `ResNet-50 → ConvNeXt-T`, else the track's name."""
    return TRACK_LABELS.get(track, track)


def summary(sel: Selection, frame: pd.DataFrame) -> str:
    """A short text account of a staircase: steps, seeds, exclusions, warnings."""
    from analysis.bars import count
    from analysis.collect import ORIGINAL_PRESET

    staircase = frame[~frame["reference"]]
    drawn = staircase[staircase["n"] > 0]
    runs = sel.runs[sel.runs["step"].isin(sel.steps)] if sel.steps else sel.runs
    steps_by_seeds = drawn["n"].value_counts().sort_index()
    seeds = ", ".join(
        f"{count(n_steps, 'step')} with {count(int(n_seeds), 'seed')}"
        for n_seeds, n_steps in steps_by_seeds.items()
    )
    lines = [
        f"staircase {sel.track}, preset {sel.preset!r}, {sel.metric}: "
        f"{len(drawn)} of {len(staircase)} steps drawn from {count(len(runs), 'run')}"
        + (f" ({seeds})" if seeds else "")
    ]
    if len(sel.reference):
        lines.append(
            f"reference row: {count(len(sel.reference), 'run')} of preset {ORIGINAL_PRESET!r}"
        )
    if len(runs) < len(sel.runs):
        others = count(len(sel.runs) - len(runs), "run")
        lines.append(f"note: {others} of steps not chosen (--steps): parents only")
    lines += [f"note: {x}" for x in sel.notes]
    if len(sel.excluded):
        lines.append(f"left out {count(len(sel.excluded), 'run')}:")
        for reason, group in sel.excluded.groupby("reason", sort=True):
            runs = list(group["run"])
            more = f" and {len(runs) - SHOWN_RUNS} more" if len(runs) > SHOWN_RUNS else ""
            shown = ", ".join(runs[:SHOWN_RUNS])
            lines.append(f"  {reason} ({len(runs)}): {shown}{more}")
    lines += [f"warning: {x}" for x in sel.warnings]
    return "\n".join(lines)


def formats_arg(text: str) -> tuple[str, ...]:
    """`png,pdf` -> ("png", "pdf"), each one a figure format."""
    from analysis.figure import FORMATS

    out = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"formats are {', '.join(FORMATS)}; got {text!r}")
    return out


def _add_figure_args(parser: argparse.ArgumentParser) -> None:
    """The figure options that the staircase and the curves share: formats and width."""
    parser.add_argument(
        "--formats", type=formats_arg, default=("png", "pdf", "svg"), help="png,pdf,svg"
    )
    parser.add_argument("--width", type=float, default=None, help="figure width in inches")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `staircase` subcommand."""
    parser = sub.add_parser(
        "staircase",
        help="collect run records and draw the accuracy/GFLOPs staircase and table",
        description="Draw the roadmap staircase (figure: png/pdf/svg; table: md/tex/csv) "
        "from the run records under --root, or the paper's Figure 2 with --paper.",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--root", type=Path, help="folder holding run directories")
    src.add_argument(
        "--paper",
        action="store_true",
        help="draw the paper's Figure 2 and each track's table from the shipped numbers",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for figures and tables")
    parser.add_argument("--track", choices=list(TRACKS), help=f"default {DEFAULT_TRACK}")
    parser.add_argument("--preset", help="preset to draw (default: the one with the most runs)")
    parser.add_argument("--steps", nargs="+", default=None, help=STEPS_HELP)
    parser.add_argument(
        "--allow-mixed",
        action="store_true",
        help="pool runs of every preset and recipe into one staircase",
    )
    parser.add_argument(
        "--strict-code",
        action="store_true",
        help="refuse to draw a bar whose runs trained with different model or training code",
    )
    parser.add_argument("--metric", default=DEFAULT_METRIC, choices=list(METRIC_LABELS))
    parser.add_argument(
        "--paper-overlay",
        action="store_true",
        help="mark the paper's top-1 on each bar",
    )
    _add_stats_args(parser)
    _add_figure_args(parser)
    parser.set_defaults(func=cmd_staircase)


def _add_stats_args(parser: argparse.ArgumentParser) -> None:
    """The options of the change tests: the equivalence margin and the power table."""
    from analysis.pooled import DEFAULT_MARGIN
    from analysis.report import positive

    parser.add_argument(
        "--equivalence",
        type=positive,
        default=DEFAULT_MARGIN,
        metavar="MARGIN",
        help=f"equivalence margin of the TOST, in top-1 points (default {DEFAULT_MARGIN})",
    )
    parser.add_argument(
        "--power",
        type=positive,
        metavar="DELTA",
        help="print and write power_TRACK.csv: seeds each change needs to detect DELTA points",
    )


def cmd_staircase(args: argparse.Namespace) -> int:
    """Write the staircase figure and tables; print a short summary."""
    from analysis.figure import COLUMN_WIDTH_IN

    width = args.width or COLUMN_WIDTH_IN
    if args.paper:
        selection = {
            "--track": args.track,
            "--preset": args.preset,
            "--allow-mixed": args.allow_mixed,
            "--strict-code": args.strict_code,
            "--paper-overlay": args.paper_overlay,
            "--steps": args.steps,
        }
        given = [flag for flag, value in selection.items() if value]
        if given or args.metric != DEFAULT_METRIC:
            raise UserError(f"--paper draws both tracks as published; drop {' '.join(given)}")
        return _paper(args, width)
    return _runs(args, width)


def _runs(args: argparse.Namespace, width: float) -> int:
    """The staircase of the runs under `args.root`."""
    from analysis.code_bars import mixed_code_bars
    from analysis.collect import aggregate, draw_only, load_runs, select_runs
    from analysis.figure import draw_staircase
    from analysis.report import root_statistics, staircase_title
    from analysis.table import write_tables
    from roadmap.select import select_steps

    track = args.track or DEFAULT_TRACK
    chosen = [s.name for s in select_steps(args.steps or "all", track)]
    sel = select_runs(load_runs(args.root), track, args.preset, args.allow_mixed, args.metric)
    if args.steps:
        sel = draw_only(sel, chosen)
    mixed = mixed_code_bars(sel)
    sel.warnings += mixed
    frame = aggregate(sel, True if args.paper_overlay else None, args.equivalence)
    print(summary(sel, frame))
    if mixed and args.strict_code:
        raise UserError(f"--strict-code: {len(mixed)} bar(s) of mixed code (see above)")
    if frame["n"].fillna(0).sum() == 0:  # before anything is written: --out stays as it was
        raise UserError(f"no runs to draw on {track} (see above for what was left out)")
    stem = args.out / f"staircase_{track}"
    caption = f"{track} staircase, preset {sel.preset}, {args.metric}, runs under {args.root}"
    paths = write_tables(frame, stem, caption)
    excluded = args.out / f"staircase_{track}_excluded.csv"
    sel.excluded.to_csv(excluded, index=False, lineterminator="\n")
    names = (track, track_label(track), sel.preset)
    more, table = root_statistics(args, frame, names, width)
    paths += more
    paths += draw_staircase(
        frame,
        stem,
        args.formats,
        overlay=args.paper_overlay,
        legend=("adopted step", ""),
        title=staircase_title(track_label(track), sel.preset, table),
        xlabel=METRIC_LABELS[args.metric],
        width=width,
    )
    print("wrote", ", ".join(str(p) for p in [*paths, excluded]))
    return 0


def _paper(args: argparse.Namespace, width: float) -> int:
    """The paper's own staircases: Figure 2 (the first two tracks) and each track alone."""
    from analysis.collect import paper_staircase
    from analysis.figure import draw_staircase
    from analysis.report import pooled_outputs
    from roadmap.paper import SOURCE

    out, formats = args.out, args.formats
    frames = {track: paper_staircase(track, args.equivalence) for track in TRACKS}
    paths = []
    for track, frame in frames.items():
        paths += _paper_track(track, frame, out, formats, width)
        paths += pooled_outputs(args, frame, track)
    fore, back = list(frames)[:2]
    paths += draw_staircase(
        frames[fore],
        out / "paper_figure2",
        formats,
        background=frames[back],
        legend=(track_label(fore), track_label(back)),
        xlabel=PAPER_XLABEL,
        width=width,
    )
    print(f"source: {SOURCE}")
    print("wrote", ", ".join(str(p) for p in paths))
    return 0


def _paper_track(
    track: str, frame: pd.DataFrame, out: Path, formats: tuple[str, ...], width: float
) -> list[Path]:
    """The paper's staircase of one track: its table and figure, and a line on them."""
    from analysis.assumptions import mark_assumptions
    from analysis.figure import draw_staircase
    from analysis.paper import figure_label_mismatches
    from analysis.table import write_tables
    from roadmap.paper import SOURCE

    frame = mark_assumptions(frame)  # what this project assumes to train the track
    stem = out / f"paper_{track}"
    paths = write_tables(frame, stem, f"{track} staircase: {SOURCE}")
    paths += draw_staircase(
        frame,
        stem,
        formats,
        legend=(f"{track_label(track)} (paper)", ""),
        xlabel=PAPER_XLABEL,
        width=width,
    )
    steps = frame[~frame["reference"]]
    side = int((~steps["on_path"]).sum())
    print(f"paper {track}: {len(steps)} steps, {side} side branches")
    for line in figure_label_mismatches(track):
        print(f"  note: Figure 2 label differs from the table: {line}")
    return paths


def register_curves(sub: argparse._SubParsersAction) -> None:
    """Add the `curves` subcommand."""
    parser = sub.add_parser(
        "curves",
        help="draw top-1 and train loss per epoch of each step from the run logs",
        description="Draw each step's top-1 and train loss per epoch (seed mean with a "
        "band, seeds as thin lines, failed runs where they stopped) from log.jsonl.",
    )
    parser.add_argument("--root", type=Path, required=True, help="folder of run dirs")
    parser.add_argument("--out", type=Path, required=True, help="folder for figures")
    parser.add_argument("--track", default=DEFAULT_TRACK, choices=list(TRACKS))
    parser.add_argument("--preset", help="preset to draw (default: most runs)")
    parser.add_argument("--steps", nargs="+", default=["all"], help=STEPS_HELP)
    _add_figure_args(parser)
    parser.set_defaults(func=cmd_curves)


def cmd_curves(args: argparse.Namespace) -> int:
    """Write the curves figure; print what it holds."""
    from analysis.bars import count
    from analysis.collect import load_runs
    from analysis.curves import curve_runs, draw_curves, read_curves
    from analysis.figure import COLUMN_WIDTH_IN
    from roadmap.select import select_steps

    chosen = select_steps(args.steps, args.track)
    runs = curve_runs(load_runs(args.root), args.track, args.preset)
    runs = runs[runs["step"].isin([s.name for s in chosen])]
    curves = read_curves(runs)
    drawn = [s for s in chosen if s.name in set(curves["step"])]
    if not drawn:
        raise UserError(f"no logged epoch of the chosen steps under {args.root}")
    left = [s.name for s in chosen if s not in drawn]
    preset = runs["preset"].iloc[0]
    statuses = ", ".join(f"{n} {k}" for k, n in runs["status"].value_counts().items())
    print(
        f"curves {args.track}, preset {preset!r}: {count(len(drawn), 'step')} drawn, "
        f"{count(curves['run'].nunique(), 'run')} with a logged epoch (runs: {statuses})"
    )
    if left:
        print(f"note: {count(len(left), 'step')} with no epoch logged: {_few(left)}")
    stem = args.out / f"curves_{args.track}"
    title = f"{track_label(args.track)} · preset {preset}"
    paths = draw_curves(curves, drawn, stem, args.formats, title, args.width or COLUMN_WIDTH_IN)
    print("wrote", ", ".join(str(p) for p in paths))
    return 0


def _few(names: list[str], shown: int = SHOWN_RUNS) -> str:
    """The first `shown` names, and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def register_effects(sub: argparse._SubParsersAction) -> None:
    """Add the `effects` subcommand."""
    parser = sub.add_parser(
        "effects",
        help="each step's effect on the path, at the end, at the start; factorial terms",
        description="From the design points under --root (roadmap design show; roadmap sweep "
        "--design), per track: each step's change on the path, at the endpoint (leave-one-out) "
        "and at the start (add-one-in) with 95%% intervals, and each complete factorial's main "
        "effects, two-way interactions and Shapley values, each with its GFLOPs and params "
        "change. Designs declared by roadmap sweep --design get Holm over their family; every "
        "other term is exploratory. Writes effects_TRACK.csv/md/tex and a forest plot.",
    )
    parser.add_argument("--root", type=Path, required=True, help="folder of run dirs")
    parser.add_argument("--out", type=Path, required=True, help="folder for figures and tables")
    parser.add_argument("--track", choices=list(TRACKS), help="only this track (default: all)")
    parser.add_argument("--preset", help="preset to use (default: the one with the most runs)")
    parser.add_argument("--metric", default=DEFAULT_METRIC, choices=list(METRIC_LABELS))
    _add_figure_args(parser)
    parser.set_defaults(func=cmd_effects)


def cmd_effects(args: argparse.Namespace) -> int:
    """Write each track's effects table and forest plot; print what they hold."""
    import pandas as pd

    from analysis.bars import count
    from analysis.collect import load_runs, select_runs
    from analysis.declared_effects import declared_effects, report
    from analysis.effects import run_values
    from analysis.effects_figure import draw_effects, write_effect_tables
    from analysis.figure import COLUMN_WIDTH_IN
    from experiments.runs.declared import declared

    df = load_runs(args.root)
    tracks = [args.track] if args.track else [t for t in TRACKS if (df["track"] == t).any()]
    if not tracks:
        raise UserError(f"no runs of a known track under {args.root}")
    paths = []
    for track in tracks:
        sel = select_runs(df, track, args.preset, metric=args.metric)  # the staircase's rules
        preset, runs = sel.preset, pd.concat([sel.runs, sel.points])
        decls = [(d["name"], d) for _, d in declared(args.root, track)]
        frame, notes = declared_effects(track, run_values(runs, args.metric), decls)
        kinds = ", ".join(f"{n} {k}" for k, n in frame["kind"].value_counts().items())
        print(f"effects {track}, preset {preset!r}, {args.metric}: {len(frame)} terms ({kinds})")
        if len(sel.excluded):
            print(f"  left out {count(len(sel.excluded), 'run')} (as the staircase does)")
        print("\n".join(report(frame, notes, sel.excluded)))
        if frame.empty:
            continue
        stem = args.out / f"effects_{track}"
        paths += write_effect_tables(frame, stem, f"{track} effects, preset {preset}")
        paths += draw_effects(
            frame,
            track,
            stem,
            args.formats,
            title=f"{track_label(track)} · preset {preset}",
            xlabel=f"Effect on {METRIC_LABELS[args.metric]}",
            width=args.width or COLUMN_WIDTH_IN,
        )
    print("wrote", ", ".join(str(p) for p in paths))
    return 0
