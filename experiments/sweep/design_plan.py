"""`roadmap design plan`: what each design costs and what it can detect, before anything runs.

For the path, leave-one-out, add-one-in and the 2^(k-p) fractions (resolution IV or more) of a
factorial over chosen toggles: the runs, the device-hours (the sweep's stated throughput,
`experiments.sweep.estimate.stated_img_s`, for the preset's epochs and image size), the most
seeds a budget allows and the minimum detectable effect (MDE, power `POWER`) of each term at the
verdict's alpha with Holm over the design's family (statsmodels' t-test power). The command is
added under `roadmap design` by the sweep's `register` (the builder imports no harness module).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from analysis.power import ALPHA, POWER, family_alpha, mde
from experiments.recipe import PRESETS, resolve_recipe
from experiments.sweep.estimate import stated_img_s
from experiments.sweep.profile import Profile, load_profile
from roadmap.designs import design_points, lost_points, on_path
from roadmap.errors import UserError
from roadmap.fractions import make_fraction
from roadmap.paper import paper_rows
from roadmap.select import split_words
from roadmap.steps import DEFAULT_TRACK, TRACKS, steps

IMAGENET_TRAIN_IMAGES = 1_281_167  # ImageNet-1K's training set, the paper's
MAX_SEEDS = 100  # the most seeds `max_seeds` reports
COLUMNS = (
    "design", "points", "lost", "terms", "seeds", "runs", "gpu_hours", "fits", "max_seeds",
    "mde_holm", "mde_alpha",
)  # fmt: skip


@dataclass(frozen=True)
class DesignCost:
    """One design's runs, device-hours and minimum detectable effect at `seeds` seeds."""

    design: str
    points: int  # distinct specs trained (the base included)
    lost: int  # invalid points dropped
    terms: int  # the Holm family: one test per term
    seeds: int
    runs: int
    gpu_hours: float
    fits: bool  # within the budget
    max_seeds: int  # the most seeds within the budget (0: not even one)
    mde_holm: float  # MDE of the term Holm tests first (alpha / terms)
    mde_alpha: float  # MDE of the term Holm tests last (alpha)


def paper_sigma(track: str = "resnet50") -> float:
    """The pooled seed std of the paper's Table 10 (equal n per row: the rms of the stds)."""
    stds = [r.top1_std for r in paper_rows() if r.track == track and r.top1_std is not None]
    if not stds:
        raise UserError(f"the paper gives no std on track {track!r}: pass --sigma")
    return math.sqrt(sum(s * s for s in stds) / len(stds))


def run_hours(preset: str, train_images: int, gpu: bool) -> tuple[float, str, str]:
    """Device-hours of one run, the throughput's source and the device (GPU or CPU core)."""
    recipe = resolve_recipe(preset)
    img_s, source = stated_img_s(gpu, recipe.image_size)
    return recipe.epochs * train_images / img_s / 3600, source, "GPU" if gpu else "CPU core"


def mde_paired(sigma: float, n: int, alpha: float) -> float:
    """MDE of a paired t test over `n` seeds of two points (difference sd: sigma * sqrt 2)."""
    if n < 2:
        return math.nan
    return mde(sigma * math.sqrt(2 / n), n - 1, alpha=alpha)


def mde_two_arms(sigma: float, n_arm: float, df: float, alpha: float) -> float:
    """MDE of a difference of two means of `n_arm` runs each, tested on `df` degrees of freedom."""
    if n_arm < 1 or df < 1:
        return math.nan
    return mde(sigma * math.sqrt(2 / n_arm), df, alpha=alpha)


