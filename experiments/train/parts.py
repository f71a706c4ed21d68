"""Timm's parts, as a recipe selects them: transforms, optimizer and schedule, Mixup and loss."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageOps
from timm.data import Mixup, create_transform
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch import nn

from experiments.recipe import Recipe
from experiments.train import cuda
from roadmap.errors import UserError


def _posterize(img: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """Posterize keeping `bits_to_keep` high bits per channel; 0 bits gives a black image.

    timm's RandAugment with increasing posterize (the paper's `inc1`) asks for 0 bits at
    magnitude 10, which `m9-mstd0.5` reaches in ~2% of its samples: TensorFlow's RandAugment and
    Pillow < 13 return a black image there; Pillow 13 raises ValueError, and the data loader
    worker, then the whole run, dies within the first few hundred batches.
    """
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return img.point(lambda _: 0)
    return ImageOps.posterize(img, bits_to_keep)


def _keep_zero_bit_posterize(transform: Any) -> None:
    """Point every posterize op inside `transform` at `_posterize`.

    Walks timm's Compose / RandAugment / AutoAugment / AugMix containers. Only this transform
    object changes; timm's module tables are untouched.
    """
    name = getattr(transform, "name", None)
    if isinstance(name, str) and name.startswith("Posterize") and hasattr(transform, "aug_fn"):
        transform.aug_fn = _posterize
        return
    for attr in ("transforms", "ops", "policy"):
        for child in getattr(transform, attr, None) or ():
            for op in child if isinstance(child, list | tuple) else (child,):
                _keep_zero_bit_posterize(op)


def build_transforms(recipe: Recipe) -> tuple[Any, Any]:
    """Timm's train and eval transforms (PIL image -> normalized tensor)."""
    common = {"input_size": recipe.image_size, "interpolation": recipe.interpolation}
    train = create_transform(
        is_training=True,
        scale=(recipe.scale_min, 1.0),
        hflip=recipe.hflip,
        color_jitter=recipe.color_jitter or None,
        auto_augment=recipe.auto_augment,
        re_prob=recipe.reprob,
        re_mode="pixel",
        **common,
    )
    _keep_zero_bit_posterize(train)
    return train, create_transform(is_training=False, crop_pct=recipe.eval_crop_pct, **common)


def check_parts(recipe: Recipe, num_classes: int) -> None:
    """Build the recipe's transforms and loss once: what timm refuses fails before any run."""
    try:
        build_transforms(recipe)
        build_loss(recipe, num_classes)
    except Exception as err:  # noqa: BLE001 - whatever timm raises, said in one line
        raise UserError(
            f"recipe: timm cannot build its transforms or loss ({type(err).__name__}: {err})"
        ) from None


def build_optimization(
    recipe: Recipe, model: nn.Module, lr: float, steps_per_epoch: int
) -> tuple[Any, Any]:
    """Timm's optimizer and per-iteration schedule: linear warm-up, then cosine or step."""
    extra: dict[str, Any] = {"betas": recipe.betas} if recipe.opt == "adamw" else {}
    extra.update(cuda.optimizer_options(recipe.opt, next(model.parameters()).device))
    optimizer = create_optimizer_v2(
        model,
        recipe.opt,
        lr=lr,
        weight_decay=recipe.weight_decay,
        momentum=recipe.momentum,
        filter_bias_and_bn=not recipe.decay_norms_biases,
        **extra,
    )
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=recipe.sched,
        # Warm-up first, then the whole decay over the remaining epochs (as ConvNeXt's code).
        num_epochs=recipe.epochs - recipe.warmup_epochs,  # type: ignore[arg-type]
        warmup_prefix=True,
        warmup_epochs=recipe.warmup_epochs,  # type: ignore[arg-type]
        warmup_lr=recipe.warmup_lr,
        min_lr=recipe.min_lr,
        decay_epochs=recipe.decay_epochs,
        decay_rate=recipe.decay_rate,
        step_on_epochs=False,
        updates_per_epoch=steps_per_epoch,
    )
    return optimizer, scheduler


def build_loss(recipe: Recipe, num_classes: int) -> tuple[Mixup | None, nn.Module]:
    """Timm's Mixup/CutMix (None when off) and the matching training loss."""
    if recipe.mixing:
        mixup = Mixup(
            mixup_alpha=recipe.mixup,
            cutmix_alpha=recipe.cutmix,
            prob=recipe.mixup_prob,
            switch_prob=recipe.mixup_switch_prob,
            label_smoothing=recipe.smoothing,
            num_classes=num_classes,
        )
        return mixup, SoftTargetCrossEntropy()
    if recipe.smoothing:
        return None, LabelSmoothingCrossEntropy(recipe.smoothing)
    return None, nn.CrossEntropyLoss()
