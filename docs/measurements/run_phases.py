"""CPU seconds (user + system, getrusage) of each phase of one `roadmap train`, as JSON.

    python docs/measurements/run_phases.py OUT.json train --step resnet50_modern_recipe \
        --preset smoke --seed 0 --out /tmp/probe-run

Times are inclusive (an indented phase is also counted in the one above it); `[sys]` and
`[minflt/1000]` are the system seconds and the thousands of minor page faults of a phase.
CPU time, not wall time: it stays comparable on a machine that other work shares.
"""

from __future__ import annotations

import functools
import json
import resource
import sys
from collections.abc import Callable
from typing import Any

PHASES: dict[str, float] = {}


def _usage() -> tuple[float, float, int]:
    """(CPU seconds, system seconds, minor page faults) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_stime, r.ru_minflt


def _add(label: str, start: tuple[float, float, int]) -> None:
    """Add the usage since `start` to phase `label`."""
    now = _usage()
    for i, (suffix, unit) in enumerate(((" ", 1), (" [sys]", 1), (" [minflt/1000]", 1000))):
        key = (label + suffix).rstrip()
        PHASES[key] = PHASES.get(key, 0.0) + (now[i] - start[i]) / unit


def _wrap(owner: Any, name: str, label: str) -> None:
    """Count the calls of `owner.name` as phase `label`."""
    fn: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = _usage()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(label, start)

    setattr(owner, name, timed)


def main() -> None:
    """Import, wrap the phases, run the command, write and print the phases."""
    start = _usage()
    import torch  # noqa: F401

    _add("import torch", start)
    start = _usage()
    import roadmap
    import roadmap.cli
    from experiments.train import config, trainer  # the CLI imports prepare_run at its call

    _add("import the rest (roadmap, timm, experiments)", start)
    _wrap(config, "prepare_run", "prepare_run (config, identity, data check)")
    _wrap(trainer.Trainer, "__init__", "Trainer.__init__")
    _wrap(trainer, "build_loaders", "  build_loaders (render Shapes)")
    _wrap(roadmap, "build_model", "  build_model")
    _wrap(roadmap, "count_gflops", "  count_gflops")
    _wrap(trainer.Trainer, "_train_epoch", "train epochs")
    _wrap(trainer.Trainer, "evaluate", "evaluate")
    _wrap(trainer.Trainer, "save_checkpoint", "save_checkpoint")
    _wrap(trainer.Trainer, "_finish", "_finish (result.json, clean-up)")
    roadmap.cli.main(sys.argv[2:])
    total = _usage()
    PHASES.update({"process total": total[0], "[sys]": total[1], "[minflt/1000]": total[2] / 1000})
    with open(sys.argv[1], "w") as f:
        json.dump(PHASES, f, indent=1)
    for label, value in PHASES.items():
        print(f"{value:9.2f}  {label}", file=sys.stderr)


if __name__ == "__main__":
    main()
