"""Plan a sweep: one run per (step, seed), everything validated before anything is submitted.

A new run lives in `<root>/<track>/<step>/seed<k>/`; a run already under the root is found by
its config's identity wherever its folder is (`runstate.find_runs`: roots of the old
`<NN>_<step>` layout keep their folders, and inserting or moving steps renames nothing).
Planning reads each run's state (experiments/runs/runstate.py) and `ACTIONS` says what to do with
it: done runs are skipped, so relaunching the same command never repeats finished work;
interrupted ones are submitted again and resume from their newest valid checkpoint; failed
ones rerun only with `retry_failed` (their failed result.json is kept as
`result.failed-<n>.json`); pending or running ones are left alone, and so are unreadable ones
(named in the plan: nothing is written over them). A run directory configured before must hold
the very run asked for (`experiments.train.config.run_identity`, as `roadmap train` checks),
and every run already under the root must have been configured on this very dataset (its
class map and content fingerprint, wherever it lies), so that seeds added later train on the
data of the first and no root holds two datasets. A refusal counts every conflicting run and
names the first few (`SHOWN_CONFLICTS`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from experiments.data.identity import brief, describe_change
from experiments.recipe import Recipe, resolve_recipe
from experiments.runs import records
from experiments.runs.files import check_writable
from experiments.runs.runstate import RunState, find_runs, run_state
from experiments.runs.same_run import run_difference
from experiments.runs.scheduler import sacct_states
from experiments.submitit_private import job_outcome_error
from experiments.sweep.profile import Profile, load_profile
from experiments.sweep.slurm import check_slurm
from experiments.train.config import RunData, check_fills_a_step, run_data, run_identity
from roadmap.designs import planned_steps
from roadmap.errors import UserError
from roadmap.select import select_steps
from roadmap.steps import DEFAULT_TRACK, Step

EXECUTORS = ("local", "slurm", "debug")
SHOWN_CONFLICTS = 2  # conflicting runs named in a refusal (all are counted)
# What the sweep does with a run in each state (failed: "skip", or "retry" when asked).
ACTIONS = {
    "done": "skip",
    "running": "skip",
    "pending": "skip",
    "unreadable": "skip",
    "failed": "skip",
    "interrupted": "resume",
    "missing": "submit",
}


def parse_seeds(spec: str) -> list[int]:
    """`0,1,2` or `0-2` -> [0, 1, 2]; seeds are distinct non-negative integers."""
    seeds: list[int] = []
    for part in (p.strip() for p in spec.split(",")):
        try:
            if "-" in part[1:]:
                low, high = (int(x) for x in part.split("-", 1))
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise UserError(f"--seeds {spec!r}: expected integers like 0,1,2 or 0-2") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {spec!r}: need distinct integers >= 0")
    return seeds


def run_dir(root: str | os.PathLike, track: str, step: Step, seed: int) -> Path:
    """The directory of a new run: `<root>/<track>/<step>/seed<k>` (no position in it)."""
    return Path(root) / track / step.name / f"seed{seed}"


@dataclass(frozen=True)
class Request:
    """What `roadmap sweep` was asked to do."""

    root: Path
    preset: str
    track: str = DEFAULT_TRACK
    steps: str | tuple[str, ...] = "all"  # see roadmap.select
    seeds: str = "0,1,2"
    data: str | None = None
    overrides: tuple[str, ...] = ()
    executor: str = "local"
    profile: str | None = None
    retry_failed: bool = False
    jobs: int | None = None  # local: jobs at once (default: what the machine holds)
    bench: str | None = None  # `roadmap bench --out` CSV for the estimate
    dry_run: bool = False  # without sbatch here, a dry run skips the cluster's own check
    design: str | None = None  # a design of roadmap.designs instead of --steps
    factors: tuple[str, ...] = ()  # the factorial's steps
    base: str | None = None  # the design's base step (default: the design's own)
    fraction: int = 1  # factorial: 1 (full) or 2 (half, resolution k)


@dataclass
class PlannedRun:
    """One (step, seed) of the plan and what the sweep does with it."""

    step: Step
    seed: int
    run_dir: Path
    state: RunState
    action: str  # submit | resume | retry | skip (see ACTIONS)


@dataclass
class Plan:
    """A validated sweep: its runs, recipe and resources."""

    request: Request
    runs: list[PlannedRun]
    recipe: Recipe
    profile: Profile
    world_size: int
    data: RunData
    notes: list[str] = field(default_factory=list)

    @property
    def to_run(self) -> list[PlannedRun]:
        """Runs that will be submitted."""
        return [r for r in self.runs if r.action != "skip"]


def make_plan(request: Request) -> Plan:
    """Validate the request and plan every run; any problem is one UserError, nothing written.

    Everything a run would fail on as it starts is checked here: the data (`run_data`: the
    check, cached), one optimizer step's worth of images, the recipe's timm parts.
    """
    chosen, skipped = design_steps(request)
    seeds = parse_seeds(request.seeds)
    recipe = resolve_recipe(request.preset, tuple(request.overrides))
    profile = _profile(request)
    check_writable(request.root)
    world = profile.world_size if request.executor == "slurm" else 1
    check_batch(recipe, world, profile)
    if request.bench is not None and not Path(request.bench).is_file():
        raise FileNotFoundError(
            f"--bench {request.bench}: no such file (write it with roadmap bench --out)"
        )
    if request.jobs is not None and request.jobs < 1:
        raise UserError("--jobs must be >= 1")
    data = run_data(recipe, request.data)
    check_fills_a_step(recipe, data.train_images, world, data.root is None)
    from experiments.train.parts import check_parts  # timm: at planning, not at --help

    check_parts(recipe, len(data.identity["classes"]))
    runs = _plan_runs(request, chosen, seeds, data)
    check_other_runs(request, runs, data)
    plan = Plan(request, runs, recipe, profile, world, data, [data.summary, *skipped])
    if request.executor == "slurm":
        _check_cluster(plan)
    return plan


def replan(plan: Plan) -> Plan:
    """`plan` with its runs planned again from their records now (`roadmap sweep` under its lock).

    Between planning and taking the sweep lock, another sweep of the root may have submitted
    or finished some of the runs: planned again, they are skipped.
    """
    chosen = list({r.step.name: r.step for r in plan.runs}.values())
    seeds = list(dict.fromkeys(r.seed for r in plan.runs))
    runs = _plan_runs(plan.request, chosen, seeds, plan.data)
    check_other_runs(plan.request, runs, plan.data)
    return replace(plan, runs=runs)


def design_steps(request: Request) -> tuple[list[Step], list[str]]:
    """The steps or design points to run, and a note for each invalid point (skipped).

    A point equal to a step is that step: its runs are the step's. The others run under their
    point names (`roadmap.designs`), off the path.
    """
    if request.design is None:
        if request.factors or request.base or request.fraction != 1:
            raise UserError("--factors, --base and --fraction need --design")
        return select_steps(request.steps, request.track), []
    if request.steps not in ("all", ("all",)):
        raise UserError("--steps and --design choose the runs both ways; give one of them")
    chosen, invalid = planned_steps(
        request.design, request.track, request.factors, request.base, request.fraction
    )
    return chosen, [f"skipped invalid design point {p.name}: {p.reason}" for p in invalid]


def _profile(request: Request) -> Profile:
    """The executor's profile: a Slurm cluster's from its file, else this machine's."""
    if request.executor not in EXECUTORS:
        raise UserError(f"unknown executor {request.executor!r}; executors: {', '.join(EXECUTORS)}")
    if request.profile and request.executor != "slurm":
        raise UserError("--profile describes a Slurm cluster; use it with --executor slurm")
    if request.executor == "slurm" and not request.profile:
        raise UserError("--executor slurm needs --profile slurm/NAME.toml (see slurm/README.md)")
    return load_profile(request.profile) if request.profile else Profile()