def _mdes(kind: str, sigma: float, n: int, points: int, terms: int) -> tuple[float, float]:
    """(MDE at alpha / terms, MDE at alpha) for a design of `kind` at `n` seeds."""
    out = []
    for alpha in (family_alpha(terms), ALPHA):
        if kind == "path":  # the verdict's pooled model: step + seed, contrasts of n-run means
            out.append(mde_two_arms(sigma, n, (points - 1) * (n - 1), alpha))
        elif kind == "paired":  # effects' leave-one-out / add-one-in terms: paired over seeds
            out.append(mde_paired(sigma, n, alpha))
        else:  # factorial main effect: +1 half against -1 half, OLS with seed blocks
            params = min(points, 1 + terms + terms * (terms - 1) // 2) + (n - 1)
            out.append(mde_two_arms(sigma, points * n / 2, points * n - params, alpha))
    return out[0], out[1]


def _designs(track: str, factors: list[str]) -> list[tuple[str, str, int, int, int]]:
    """(label, kind, points, lost, terms) of each design the planner compares."""
    out = [("path", "path", len(steps(track)), 0, len(steps(track)) - 1)]
    for name in ("leave-one-out", "add-one-in"):
        points = design_points(name, track)
        valid = {p.run_name for p in points if p.valid}
        out.append((name, "paired", len(valid) + 1, len(points) - len(valid), len(valid)))
    k = len(factors)
    for p in range(k):
        try:
            fraction = make_fraction(k, p)
        except ValueError:
            break
        points = design_points("factorial", track, factors, fraction=2**p)
        valid = {q.run_name for q in points if q.valid}
        label = f"2^({k}-{p}) res {fraction.resolution}" if p else f"2^{k} full"
        out.append((label, "factorial", len(valid), len(points) - len(valid), k))
    return out


def plan_designs(
    track: str, factors: list[str], budget: float, hours: float, sigma: float, seeds: int
) -> list[DesignCost]:
    """Every design's cost and MDE at `seeds` seeds, and the most seeds the budget allows."""
    rows = []
    for label, kind, points, lost, terms in _designs(track, factors):
        per_seed = points * hours
        mde_holm, mde_alpha = _mdes(kind, sigma, seeds, points, terms)
        top = min(int(budget // per_seed), MAX_SEEDS) if per_seed > 0 else MAX_SEEDS
        rows.append(
            DesignCost(
                label,
                points,
                lost,
                terms,
                seeds,
                points * seeds,
                per_seed * seeds,
                per_seed * seeds <= budget,
                top,
                mde_holm,
                mde_alpha,
            )
        )
    return rows


def register(sub: argparse._SubParsersAction) -> None:
    """Add `plan` to the `design` command (`roadmap.design_cli` keeps its subcommands)."""
    design = sub.choices.get("design")
    if design is None:
        return
    inner = design.get_default("design_subcommands")
    p = inner.add_parser(
        "plan",
        help="size designs to a budget: runs, GPU-hours and the minimum detectable effect",
        description="For the path, leave-one-out, add-one-in and the 2^(k-p) fractions "
        "(resolution IV or more) of a factorial over --factors: runs, device-hours, the most "
        "seeds within --budget and the minimum detectable effect of each term (80% power) at "
        f"alpha {ALPHA} with Holm over the design's terms.",
    )
    p.add_argument("--budget", type=float, required=True, metavar="GPU_HOURS")
    p.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="seed std, points of top-1 (default: the pooled std of the paper's Table 10)",
    )
    p.add_argument("--profile", type=Path, default=None, help="Slurm profile (slurm/*.toml)")
    p.add_argument("--preset", default="paper", help=f"recipe preset: {', '.join(PRESETS)}")
    p.add_argument("--train-images", type=int, default=IMAGENET_TRAIN_IMAGES)
    p.add_argument("--seeds", type=int, default=3, help="seeds per point (default 3)")
    p.add_argument("--track", default=DEFAULT_TRACK, choices=list(TRACKS))
    p.add_argument(
        "--factors",
        default=None,
        metavar="STEP,STEP",
        help="the factorial's factors (default: the on-path micro-design steps)",
    )
    p.add_argument("--format", default="text", choices=["text", "csv"])
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the designs' table (text or CSV)."""
    from roadmap.table import align_columns

    if args.budget <= 0 or args.seeds < 1:
        raise UserError("--budget must be > 0 and --seeds >= 1")
    profile = load_profile(args.profile) if args.profile else Profile()
    factors = split_words(args.factors or "") or [
        s.name for s in on_path(args.track) if s.group == "micro design"
    ]
    sigma = args.sigma if args.sigma is not None else paper_sigma()
    gpu = args.profile is None or profile.gpus_per_node > 0  # no profile: GPUs
    hours, source, device = run_hours(args.preset, args.train_images, gpu)
    rows = plan_designs(args.track, factors, args.budget, hours, sigma, args.seeds)
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
        return 0
    print(_header(args, profile, factors, sigma, hours, source, device))
    head = ["design", "points", "lost", "terms", "seeds", "runs", f"{device}-h", "fits",
            "max seeds", "MDE Holm", "MDE alpha"]  # fmt: skip
    body = [
        [r.design, *map(str, (r.points, r.lost, r.terms, r.seeds, r.runs)),
         _hours(r.gpu_hours), "yes" if r.fits else "no", str(r.max_seeds),
         _pts(r.mde_holm), _pts(r.mde_alpha)]
        for r in rows
    ]  # fmt: skip
    print(align_columns(head, body, right=set(range(1, 11)) - {7}))
    print(
        f"within {args.budget:,.0f} {device}-hours with 2 seeds or more: "
        + (", ".join(f"{r.design} ({r.max_seeds})" for r in rows if r.max_seeds >= 2) or "none")
        + f"; one run costs {_hours(hours)}"
    )
    print(_footer(args.track, factors))
    return 0


def _hours(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _pts(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _header(
    args: argparse.Namespace,
    profile: Profile,
    factors: list[str],
    sigma: float,
    hours: float,
    source: str,
    device: str,
) -> str:
    """What the table assumes: budget, sigma, run cost and where it comes from."""
    given = "--sigma" if args.sigma is not None else "pooled std of the paper's Table 10"
    return (
        f"design plan, track {args.track}, budget {args.budget:,.0f} {device}-hours, preset "
        f"{args.preset!r}, {args.train_images:,} training images, profile {profile.name}"
        f"{f' ({profile.description})' if profile.description else ''}\n"
        f"one run: {_hours(hours)} {device}-hours ({source})\n"
        f"sigma {sigma:.3f} points ({given}); MDE at {POWER:.0%} power, two-sided: 'MDE Holm' "
        f"at alpha {ALPHA}/terms (the term Holm tests first), 'MDE alpha' at {ALPHA} (its "
        f"last); factorial terms: the main effects of {', '.join(factors)}"
    )


def _footer(track: str, factors: list[str]) -> str:
    """The alias structure of each fraction and what invalid points cost."""
    letters = [chr(ord("A") + i) for i in range(len(factors))]
    lines = ["factors: " + ", ".join(f"{a}={f}" for a, f in zip(letters, factors, strict=True))]
    for p in range(1, len(factors)):
        try:
            fraction = make_fraction(len(factors), p)
        except ValueError:
            break
        words = "; ".join(fraction.aliases(letters)).replace("*", "")
        gens = " ".join(fraction.generators).upper()
        lines.append(f"2^({len(factors)}-{p}) generators {gens}; aliases: {words}")
    for name in ("leave-one-out", "add-one-in"):
        lost = lost_points(design_points(name, track))
        if lost:
            lines.append(f"{name}: {lost}")
    return "\n".join(lines)
