"""What this project assumes where the paper's numbers rest on something it does not say, per track.

Data, beside the paper's numbers (`roadmap.paper`): each assumption names the rows of the paper's
table it concerns, the footnote mark those rows carry and the footnote. The `--paper` staircase
marks them (`analysis.assumptions`), `roadmap steps` prints them (`assumption`), and so does
docs/fidelity.md.
"""

from __future__ import annotations

from dataclasses import dataclass

EVERY_STEP = None  # `Assumption.steps`: every step of the track, not its original-recipe row


@dataclass(frozen=True)
class Assumption:
    """One assumption of a track: its mark, the steps it concerns and its footnote."""

    mark: str  # the footnote mark on the rows it concerns (not one of analysis.table.MARKS)
    steps: tuple[str, ...] | None  # step names (the paper's row names); EVERY_STEP: all steps
    text: str  # the footnote, without its mark


ASSUMPTIONS: dict[str, tuple[Assumption, ...]] = {
    "resnet200": (
        # Table 11's baseline row; He et al., "Identity Mappings in Deep Residual Networks",
        # ECCV 2016, is the paper's reference [29].
        Assumption(
            "‡",
            ("resnet200_original_recipe", "resnet200_modern_recipe"),
            "Table 11's 78.20 is the pre-activation ResNet-200 of He et al. 2016 (the paper's "
            "[29]); this track trains a v1.5 ResNet-200 (post-activation, stride on the 3x3; "
            "timm's resnet200), an assumption of this project",
        ),
        # Table 5 gives drop path 0.5 for ConvNeXt-B only (roadmap.endpoints.paper_drop_path).
        Assumption(
            "§",
            EVERY_STEP,
            "drop path 0.5 on every step: inferred from ConvNeXt-B (Table 5), an assumption of "
            "this project; the paper gives none for these steps",
        ),
    ),
}


def assumptions(track: str) -> tuple[Assumption, ...]:
    """The assumptions of `track` (none for a track without any)."""
    return ASSUMPTIONS.get(track, ())


def step_marks(track: str, step: str, reference: bool = False) -> str:
    """The marks of the assumptions of `track` that concern `step` ("" if none).

    `reference`: the step is the track's original-recipe row, which `EVERY_STEP` leaves out.
    """
    return "".join(
        a.mark
        for a in assumptions(track)
        if (a.steps is EVERY_STEP and not reference) or (a.steps and step in a.steps)
    )


def assumption(track: str, step: str | None = None) -> str | None:
    """The footnotes of `track` that concern `step` (None: those of every step), or None."""
    texts = [
        a.text
        for a in assumptions(track)
        if (a.steps is EVERY_STEP if step is None else a.steps is not None and step in a.steps)
    ]
    return "; ".join(texts) or None
