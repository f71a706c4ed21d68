"""Each step changes only what its name says: tensor names against its parent's, stem and head."""

import re

import pytest
import torch
from torch import nn

from roadmap import build_model, steps
from roadmap.spec import ArchSpec
from roadmap.steps import FIELD_MODULES, TRACKS, get_step


def _tensors(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """Every parameter and buffer name of the model `spec` builds (layer scale on), with shape."""
    with torch.device("meta"):
        model = build_model(spec, layer_scale_init=1e-6)
    named = [*model.named_parameters(), *model.named_buffers()]
    return {name: tuple(t.shape) for name, t in named}


def _changed(parent: ArchSpec, child: ArchSpec) -> set[str]:
    """Names added, removed or reshaped from `parent`'s model to `child`'s."""
    before, after = _tensors(parent), _tensors(child)
    return set(before) ^ set(after) | {n for n in set(before) & set(after) if before[n] != after[n]}


def _outside(names: set[str], fields: list[str]) -> list[str]:
    """The names that match no module pattern of `fields` (FIELD_MODULES)."""
    patterns = [p for f in fields for p in FIELD_MODULES[f]]
    return sorted(n for n in names if not any(re.search(p, n) for p in patterns))


def _with_parent():
    return [pytest.param(s, id=f"{s.track}-{s.name}") for t in TRACKS for s in steps(t) if s.parent]


@pytest.mark.parametrize("step", _with_parent())
def test_a_step_changes_only_the_modules_of_the_fields_it_sets(step):
    """On-path steps and side steps alike, read from their changed fields, never their names."""
    parent = get_step(step.parent, step.track).spec
    changed = _changed(parent, step.spec)
    fields = list(parent.diff(step.spec))
    assert set(fields) == {f for f in step.changes if getattr(parent, f) != step.changes[f]}
    assert not _outside(changed, fields), f"{step.name} also changes {_outside(changed, fields)}"


def test_every_field_a_step_sets_declares_its_modules():
    used = {key for t in TRACKS for s in steps(t) for key in s.changes}
    assert used <= set(FIELD_MODULES)
    assert set(FIELD_MODULES) <= set(ArchSpec.__dataclass_fields__)


def test_the_check_catches_a_bias_that_comes_with_the_wrong_step():
    """fewer_norms with LayerNorm blocks: conv biases appear, which `fewer_norms` is not about."""
    ln = get_step("fewer_activations").spec.replace(norm="ln")
    changed = _changed(ln.replace(norm="bn"), ln.replace(norm="bn", fewer_norms=True))
    assert not _outside(changed, ["fewer_norms"])  # BatchNorm blocks: no bias, only norms go
    changed = _changed(ln.replace(norm="bn"), ln.replace(fewer_norms=True))
    assert any(n.endswith("conv.bias") for n in _outside(changed, ["fewer_norms"]))


def _stem_children(name: str, track: str) -> list[str]:
    return [n for n, _ in build_model(get_step(name, track).spec).stem.named_children()]


@pytest.mark.parametrize("track", list(TRACKS))
def test_the_stem_norm_arrives_with_separate_downsampling(track):
    """Section 2.6: "one after the stem"; the authors' patchify stem is a bare biased conv."""
    for name in ("patchify_stem", "bn_to_ln", "final_norm"):
        assert _stem_children(name, track) == ["conv"]
        stem = build_model(get_step(name, track).spec).stem
        assert stem.conv.kernel_size == (4, 4) and stem.conv.bias is not None
    assert _stem_children("separate_downsampling", track) == ["conv", "norm"]
    assert _stem_children(steps(track)[0].name, track) == ["conv", "norm", "act", "pool"]


@pytest.mark.parametrize("track", list(TRACKS))
def test_the_head_norm_comes_with_final_norm_and_separate_downsampling(track):
    track_steps = steps(track)
    with_norm = {s.name for s in track_steps if hasattr(build_model(s.spec).head, "norm")}
    assert with_norm == {s.name for s in track_steps if s.spec.head_norm}
    # On the path it arrives with separate downsampling (Section 2.6); before it only the side
    # step final_norm has it (steps added after the endpoint, such as GRN, inherit it).
    on_path = [s.name for s in track_steps if s.on_path and s.name in with_norm]
    assert on_path[0] == "separate_downsampling"
    ends = get_step("separate_downsampling", track).index
    assert {s.name for s in track_steps if s.index < ends} & with_norm == {"final_norm"}
    final = get_step("final_norm", track)
    assert not final.on_path and final.parent == "bn_to_ln"
    assert dict(final.changes) == {"head_norm": True}


def _bias_counts(name: str) -> tuple[int, int, int]:
    """Biased convs of the stem, of the blocks and of the shortcuts of step `name`."""
    model = build_model(get_step(name).spec)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    biased = [n for n, m in convs if m.bias is not None]
    stem = sum(n.startswith("stem.") for n in biased)
    shortcut = sum(".shortcut." in n for n in biased)
    return stem, len(biased) - stem - shortcut, shortcut


def test_block_conv_biases_arrive_with_layernorm_as_the_authors_use_bias():
    # The authors' code at these steps (modeling_resnet.py:193, :365, :506): a biased patchify
    # stem conv; block convs biased exactly with LayerNorm (18 blocks x 3); shortcuts never.
    assert _bias_counts("stage_ratio") == (0, 0, 0)
    assert _bias_counts("fewer_norms") == (1, 0, 0)
    assert _bias_counts("bn_to_ln") == (1, 54, 0)
