"""convnext-roadmap: the ResNet -> ConvNeXt modernization roadmap as composable design toggles.

The spec and the step table import no torch; the model builder and the complexity counters load
on first use (PEP 562), so that `roadmap --help`, `status` and `staircase` import neither torch
nor timm. Building a model through `roadmap` (`build_model`, `create_step_model`) or importing
`roadmap.registry` registers every step with timm as `<track>_<step>`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from roadmap.spec import ArchSpec
from roadmap.steps import (
    DEFAULT_TRACK,
    TRACKS,
    Step,
    get_spec,
    get_step,
    step_names,
    steps,
)

if TYPE_CHECKING:
    from roadmap.complexity import count_gflops, count_params
    from roadmap.model import RoadmapNet, build_model

# The names that need torch -> the module that defines them.
_LAZY = {
    "count_gflops": "roadmap.complexity",
    "count_params": "roadmap.complexity",
    "RoadmapNet": "roadmap.model",
    "build_model": "roadmap.model",
}

__all__ = [
    "DEFAULT_TRACK",
    "TRACKS",
    "ArchSpec",
    "RoadmapNet",
    "Step",
    "build_model",
    "count_gflops",
    "count_params",
    "create_step_model",
    "get_spec",
    "get_step",
    "step_names",
    "steps",
]


def __getattr__(name: str) -> Any:
    """Load a torch-using name on first use, registering the steps with timm first."""
    if name not in _LAZY:
        raise AttributeError(f"module 'roadmap' has no attribute {name!r}")
    importlib.import_module("roadmap.registry")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def create_step_model(name: str, track: str = DEFAULT_TRACK, **kwargs: object) -> RoadmapNet:
    """Build the model of step `name` on `track`; kwargs go to `build_model`."""
    importlib.import_module("roadmap.registry")
    from roadmap.model import build_model

    return build_model(get_spec(name, track), **kwargs)  # type: ignore[arg-type]
