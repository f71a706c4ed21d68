"""Choosing steps: the one parser behind every command's `--steps`.

`all`, `on-path`, `endpoints` (the steps that have a reference implementation) or step names,
separated by commas, spaces or both (`a,b`, `a b` and `a, b` are the same list). Steps come
back in roadmap order, each once; an unknown name is an error that suggests the nearest one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from roadmap.endpoints import ENDPOINTS
from roadmap.errors import UserError
from roadmap.steps import Step, get_step, steps

STEP_SETS = ("all", "on-path", "endpoints")
STEPS_HELP = "all (default), on-path, endpoints, or step names (NAME,NAME or NAME NAME)"


def split_words(values: str | Sequence[str]) -> list[str]:
    """Words of one string or of several, split at commas and whitespace."""
    text = values if isinstance(values, str) else " ".join(values)
    return [w for w in re.split(r"[,\s]+", text) if w]


def select_steps(values: str | Sequence[str], track: str) -> list[Step]:
    """The steps of `track` that `values` names, in roadmap order (see the module doc)."""
    track_steps = steps(track)
    words = split_words(values)
    if not words:
        raise UserError(f"--steps is empty; give {', '.join(STEP_SETS)} or step names")
    sets = [w for w in words if w in STEP_SETS]
    if sets and len(words) > 1:
        raise UserError(
            f"--steps {' '.join(words)}: {sets[0]!r} stands alone, not with other names"
        )
    if words == ["all"]:
        return list(track_steps)
    if words == ["on-path"]:
        return [s for s in track_steps if s.on_path]
    if words == ["endpoints"]:
        ends = {e.step for e in ENDPOINTS if e.track == track}
        return [s for s in track_steps if s.name in ends]
    try:
        chosen = {get_step(word, track).name for word in words}
    except ValueError as err:
        raise UserError(f"{err} (or one of: {', '.join(STEP_SETS)})") from None
    return [s for s in track_steps if s.name in chosen]
