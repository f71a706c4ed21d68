"""Recipes: the presets follow the paper / torchvision, `--set` parses and rejects clearly."""

from __future__ import annotations

import dataclasses
import importlib
import re

import pytest

from experiments.recipe import (
    PRESETS,
    Recipe,
    parse_overrides,
    recipe_from_dict,
    resolve_recipe,
    run_recipe,
    valid_keys,
)
from experiments.train.parts import build_loss, build_optimization


def test_paper_preset_is_table5() -> None:
    r = resolve_recipe("paper")
    assert (r.opt, r.betas, r.base_lr, r.base_batch) == (
        "adamw",
        (0.9, 0.999),
        4e-3,
        4096,
    )
    assert (r.weight_decay, r.decay_norms_biases, r.epochs, r.warmup_epochs) == (
        0.05,
        False,
        300,
        20.0,
    )
    assert (r.auto_augment, r.mixup, r.cutmix, r.reprob, r.smoothing) == (
        "rand-m9-mstd0.5-inc1",
        0.8,
        1.0,
        0.25,
        0.1,
    )
    # Drop path follows the model a track ends at (Table 5): ConvNeXt-T 0.1, ConvNeXt-B 0.5.
    assert r.drop_path is None
    assert run_recipe(r, "resnet50").drop_path == 0.1
    assert run_recipe(r, "resnet200").drop_path == 0.5
    assert (r.layer_scale, r.ema, r.interpolation, r.eval_crop_pct) == (
        1e-6,
        False,
        "bicubic",
        0.875,
    )
    # The paper gives no init: the authors' roadmap code's (docs/design.md), on every preset that
    # follows the paper; torchvision's ResNet init on `original`.
    assert {name: resolve_recipe(name).init for name in PRESETS} == {
        "paper": "authors_roadmap",
        "proxy": "authors_roadmap",
        "smoke": "authors_roadmap",
        "original": "torchvision",
    }
    # 4096 from GPUs x per-GPU batch x accumulation, and the lr scales with it.
    assert r.accum_for(8) == 4 and r.accum_for(32) == 1
    assert r.lr_for(8 * 128 * r.accum_for(8)) == pytest.approx(4e-3)
    with pytest.raises(ValueError, match="not a multiple"):
        r.accum_for(3)


def test_every_preset_trains_in_float32_and_bf16_is_one_set_away() -> None:
    # The official ConvNeXt code trains and evaluates in float32 (--use_amp false by default);
    # torchvision's reference recipe has --amp off too; the CPU never autocasts.
    assert {name: r.amp_dtype for name, r in PRESETS.items()} == dict.fromkeys(PRESETS, "float32")
    assert resolve_recipe("paper", ["recipe.amp_dtype=bfloat16"]).amp_dtype == "bfloat16"
    with pytest.raises(ValueError, match="recipe.amp_dtype must be one of"):
        resolve_recipe("paper", ["recipe.amp_dtype=fp8"])


def test_original_preset_is_torchvision_classic() -> None:
    r = resolve_recipe("original")
    assert (r.opt, r.base_lr, r.base_batch, r.weight_decay, r.epochs) == (
        "momentum",
        0.1,
        256,
        1e-4,
        90,
    )
    assert (r.sched, r.decay_epochs, r.decay_rate, r.warmup_epochs) == (
        "step",
        30.0,
        0.1,
        0,
    )
    assert not r.mixing and r.auto_augment is None and r.reprob == 0 and r.smoothing == 0
    assert (r.drop_path, r.layer_scale, r.interpolation) == (0.0, 0.0, "bilinear")


def test_every_preset_is_valid_and_distinct() -> None:
    assert set(PRESETS) == {"paper", "original", "proxy", "smoke"}
    assert len({dataclasses.astuple(r) for r in PRESETS.values()}) == 4
    smoke = PRESETS["smoke"]
    assert smoke.image_size == 32 and smoke.workers == 0


def test_overrides_are_typed() -> None:
    parsed = parse_overrides(
        [
            "recipe.epochs=5",
            "recipe.base_lr=1e-3",
            "recipe.ema=true",
            "recipe.auto_augment=none",
            "recipe.betas=0.9,0.95",
            "recipe.interpolation=bilinear",
        ]
    )
    assert parsed == {
        "recipe.epochs": 5,
        "recipe.base_lr": 1e-3,
        "recipe.ema": True,
        "recipe.auto_augment": None,
        "recipe.betas": (0.9, 0.95),
        "recipe.interpolation": "bilinear",
    }
    r = resolve_recipe("smoke", ["recipe.epochs=5", "recipe.ema=yes"])
    assert r.epochs == 5 and r.ema is True


