"""The training recipe (`Recipe`, apart from the architecture), its presets and `--set` overrides.

`resolve_recipe` checks overrides; `run_recipe` sets the track's drop path (docs/recipe.md).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from experiments.timm_names import recipe_string_problem
from roadmap.endpoints import paper_drop_path
from roadmap.errors import UserError
from roadmap.spec import INIT_NAMES

OPTIMIZERS = ("adamw", "momentum")  # timm: AdamW; SGD with (non-Nesterov) momentum
SCHEDULES = ("cosine", "step")
AMP_DTYPES = ("bfloat16", "float16", "float32")
# The fields that may be None, each with a value of the type that a value given for it has.
OPTIONAL: dict[str, Any] = {"auto_augment": "", "drop_path": 0.0}


Rule = tuple[Callable[[Any], bool], str]


def _at_least(low: float) -> Rule:
    return (lambda v: v >= low), f">= {low:g}"


def _above(low: float) -> Rule:
    return (lambda v: v > low), f"> {low:g}"


def _within(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Rule:
    def ok(v: float) -> bool:
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return ok, f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _one_of(choices: tuple[str, ...]) -> Rule:
    return (lambda v: v in choices), f"one of {', '.join(choices)}"


# Allowed values of each field beyond its type: (test, the test in words for the error).
RULES: dict[str, Rule] = {
    "epochs": _at_least(1),
    "warmup_epochs": _at_least(0),
    "batch_size": _at_least(1),
    "accum_steps": ((lambda v: v >= 0), ">= 0 (0: reach base_batch)"),
    "base_lr": _above(0),
    "base_batch": _at_least(1),
    "min_lr": _at_least(0),
    "warmup_lr": _at_least(0),
    "opt": _one_of(OPTIMIZERS),
    "weight_decay": _at_least(0),
    "sched": _one_of(SCHEDULES),
    "decay_epochs": _above(0),
    "decay_rate": _within(0, 1, low_open=True),
    "clip_grad": _at_least(0),
    "image_size": ((lambda v: v >= 32), ">= 32 (the networks stride 32)"),
    "eval_crop_pct": _within(0, 1, low_open=True),
    "scale_min": _within(0, 1, low_open=True),
    "hflip": _within(0, 1),
    "color_jitter": _at_least(0),
    "mixup": _at_least(0),
    "cutmix": _at_least(0),
    "mixup_prob": _within(0, 1),
    "mixup_switch_prob": _within(0, 1),
    "reprob": _within(0, 1),
    "smoothing": _within(0, 1, high_open=True),
    "drop_path": _within(0, 1, high_open=True),
    "layer_scale": ((lambda v: v >= 0), ">= 0 (0: off)"),
    "init": _one_of(INIT_NAMES),
    "ema_decay": _within(0, 1, low_open=True, high_open=True),
    "workers": _at_least(0),
    "threads": _at_least(0),
    "amp_dtype": _one_of(AMP_DTYPES),
    "checkpoint_minutes": _above(0),
    "keep_checkpoints": _at_least(1),
    "log_every": _at_least(1),
    "builtin_classes": _within(2, 10),
    "builtin_train_per_class": _at_least(1),
    "builtin_val_per_class": _at_least(1),
    "eval_every": _at_least(1),
}


@dataclass(frozen=True)
class Recipe:
    """How to train: optimization, augmentation, regularization, system and data sizes."""

    # -- schedule and optimizer (paper: Table 5; original: torchvision's classic recipe)
    epochs: int = 300
    # Linear warm-up, then `sched` over the remaining epochs.
    warmup_epochs: float = 20.0
    batch_size: int = 128  # per device (GPU or CPU process)
    # Micro-batches per optimizer step; 0: chosen at run time so that devices x batch_size x
    # accum_steps == base_batch (the paper's 4096 on any device count that divides it).
    accum_steps: int = 0
    # Peak learning rate at base_batch, scaled linearly with the effective batch.
    base_lr: float = 4e-3
    base_batch: int = 4096
    min_lr: float = 1e-6  # end of the cosine
    warmup_lr: float = 0.0  # learning rate of the first update
    opt: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW only
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.05
    # False: no weight decay on 1-D parameters (norms, biases, layer scales), as ConvNeXt.
    decay_norms_biases: bool = False
    sched: str = "cosine"
    decay_epochs: float = 30.0  # step schedule: lr x decay_rate every decay_epochs
    decay_rate: float = 0.1
    clip_grad: float = 0.0  # max gradient norm; 0: none (the paper clips nothing)
    # -- data and augmentation (timm's create_transform and Mixup)
    image_size: int = 224
    eval_crop_pct: float = 0.875  # eval: resize to image_size / crop_pct, center crop
    eval_every: int = 1  # evaluate after every eval_every-th epoch, and after the last
    interpolation: str = "bicubic"
    scale_min: float = 0.08  # RandomResizedCrop's smallest area fraction
    hflip: float = 0.5
    color_jitter: float = 0.4  # timm ignores it when auto_augment is set
    auto_augment: str | None = "rand-m9-mstd0.5-inc1"  # RandAugment (9, 0.5)
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    reprob: float = 0.25  # random erasing
    smoothing: float = 0.1  # label smoothing
    # Leave out the files `roadmap data check` finds bad (listed in config.json) and skip a file
    # that breaks during training (listed in result.json); false: refuse the dataset instead.
    skip_bad_images: bool = False
    # -- the model's training arguments (roadmap.build_model; the spec stays the step's)
    # Stochastic depth rate of the last block (drop_path_rate); none: the paper's for the run's
    # track, that of the ConvNeXt it ends at (roadmap.endpoints.paper_drop_path, see run_recipe).
    drop_path: float | None = None
    layer_scale: float = 1e-6  # every block's gamma, Table 5; 0: off, as the authors' commands
    init: str = "authors_roadmap"  # roadmap.spec.INIT_NAMES; docs/design.md "Initialisation"
    ema: bool = False  # off for roadmap steps (the paper: EMA hurts BatchNorm models)
    ema_decay: float = 0.9999
    # -- system
    workers: int = 10  # data-loading processes per device (0: in the main process)
    threads: int = 0  # torch threads; 0: the executor's share, else torch's default
    amp_dtype: str = "float32"  # CUDA autocast (bf16; fp16 + scaler); CPU: fp32 (compute_dtype)
    channels_last: bool = True  # memory format of the model and its inputs
    compile: bool = False  # torch.compile the training model
    checkpoint_minutes: float = 30.0  # checkpoint this often within an epoch too
    keep_checkpoints: int = 2
    keep_final_checkpoint: bool = True  # False: delete the checkpoints once the run is done
    log_every: int = 50  # steps between progress lines (non-interactive output)
    # Also log each epoch to TensorBoard (<out>/tensorboard/) and each step, epoch and the config
    # to Weights & Biases (wandb_log.py): the optional extras [tensorboard] and [wandb].
    tensorboard: bool = False
    wandb: bool = False
    # -- the built-in dataset (no --data): experiments/train/shapes.py
    builtin_classes: int = 10
    builtin_train_per_class: int = 200
    builtin_val_per_class: int = 50
    builtin_seed: int = 0  # the dataset's own seed: every run sees the same images

    def __post_init__(self) -> None:
        """Check every field but timm's strings (`timm_checked`), so a bad recipe fails early."""
        for f in fields(self):
            value, sample = getattr(self, f.name), _sample(f.name, f.default)
            if not (value is None and f.name in OPTIONAL or _fits(value, sample)):
                kind = _kind_name(sample) + (" or none" if f.name in OPTIONAL else "")
                raise UserError(f"recipe.{f.name} must be {kind}, got {value!r}")
            if isinstance(sample, float) and isinstance(value, int):
                object.__setattr__(self, f.name, float(value))
        for name, (ok, rule) in RULES.items():
            value = getattr(self, name)
            if value is not None and not ok(value):
                raise UserError(f"recipe.{name} must be {rule}, got {value!r}")
        if self.warmup_epochs >= self.epochs:
            raise UserError(
                f"recipe.warmup_epochs must be below recipe.epochs ({self.epochs}), "
                f"got {self.warmup_epochs!r}"
            )
        if self.mixing and self.batch_size % 2:
            raise UserError(
                f"recipe.batch_size: Mixup/CutMix need an even batch_size, got {self.batch_size}"
            )

    @property
    def mixing(self) -> bool:
        """Whether Mixup/CutMix is on."""
        return self.mixup_prob > 0 and (self.mixup > 0 or self.cutmix > 0)

    def torch_threads(self, share: int = 0) -> int:
        """Torch threads a run applies: `threads` if set, else the job's share (docs/sweeps.md)."""
        return self.threads or share

    def accum_for(self, world_size: int) -> int:
        """Micro-batches per optimizer step on `world_size` devices (resolves accum_steps=0)."""
        if self.accum_steps:
            return self.accum_steps
        per_step = world_size * self.batch_size
        if self.base_batch % per_step:
            raise UserError(
                f"recipe: base_batch {self.base_batch} is not a multiple of {world_size} "
                f"device(s) x batch_size {self.batch_size}; set recipe.accum_steps"
            )
        return self.base_batch // per_step

    def evaluates_after(self, epoch: int) -> bool:
        """Whether the run evaluates after `epoch` (1-based): each eval_every-th, the last."""
        return epoch % self.eval_every == 0 or epoch >= self.epochs

    def lr_for(self, effective_batch: int) -> float:
        """Peak learning rate: base_lr scaled linearly from base_batch to `effective_batch`."""
        return self.base_lr * effective_batch / self.base_batch


