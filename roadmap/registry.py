"""Every step registered with timm as `<track>_<step>`, e.g. "resnet50_kernel_7".

Importing `roadmap` registers them. Keyword arguments reach `roadmap.build_model` (num_classes,
in_chans, drop_path_rate, layer_scale_init). No pretrained weights ship with the steps: load a
reference checkpoint with `roadmap.convert.load_reference`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import register_model

from roadmap.model import RoadmapNet, build_model
from roadmap.steps import TRACKS, Step

# Arguments timm's create_model passes to every entrypoint that mean nothing here.
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _entrypoint(step: Step) -> Callable[..., RoadmapNet]:
    def create(pretrained: bool = False, **kwargs: Any) -> RoadmapNet:
        if pretrained:
            raise ValueError(
                f"{step.model_name} has no pretrained weights; build it and load a reference "
                "checkpoint with roadmap.convert.load_reference"
            )
        for key in _TIMM_ONLY:
            kwargs.pop(key, None)
        return build_model(step.spec, **kwargs)

    create.__name__ = create.__qualname__ = step.model_name
    create.__module__ = __name__
    create.__doc__ = f"Roadmap step {step.index} of track {step.track}: {step.name}."
    return create


MODEL_NAMES: list[str] = []
for _steps in TRACKS.values():
    for _step in _steps:
        register_model(_entrypoint(_step))
        MODEL_NAMES.append(_step.model_name)