def test_unknown_set_key_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as err:
        resolve_recipe("smoke", ["recipe.epoch=5"])
    message = str(err.value)
    assert "unknown key 'recipe.epoch'" in message and "Did you mean 'recipe.epochs'" in message
    assert all(key in message for key in valid_keys())
    with pytest.raises(ValueError, match="Valid keys: recipe.epochs"):
        resolve_recipe("smoke", ["spec.kernel_size=7"])
    with pytest.raises(ValueError, match="expected recipe.<field>=value"):
        resolve_recipe("smoke", ["recipe.epochs"])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("recipe.epochs=five", "expected an int"),
        ("recipe.ema=maybe", "expected true or false"),
        ("recipe.base_lr=nan", "expected a number"),
        ("recipe.epochs=0", "epochs must be >= 1"),
        ("recipe.opt=lamb", "opt must be one of"),
        ("recipe.image_size=16", "image_size must be >= 32"),
    ],
)
def test_bad_values_are_one_clear_error(item: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_recipe("smoke", [item])


def test_unknown_preset_suggests() -> None:
    with pytest.raises(ValueError, match="Did you mean 'paper'"):
        resolve_recipe("papr")


def test_odd_batch_with_mixup_is_rejected() -> None:
    with pytest.raises(ValueError, match="even batch_size"):
        resolve_recipe("paper", ["recipe.batch_size=7"])


def test_recipe_round_trips_through_json_types() -> None:
    r = resolve_recipe("paper")
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(r).items()}
    assert recipe_from_dict(data) == r
    with pytest.raises(ValueError, match="unknown fields: bogus"):
        recipe_from_dict({**data, "bogus": 1})


def test_optimizer_skips_decay_on_norms_and_biases() -> None:
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    paper = Recipe(epochs=10, warmup_epochs=2)
    opt, sched = build_optimization(paper, model, lr=1e-3, steps_per_epoch=5)
    decays = sorted((g["weight_decay"], len(g["params"])) for g in opt.param_groups)
    assert decays == [(0.0, 3), (0.05, 1)]  # conv bias, bn weight+bias | conv weight
    sched.step_update(0)
    assert opt.param_groups[0]["lr"] == 0.0  # warm-up starts at warmup_lr
    sched.step_update(10)  # end of warm-up (2 epochs x 5 steps)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)  # the peak, then cosine
    sched.step_update(30)  # half-way through the 40 cosine steps
    assert opt.param_groups[0]["lr"] == pytest.approx((1e-3 + paper.min_lr) / 2)
    sched.step_update(50)
    assert opt.param_groups[0]["lr"] == pytest.approx(paper.min_lr)
    original = resolve_recipe("original")
    opt, _ = build_optimization(original, model, lr=0.1, steps_per_epoch=5)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4]


def test_loss_follows_mixup_and_smoothing() -> None:
    mixup, loss = build_loss(resolve_recipe("paper"), 10)
    assert type(mixup).__name__ == "Mixup" and type(loss).__name__ == "SoftTargetCrossEntropy"
    mixup, loss = build_loss(resolve_recipe("smoke"), 10)
    assert mixup is None and type(loss).__name__ == "LabelSmoothingCrossEntropy"
    mixup, loss = build_loss(resolve_recipe("original"), 10)
    assert mixup is None and type(loss).__name__ == "CrossEntropyLoss"


def _augment_ops(transform) -> list:
    """timm AugmentOps inside a Compose (RandAugment's ops)."""
    return [op for t in transform.transforms for op in getattr(t, "ops", ())]


def test_paper_randaugment_posterize_at_magnitude_10_gives_black_not_an_error() -> None:
    # rand-m9-mstd0.5-inc1 draws magnitude 10 (clipped from N(9, 0.5)) in ~2% of its ops,
    # where increasing posterize keeps 0 bits; Pillow 13 raises there (data loader crash).
    import numpy as np
    from PIL import Image

    from experiments.train.parts import build_transforms

    recipe = dataclasses.replace(resolve_recipe("paper"), image_size=32)
    train, _ = build_transforms(recipe)
    ops = {op.name: op for op in _augment_ops(train)}
    assert "PosterizeIncreasing" in ops  # the paper's inc1 policy
    op = ops["PosterizeIncreasing"]
    op.prob, op.magnitude, op.magnitude_std = 1.0, 10, 0.0
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(1, 256, (40, 40, 3), dtype=np.uint8))
    assert not np.asarray(op(img)).any()  # 0 bits kept: black, as TF and Pillow < 13
    op.magnitude = 5  # 4 - int(5 / 10 * 4) = 2 bits: only the two high bits survive
    assert np.array_equal(np.asarray(op(img)), np.asarray(img) & 0b11000000)


def test_a_side_branch_after_the_endpoint_keeps_the_tracks_paper_drop_path(monkeypatch) -> None:
    steps_module = importlib.import_module("roadmap.steps")  # `roadmap.steps` is a function
    from roadmap.endpoints import ENDPOINTS, paper_drop_path

    last = [s for s in steps_module.steps("resnet50") if s.on_path][-1]
    expected = next(e.drop_path for e in ENDPOINTS if (e.track, e.step) == ("resnet50", last.name))
    side = steps_module.Row("kernel_3_again", last.group, False, {"kernel_size": 3}, ("resnet50",))
    monkeypatch.setattr(steps_module, "STEP_TABLE", (*steps_module.STEP_TABLE, side))
    steps_module._resolve.cache_clear()
    try:
        assert steps_module.steps("resnet50")[-1].name == "kernel_3_again"
        assert paper_drop_path("resnet50") == expected
    finally:
        steps_module._resolve.cache_clear()


def test_roadmap_recipe_shows_the_autocast_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    from roadmap.cli import main

    base = ["recipe", "--preset", "paper", "--step", "resnet50_modern_recipe"]
    assert main(base) == 0
    assert re.search(r'^recipe\.amp_dtype +"float32"$', capsys.readouterr().out, re.M)
    assert main([*base, "--set", "recipe.amp_dtype=bfloat16", "--format", "json"]) == 0
    assert '"amp_dtype": "bfloat16"' in capsys.readouterr().out