def _plan_runs(
    request: Request, chosen: list[Step], seeds: list[int], data: RunData
) -> list[PlannedRun]:
    """Every (step, seed): its directory checked against the run asked for, state, action."""
    found = find_runs(request.root, request.track) if request.root.is_dir() else {}
    dirs = [
        (
            step,
            seed,
            found.get((step.name, seed)) or run_dir(request.root, request.track, step, seed),
        )
        for step in chosen
        for seed in seeds
    ]
    conflicts = []
    for step, seed, directory in dirs:
        wanted = run_identity(
            request.track,
            step.name,
            seed,
            request.preset,
            data.root,
            request.overrides,
            data.identity,
        )
        conflicts += [(directory, diff)] if (diff := config_diff(directory, wanted)) else []
    if conflicts:
        raise UserError(
            conflict_message(request.root, conflicts, "already hold a different run")
            + "; use another --root, or move those runs away"
        )
    jobs = [records.read_or_reason(records.read_job, d)[0] or {} for _, _, d in dirs]
    ids = [str(j["job_id"]) for j in jobs if j.get("executor") == "slurm" and j.get("job_id")]
    sacct = sacct_states(ids)
    runs = []
    for step, seed, directory in dirs:
        state = (
            run_state(directory, sacct, job_outcome_error)
            if directory.is_dir()
            else RunState(directory, request.track, step.name, step.index, seed, "missing")
        )
        action = _action(state, request.retry_failed)
        runs.append(PlannedRun(step, seed, directory, state, action))
    return runs


