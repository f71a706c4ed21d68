"""convnext-roadmap: the ResNet -> ConvNeXt modernization roadmap as composable design toggles."""

from roadmap import registry  # noqa: F401  (registers every step with timm)
from roadmap.complexity import count_gflops, count_params
from roadmap.model import RoadmapNet, build_model
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


def create_step_model(name: str, track: str = DEFAULT_TRACK, **kwargs: object) -> RoadmapNet:
    """Build the model of step `name` on `track`; kwargs go to `build_model`."""
    return build_model(get_spec(name, track), **kwargs)  # type: ignore[arg-type]
