"""The recipe's string fields: every one is checked when the recipe is made, timm's way."""

from __future__ import annotations

import dataclasses

import pytest
import timm.optim
from timm.data import create_transform
from torchvision.transforms import InterpolationMode

from experiments.recipe import OPTIMIZERS, OPTIONAL, Recipe, resolve_recipe
from experiments.timm_names import interpolations
from experiments.train.parts import build_transforms


def _string_fields() -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(Recipe)
        if isinstance(OPTIONAL.get(f.name, f.default), str)  # optional ones by their sample
    ]


@pytest.mark.parametrize("name", _string_fields())
def test_every_string_field_refuses_an_unknown_value(name: str) -> None:
    with pytest.raises(ValueError, match=f"recipe.{name}"):
        resolve_recipe("paper", [f"recipe.{name}=bogus"])


def test_the_string_fields_are_the_ones_expected() -> None:
    # A new string field needs its check (RULES or timm's parser): this list is a reminder.
    assert set(_string_fields()) == {
        "opt",
        "sched",
        "interpolation",
        "auto_augment",
        "amp_dtype",
        "init",
    }


def test_optimizers_are_timms() -> None:
    assert set(OPTIMIZERS) <= set(timm.optim.list_optimizers())


def test_interpolations_are_exactly_those_timm_builds() -> None:
    for mode in InterpolationMode:
        try:
            create_transform(32, is_training=False, interpolation=mode.value)
            create_transform(32, is_training=True, auto_augment="rand-m9",
                             interpolation=mode.value)  # fmt: skip
            works = True
        except KeyError:
            works = False
        assert works == (mode.value in interpolations()), mode.value
    assert {"bicubic", "bilinear"} <= set(interpolations())


@pytest.mark.parametrize(
    "policy",
    [
        "rand-m9-mstd0.5-inc1",
        "rand-m7-n3-mstd1-tweights",
        "augmix-m5-w3",
        "original",
        "originalr-mstd0.5",
        "v0",
        "3a",
    ],  # fmt: skip
)
def test_timms_policies_are_accepted_and_build(policy: str) -> None:
    recipe = resolve_recipe("paper", [f"recipe.auto_augment={policy}"])
    build_transforms(recipe)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("bogus", "Unknown AA policy bogus"),
        ("rand-m9-xx1", "Unknown RandAugment config section"),
        ("augmix-q9", "Unknown AugMix config section"),
        ("randx", "timm refuses it (AssertionError)"),
        ("rand-m9-mstd0.5-incl", "timm would ignore 'incl'"),
        ("", "empty; none turns the policy off"),
    ],
)
def test_policies_timm_refuses_or_would_ignore(policy: str, message: str) -> None:
    with pytest.raises(ValueError, match="recipe.auto_augment") as err:
        resolve_recipe("paper", [f"recipe.auto_augment={policy}"])
    assert message in str(err.value)
    assert resolve_recipe("paper", ["recipe.auto_augment=none"]).auto_augment is None
