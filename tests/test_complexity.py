"""Measured GFLOPs against the paper's Tables 10 and 11, and the counter against references."""

import pytest
import timm
import torch
import torchvision
from torch import nn

from roadmap import count_gflops, count_params, create_step_model, steps
from roadmap.paper import paper_row
from roadmap.steps import TRACKS

# Tables 10 and 11 print GFLOPs to two decimals, so a faithful model is within 0.005 of them;
# 0.02 leaves room for the rounding of the paper's own counter and nothing more.
TOLERANCE = 0.02

# Where the published number cannot be reproduced, the test pins what the model measures.
# - resnet50 bn_to_ln: Table 10 says 4.46, Figure 2 says 4.2. Swapping BatchNorm for
#   LayerNorm adds no multiply-add, Table 11 shows the same step as unchanged (14.81 -> 14.81)
#   and the model measures 4.146, equal to fewer_norms: Figure 2's 4.2 is supported.
# - resnet50 separate_downsampling: Table 10 says 4.49. This step is ConvNeXt-T, proven equal
#   to timm's convnext_tiny weight for weight (test_convert), whose count is 4.456 (Figure 2:
#   4.5; fvcore, which also counts LayerNorm, gives 4.470). On the ResNet-200 track the same step
#   measures 15.355 against Table 11's 15.35, so the counter is not the difference.
PINNED = {
    ("resnet50", "bn_to_ln"): 4.145612928,
    ("resnet50", "separate_downsampling"): 4.455531264,
}


def _measured(track, name):
    with torch.device("meta"):
        return count_gflops(create_step_model(name, track))


@pytest.mark.parametrize(
    ("track", "name"),
    [(t, s.name) for t in TRACKS for s in steps(t) if paper_row(t, s.name)],
)
def test_measured_gflops_match_the_paper_tables(track, name):
    """Every step that the paper's tables report (a step of your own is not in them)."""
    measured = _measured(track, name)
    published = paper_row(track, name).gflops
    if (track, name) in PINNED:
        assert measured == pytest.approx(PINNED[(track, name)], abs=1e-9)
        assert abs(measured - published) > TOLERANCE  # still a documented disagreement
    else:
        assert measured == pytest.approx(published, abs=TOLERANCE)


def test_bn_to_ln_adds_no_multiply_adds_on_either_track():
    for track in TRACKS:
        assert _measured(track, "bn_to_ln") == _measured(track, "fewer_norms")


@pytest.mark.parametrize(
    ("track", "name", "reference"),
    [
        ("resnet50", "resnet50_modern_recipe", lambda: torchvision.models.resnet50()),
        (
            "resnet50",
            "separate_downsampling",
            lambda: timm.create_model("convnext_tiny"),
        ),
        (
            "resnet50",
            "separate_downsampling",
            lambda: torchvision.models.convnext_tiny(),
        ),
        (
            "resnet200",
            "resnet200_modern_recipe",
            lambda: timm.create_model("resnet200"),
        ),
        (
            "resnet200",
            "separate_downsampling",
            lambda: timm.create_model("convnext_base"),
        ),
    ],
)
def test_endpoints_count_exactly_as_the_reference_models(track, name, reference):
    with torch.device("meta"):
        ref = reference()
    assert _measured(track, name) == count_gflops(ref)


def test_counter_counts_one_flop_per_multiply_add():
    # ResNet's stem conv: 64 x 112 x 112 outputs, 3 x 7 x 7 multiply-adds each, no bias.
    conv = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    assert count_gflops(conv) * 1e9 == pytest.approx(64 * 112 * 112 * 3 * 7 * 7)
    # a depthwise 7x7 conv counts 49 per output; norms and activations count nothing
    dw = nn.Sequential(nn.Conv2d(3, 3, 7, padding=3, groups=3), nn.BatchNorm2d(3), nn.GELU())
    assert count_gflops(dw) * 1e9 == pytest.approx(3 * 224 * 224 * 49)


def test_counting_leaves_the_model_untouched():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_gflops(model, image_size=32)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu"
    assert count_params(model) == 4 * 3 * 9 + 4 + 8