def _sample(name: str, default: Any) -> Any:
    """A value of field `name`'s type: its default, or OPTIONAL's where the default is None."""
    return OPTIONAL[name] if default is None else default


def _fits(value: Any, default: Any) -> bool:
    """Whether `value` has the type of the field's default (ints pass as floats)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and math.isfinite(value)
    if isinstance(default, tuple):
        return (
            isinstance(value, tuple)
            and len(value) == len(default)
            and all(_fits(v, d) for v, d in zip(value, default, strict=True))
        )
    return isinstance(value, type(default))


def _kind_name(default: Any) -> str:
    """What `_fits` expects, in words."""
    if isinstance(default, tuple):
        return f"{len(default)} comma-separated numbers"
    names = {bool: "true or false", int: "an int", float: "a number", str: "a string"}
    return names[type(default)]


# ImageNet-1K per "A ConvNet for the 2020s", Table 5 / Appendix A.1, in float32 as the official
# code trains (docs/training.md, "Precision"): the class defaults.
PAPER = Recipe()

# fmt: off
# torchvision's classic ResNet-50 recipe (references/classification, the 76.13% weights): SGD
# momentum 0.9, lr 0.1 at batch 256 (8 GPUs x 32), wd 1e-4 on every parameter, 90 epochs, lr / 10
# every 30, RandomResizedCrop + flip only, bilinear, eval resize 256 / crop 224.
ORIGINAL = dataclasses.replace(
    PAPER, epochs=90, warmup_epochs=0.0, batch_size=32, base_lr=0.1, base_batch=256, min_lr=0.0,
    opt="momentum", weight_decay=1e-4, decay_norms_biases=True, sched="step", decay_epochs=30.0,
    interpolation="bilinear", color_jitter=0.0, auto_augment=None, mixup=0.0, cutmix=0.0,
    reprob=0.0, smoothing=0.0, drop_path=0.0, layer_scale=0.0, init="torchvision", workers=16,
)

# The paper's recipe for an ImageNet-100-style subset (100 classes, ~1300 train images each) at
# 128 px on one to eight GPUs: 100 epochs, 5 warm-up, effective batch 1024 at the paper's lr per
# image (4e-3 / 4096 = 1e-3 / 1024); the paper's augmentation and regularization.
PROXY = dataclasses.replace(
    PAPER, epochs=100, warmup_epochs=5.0, base_lr=1e-3, base_batch=1024, image_size=128, workers=8,
)

# Seconds on a 2-core CPU: the built-in dataset at 32 px, 2 epochs of 31 steps, light
# augmentation. Two deviations make ~60 steps informative (docs/training.md, "Presets"): layer
# scale 0.1 (at 1e-6 the residual branches stay asleep that long) and no stochastic depth.
# Evaluation after the last epoch only, on 1200 images, so that a step's seed-to-seed std is not
# mostly the measurement error of a small validation set (docs/training.md, "The built-in dataset").
SMOKE = dataclasses.replace(
    PAPER, epochs=2, warmup_epochs=0.3, batch_size=32, accum_steps=1, base_lr=1e-3, base_batch=32,
    min_lr=1e-5, image_size=32, eval_crop_pct=1.0, scale_min=0.8, color_jitter=0.0,
    auto_augment=None, mixup=0.0, cutmix=0.0, reprob=0.0, drop_path=0.0, layer_scale=0.1,
    workers=0, threads=1, checkpoint_minutes=5.0, keep_final_checkpoint=False, log_every=10,
    builtin_train_per_class=100, builtin_val_per_class=120, eval_every=2,
)
# fmt: on

PRESETS: dict[str, Recipe] = {"paper": PAPER, "original": ORIGINAL, "proxy": PROXY, "smoke": SMOKE}


def compute_dtype(amp_dtype: str, device_type: str) -> str:
    """The dtype a run computes in: its recipe's `amp_dtype` on CUDA, float32 on other devices."""
    return amp_dtype if device_type == "cuda" else "float32"


