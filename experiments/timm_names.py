"""The recipe's strings that timm reads, checked with timm's own parsers.

`interpolations()` are the resize filters timm's transforms take (train, eval and RandAugment);
`augment_policy_problem` asks timm's `create_transform` whether it can build an augmentation
policy (`rand-m9-mstd0.5-inc1`, `augmix-m5-w3`, `original`, ...); `recipe_string_problem` asks
both of a recipe's strings, so that a recipe timm refuses fails when it is resolved, not when a
run starts. timm is imported on the first question only (`roadmap --help` needs none).
"""

from __future__ import annotations

import functools
import re

AUGMENT_EXAMPLES = "rand-m9-mstd0.5-inc1, augmix-m5-w3, original, v0, 3a or none"


def _timm_interpolation(name: str) -> bool:
    """Whether timm's transforms take `name` (its torchvision mode and its PIL filter)."""
    from timm.data.transforms import str_to_interp_mode, str_to_pil_interp

    try:
        str_to_interp_mode(name)
        str_to_pil_interp(name)
    except KeyError:
        return False
    return True


@functools.cache
def interpolations() -> tuple[str, ...]:
    """The resize filters timm's train and eval transforms (and RandAugment) accept."""
    from torchvision.transforms import InterpolationMode

    return tuple(m.value for m in InterpolationMode if _timm_interpolation(m.value))


def recipe_string_problem(interpolation: str, auto_augment: str | None) -> str | None:
    """Why timm would refuse a recipe's interpolation or augmentation policy; None if neither."""
    if interpolation not in interpolations():
        return (
            f"recipe.interpolation must be one of {', '.join(interpolations())}, "
            f"got {interpolation!r}"
        )
    problem = None if auto_augment is None else augment_policy_problem(auto_augment)
    if problem:
        examples = f"policies look like {AUGMENT_EXAMPLES}"
        return f"recipe.auto_augment {auto_augment!r}: {problem}; {examples}"
    return None


@functools.lru_cache(maxsize=256)
def augment_policy_problem(policy: str) -> str | None:
    """Why timm would not run the augmentation policy `policy` as written; None if it would.

    timm's own parsers decide, through `create_transform` (RandAugment for `rand-...`, AugMix
    for `augmix-...`, else an AutoAugment policy). A section that they skip without a word
    (no number in it, e.g. the typo `incl` for `inc1`) is a problem too.
    """
    from timm.data import create_transform

    if not policy:
        return "empty; none turns the policy off"
    try:
        create_transform(32, is_training=True, auto_augment=policy)
    except (AssertionError, ValueError, KeyError, TypeError, IndexError) as err:
        return f"timm refuses it ({type(err).__name__}{f': {err}' if str(err) else ''})"
    first, *sections = policy.split("-")
    ignored = [
        part
        for part in sections
        if not re.search(r"\d", part) and not (first == "rand" and part.startswith("t"))
    ]
    if ignored:
        return (
            f"timm would ignore {', '.join(map(repr, ignored))} (a section is a key and a "
            "number, as in m9, n2, mstd0.5, inc1)"
        )
    return None
