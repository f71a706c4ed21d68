"""Every step registered with timm as `<track>_<step>`, e.g. "resnet50_kernel_7".

Importing this module (which `roadmap.build_model` and `create_step_model` do) registers them,
by name only: the spec of a step is resolved when its model is built, so a mistake in the step
table is reported there (one line) and not at import.
Keyword arguments reach `roadmap.build_model` (num_classes, in_chans, drop_path_rate,
layer_scale_init). No pretrained weights ship with the steps: load a reference checkpoint with
`roadmap.convert.load_reference`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import register_model

from roadmap.model import RoadmapNet, build_model
from roadmap.steps import TRACKS, get_step, row_names

# Arguments timm's create_model passes to every entrypoint that mean nothing here.
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _entrypoint(track: str, index: int, name: str) -> Callable[..., RoadmapNet]:
    model_name = f"{track}_{name}"

    def create(pretrained: bool = False, **kwargs: Any) -> RoadmapNet:
        if pretrained:
            raise ValueError(
                f"{model_name} has no pretrained weights; build it and load a reference "
                "checkpoint with roadmap.convert.load_reference"
            )
        for key in _TIMM_ONLY:
            kwargs.pop(key, None)
        return build_model(get_step(name, track).spec, **kwargs)

    create.__name__ = create.__qualname__ = model_name
    create.__module__ = __name__
    create.__doc__ = f"Roadmap step {index} of track {track}: {name}."
    return create


MODEL_NAMES: list[str] = []
for _track in TRACKS:
    for _index, _name in enumerate(row_names(_track), start=1):
        register_model(_entrypoint(_track, _index, _name))
        MODEL_NAMES.append(f"{_track}_{_name}")
