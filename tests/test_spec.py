"""The spec: validation at construction, JSON round trip, replace by name."""

import dataclasses

import pytest

from roadmap import ArchSpec, steps
from roadmap.layers import ACT_LAYERS, NORM_LAYERS
from roadmap.spec import ACTS, BOOL_FIELDS, NORMS
from roadmap.steps import TRACKS


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kernel_size": 4}, "kernel_size"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": -3}, "kernel_size"),
        ({"act": "swish"}, "act"),
        ({"norm": "gn"}, "norm"),
        ({"stem": "conv3"}, "stem"),
        ({"width": 0}, "width"),
        ({"width": -96}, "width"),
        ({"width": 96.0}, "width"),
        ({"depths": ()}, "depths"),
        ({"depths": (3, 0, 9, 3)}, "depths"),
        ({"expansion": 0}, "expansion"),
        ({"patch_size": 0}, "patch_size"),
        ({"patch_size": 16.0}, "patch_size"),
        ({"depthwise": "yes"}, "depthwise"),
    ],
)
def test_invalid_values_fail_at_construction_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"ArchSpec\.{field} "):
        ArchSpec(**changes)
    with pytest.raises(ValueError, match=rf"ArchSpec\.{field} "):
        ArchSpec().replace(**changes)


def test_unknown_field_name_is_an_error_listing_fields():
    with pytest.raises(ValueError, match=r"no field 'kernel'.*kernel_size"):
        ArchSpec().replace(kernel=7)
    with pytest.raises(ValueError, match="no field 'colour'"):
        ArchSpec.from_dict({"colour": "red"})


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ArchSpec().width = 96  # type: ignore[misc]


@pytest.mark.parametrize("track", list(TRACKS))
def test_every_step_spec_round_trips_through_json(track):
    for step in steps(track):
        text = step.spec.to_json()
        assert ArchSpec.from_json(text) == step.spec
        assert hash(ArchSpec.from_json(text)) == hash(step.spec)


def test_depths_given_as_list_become_a_tuple():
    assert ArchSpec(depths=[3, 3, 9, 3]).depths == (3, 3, 9, 3)


def test_diff_names_changed_fields():
    a, b = ArchSpec(), ArchSpec(kernel_size=7, act="gelu")
    assert a.diff(b) == {"kernel_size": (3, 7), "act": ("relu", "gelu")}


def test_bool_fields_are_derived_from_the_defaults():
    assert {
        "depthwise", "inverted_bottleneck", "dwconv_first", "fewer_activations",
        "fewer_norms", "separate_downsampling",
    } <= set(BOOL_FIELDS)  # fmt: skip
    assert all(
        isinstance(f.default, bool) == (f.name in BOOL_FIELDS) for f in dataclasses.fields(ArchSpec)
    )


@pytest.mark.parametrize("name", BOOL_FIELDS)
@pytest.mark.parametrize("value", ["yes", 1, 0, None, 1.0])
def test_every_bool_field_rejects_a_non_bool(name, value):
    with pytest.raises(ValueError, match=rf"ArchSpec\.{name} must be a bool"):
        ArchSpec(**{name: value})
    for flag in (True, False):
        assert getattr(ArchSpec(**{name: flag}), name) is flag


@pytest.mark.parametrize(("field", "table"), [("norm", NORM_LAYERS), ("act", ACT_LAYERS)])
def test_norm_and_act_accept_exactly_the_layer_table_keys(field, table):
    assert set(table) == set({"norm": NORMS, "act": ACTS}[field])
    for key in table:
        assert getattr(ArchSpec(**{field: key}), field) == key
    near_misses = {"gn", "BN", "layernorm", "swish", "GELU", "", "bn "}
    others = near_misses | set(ACT_LAYERS) | set(NORM_LAYERS)
    for name in others - set(table):
        with pytest.raises(ValueError, match=rf"ArchSpec\.{field} must be one of") as err:
            ArchSpec(**{field: name})
        assert all(repr(key) in str(err.value) for key in table)
