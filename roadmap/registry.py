"""Every step registered with timm as `<track>_<step>`, and every family model as `roadmap_<name>`.

Steps: e.g. "resnet50_kernel_7"; the ConvNeXt family (`roadmap.family`): e.g.
"roadmap_convnext_small", "roadmap_convnext_isotropic_base".

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

from roadmap.family import FAMILY
from roadmap.model import RoadmapNet, build_model
from roadmap.steps import TRACKS, get_step, row_names

# Arguments timm's create_model passes to every entrypoint that mean nothing here.
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _entrypoint(
    model_name: str, doc: str, build: Callable[..., RoadmapNet]
) -> Callable[..., RoadmapNet]:
    """A timm entrypoint called `model_name` that builds with `build(**kwargs)`."""

    def create(pretrained: bool = False, **kwargs: Any) -> RoadmapNet:
        if pretrained:
            raise ValueError(
                f"{model_name} has no pretrained weights; build it and load a reference "
                "checkpoint with roadmap.convert.load_reference"
            )
        for key in _TIMM_ONLY:
            kwargs.pop(key, None)
        return build(**kwargs)

    create.__name__ = create.__qualname__ = model_name
    create.__module__ = __name__
    create.__doc__ = doc
    return create


def _step_builder(track: str, name: str) -> Callable[..., RoadmapNet]:
    """Builds step `name` of `track`, resolving its spec only when called."""
    return lambda **kwargs: build_model(get_step(name, track).spec, **kwargs)


MODEL_NAMES: list[str] = []
for _track in TRACKS:
    for _index, _name in enumerate(row_names(_track), start=1):
        _doc = f"Roadmap step {_index} of track {_track}: {_name}."
        register_model(_entrypoint(f"{_track}_{_name}", _doc, _step_builder(_track, _name)))
        MODEL_NAMES.append(f"{_track}_{_name}")
FAMILY_NAMES: list[str] = []
for _member in FAMILY:
    _doc = f"The ConvNeXt family's {_member.name} (roadmap.family)."
    register_model(_entrypoint(_member.model_name, _doc, _member.build))
    FAMILY_NAMES.append(_member.model_name)