def valid_keys() -> list[str]:
    """Every key `--set` accepts: `recipe.<field>`."""
    return [f"recipe.{f.name}" for f in fields(Recipe)]


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """Parse `recipe.<field>=value` strings into {key: typed value}; errors list valid keys."""
    defaults = {f"recipe.{f.name}": _sample(f.name, f.default) for f in fields(Recipe)}
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = str(item).partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected recipe.<field>=value")
        if key not in defaults:
            near = difflib.get_close_matches(key, defaults, n=1)
            near = near or difflib.get_close_matches(f"recipe.{key}", defaults, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise UserError(f"--set: unknown key {key!r}.{hint} Valid keys: {', '.join(defaults)}")
        if key.removeprefix("recipe.") in OPTIONAL and text.lower() in ("none", "null"):
            parsed[key] = None
            continue
        value = _parse(text, defaults[key])
        if value is None:
            raise UserError(f"--set {key}={text}: expected {_kind_name(defaults[key])}")
        parsed[key] = value
    return parsed


def _parse(text: str, default: Any) -> Any:
    """`text` as the type of `default`, or None if it is not one."""
    if isinstance(default, bool):
        return {"true": True, "yes": True, "1": True, "on": True}.get(
            text.lower(), False if text.lower() in ("false", "no", "0", "off") else None
        )
    if isinstance(default, tuple):
        parts = [_parse(p.strip(), d) for p, d in zip(text.split(","), default, strict=False)]
        ok = len(text.split(",")) == len(default) and None not in parts
        return tuple(parts) if ok else None
    try:
        value = type(default)(text)
    except ValueError:
        return None
    return None if isinstance(value, float) and not math.isfinite(value) else value


def resolve_recipe(preset: str, overrides: Iterable[str] = ()) -> Recipe:
    """The recipe of `preset` with `recipe.<field>=value` overrides applied and checked."""
    if preset not in PRESETS:
        near = difflib.get_close_matches(preset, PRESETS, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise UserError(f"unknown preset {preset!r}.{hint} Presets: {', '.join(PRESETS)}")
    changes = {k.removeprefix("recipe."): v for k, v in parse_overrides(overrides).items()}
    recipe = dataclasses.replace(PRESETS[preset], **changes)
    for extra in ("tensorboard", "wandb"):  # the optional extras a recipe can ask for
        if getattr(recipe, extra) and importlib.util.find_spec(extra) is None:
            raise UserError(
                f"recipe.{extra}=true needs the {extra} package: "
                f"pip install 'convnext-roadmap[{extra}]'"
            )
    return timm_checked(recipe)


def timm_checked(recipe: Recipe) -> Recipe:
    """`recipe` once timm takes its strings (not in `__post_init__`: presets import no timm)."""
    if problem := recipe_string_problem(recipe.interpolation, recipe.auto_augment):
        raise UserError(problem)
    return recipe


def run_recipe(recipe: Recipe, track: str) -> Recipe:
    """The recipe of one run on `track`: the one place that decides its drop path.

    A recipe without a drop path (`paper`, `proxy`) takes the paper's for the track, the same
    for every step (`roadmap.endpoints.paper_drop_path` says why); a preset's or a `--set`
    value wins. Layer scale and init are the recipe's on every track. An unknown track is a
    UserError naming it.
    """
    if recipe.drop_path is not None:
        return recipe
    return dataclasses.replace(recipe, drop_path=paper_drop_path(track))


def build_arguments(recipe: Recipe) -> dict[str, Any]:
    """The arguments of `roadmap.build_model` that a run's recipe (`run_recipe`) sets."""
    if recipe.drop_path is None:
        raise ValueError("recipe.drop_path is none: take the run's recipe from run_recipe")
    return {
        "drop_path_rate": recipe.drop_path,
        "layer_scale_init": recipe.layer_scale or None,
        "init": recipe.init,
    }


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as config.json holds it: every field, tuples as lists."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(recipe).items()
    }


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """Inverse of `dataclasses.asdict` after a JSON round trip (as in config.json)."""
    unknown = sorted(set(data) - {f.name for f in fields(Recipe)})
    if unknown:
        raise UserError(f"config recipe has unknown fields: {', '.join(unknown)}")
    return timm_checked(
        Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    )