def _action(state: RunState, retry_failed: bool) -> str:
    """What the sweep does with a run in `state` (`ACTIONS`; a failed one: retry if asked)."""
    if state.status == "failed" and retry_failed:
        return "retry"
    return ACTIONS[state.status]


def _check_cluster(plan: Plan) -> None:
    """`sbatch --test-only` the array the plan would submit; a refusal is an error."""
    if shutil.which("sbatch") is None:
        if not plan.request.dry_run:
            raise FileNotFoundError(
                "--executor slurm: sbatch is not on PATH (run the sweep where Slurm is)"
            )
        plan.notes.append("not checked with the cluster: no sbatch on this machine")
        return
    folder = plan.request.root / plan.request.track / ".submitit"
    try:
        answer = check_slurm(plan.profile, len(plan.to_run), folder)
    except ValueError as err:
        if not plan.request.dry_run:
            raise
        answer = f"REFUSED here: {err}"
    plan.notes.append(f"sbatch --test-only: {answer}")


def check_batch(recipe: Recipe, world: int, profile: Profile) -> None:
    """The recipe's effective batch must split evenly over the job's ranks."""
    try:
        recipe.accum_for(world)
    except ValueError as err:
        where = (
            f"{world} rank(s) per job: {profile.nodes} node(s) x {profile.tasks_per_node} "
            f"task(s) per node{f' in {profile.path}' if profile.path else ''}"
        )
        raise UserError(f"{err} -- {where}") from None


def config_diff(directory: Path, wanted: dict[str, object]) -> str | None:
    """How the run configured in `directory` differs from `wanted` (None: same, or none).

    An unreadable config is left to the run's state (`unreadable`, skipped and named).
    """
    existing, _ = records.read_or_reason(records.read_config, directory)
    return None if existing is None else run_difference(existing, wanted, describe_change)


def conflict_message(root: Path, conflicts: list[tuple[Path, str]], what: str) -> str:
    """`N run(s) under ROOT <what>: a, b and N more; the first: <how>`, in one line.

    How the first differs is said once; `(k other differences)` counts the other ways.
    """
    names = [os.path.relpath(d, root) for d, _ in conflicts]
    more = len(names) - SHOWN_CONFLICTS
    ways = len({how for _, how in conflicts}) - 1
    return (
        f"{len(names)} run(s) under {root} {what}: {', '.join(names[:SHOWN_CONFLICTS])}"
        + (f" and {more} more" if more > 0 else "")
        + f"; the first: {conflicts[0][1]}"
        + (f" ({ways} other difference(s))" if ways else "")
    )


def check_other_runs(request: Request, runs: list[PlannedRun], data: RunData) -> None:
    """Every run under the root must have been configured on this very dataset.

    (The planned runs' own configs are compared by `config_diff`.) A config without a
    dataset was configured on data nobody can tell: it conflicts too.
    """
    planned = {r.run_dir.absolute() for r in runs}
    found = find_runs(request.root, request.track) if request.root.is_dir() else {}
    conflicts = []
    for directory in sorted(found.values()):
        if directory.absolute() in planned:
            continue
        config, _ = records.read_or_reason(records.read_config, directory)
        if config and config.get("dataset") != data.identity:
            on = config.get("data") or "built-in data"
            recorded = config.get("dataset")
            change = (  # the same root changed since, or another dataset
                describe_change(recorded, data.identity)
                if config.get("data") == data.root and isinstance(recorded, dict)
                else f"{brief(recorded)} vs {brief(data.identity)}"
            )
            conflicts.append((directory, f"on {on}: {change}"))
    if conflicts:
        where = data.root or "the built-in dataset"
        raise UserError(
            conflict_message(request.root, conflicts, f"were configured on other data than {where}")
            + "; use another --root"
        )
