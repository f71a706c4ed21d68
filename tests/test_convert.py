"""Weight-level equivalence with torchvision and timm, and strictness of the converters."""

import pytest
import timm
import torch

from roadmap import create_step_model
from roadmap.convert import convert_state_dict, load_reference
from roadmap.endpoint_check import check_endpoint, randomise
from roadmap.endpoints import ENDPOINTS

# Equal graphs: ResNets give bit-identical logits; ConvNeXt differs only in float32 summation
# order (our 1x1 convs vs timm's nn.Linear), ~1e-6 on O(1) logits. 1e-5 is tight enough to
# catch any swapped, transposed or missing tensor (those move logits by >1e-2).
TOLERANCE = 1e-5


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.track}-{e.step}")
def test_endpoint_logits_equal_the_reference(endpoint):
    result = check_endpoint(endpoint, image_size=64, batch=2, seed=1)
    assert result["logit_abs_max"] > 0.1  # a meaningful comparison, not two zero vectors
    assert result["max_abs_diff"] <= TOLERANCE, result


def test_conversion_detects_a_corrupted_tensor():
    ref = timm.create_model("convnext_tiny")
    randomise(ref, torch.Generator().manual_seed(0), calibrate=torch.zeros(0))  # gamma ~ 1
    model = create_step_model("separate_downsampling").eval()
    sd = ref.state_dict()
    sd["stages.2.blocks.4.mlp.fc1.weight"] = sd["stages.2.blocks.4.mlp.fc1.weight"] * 3.0
    load_reference(model, sd, "timm_convnext")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(model(x), ref(x), atol=TOLERANCE)


def test_unused_source_tensor_is_an_error():
    sd = dict(timm.create_model("convnext_tiny").state_dict())
    sd["stages.0.blocks.0.extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"unused source tensors: stages\.0\.blocks\.0\.extra"):
        convert_state_dict(sd, "timm_convnext", create_step_model("separate_downsampling"))


def test_missing_source_tensor_is_an_error():
    sd = dict(timm.create_model("convnext_tiny").state_dict())
    del sd["stages.3.blocks.2.gamma"]
    with pytest.raises(ValueError, match=r"not filled: stages\.3\.blocks\.2\.gamma"):
        convert_state_dict(sd, "timm_convnext", create_step_model("separate_downsampling"))


def test_wrong_architecture_is_an_error():
    sd = timm.create_model("convnext_tiny").state_dict()
    with pytest.raises(ValueError, match="shape mismatches"):
        convert_state_dict(sd, "timm_convnext", create_step_model("kernel_7"))
    with pytest.raises(ValueError, match="unknown source"):
        convert_state_dict(sd, "keras", create_step_model("kernel_7"))
