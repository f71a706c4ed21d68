"""The builder: every step builds and trains; exact parameter counts; timm registration."""

import dataclasses

import pytest
import timm
import torch
import torchvision
from torch import nn

from roadmap import (
    ArchSpec,
    build_model,
    count_params,
    create_step_model,
    get_spec,
    get_step,
    steps,
)
from roadmap.layers import ACT_LAYERS, NORM_LAYERS, PointwiseConv2d
from roadmap.registry import MODEL_NAMES
from roadmap.steps import TRACKS


def _all_steps():
    return [pytest.param(s, id=f"{s.track}-{s.name}") for t in TRACKS for s in steps(t)]


@pytest.mark.parametrize("step", _all_steps())
def test_every_step_runs_forward_and_backward_on_cpu(step):
    torch.manual_seed(0)
    model = build_model(step.spec, num_classes=10, drop_path_rate=0.1)
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    ("track", "step", "params", "reference", "layer_scale"),
    [
        ("resnet50", "resnet50_modern_recipe", 25_557_032, "torchvision.resnet50", None),
        ("resnet50", "separate_downsampling", 28_589_128, "torchvision.convnext_tiny", 1e-6),
        ("resnet200", "resnet200_modern_recipe", 64_673_832, "timm.resnet200", None),
        ("resnet200", "separate_downsampling", 88_591_464, "timm.convnext_base", 1e-6),
    ],
)
def test_endpoint_parameter_counts_equal_the_references(
    track, step, params, reference, layer_scale
):
    """The ResNets have no layer scale: equal with it off; with it on, one gamma per block."""
    with torch.device("meta"):
        ours = create_step_model(step, track, layer_scale_init=layer_scale)
        with_scale = create_step_model(step, track, layer_scale_init=1e-6)
        lib, name = reference.split(".")
        ref = (
            getattr(torchvision.models, name)(weights=None)
            if lib == "torchvision"
            else timm.create_model(name)
        )
    assert count_params(ours) == params == count_params(ref)
    gammas = sum(b.conv3.conv.out_channels for s in with_scale.stages for b in s.blocks)
    assert count_params(with_scale) == params + (gammas if layer_scale is None else 0)


def test_unused_fields_have_neutral_defaults_and_still_build():
    """Fields that no step changes build at non-default values; defaults change nothing."""
    used = {k for t in TRACKS for s in steps(t) for k in s.changes}
    unused = [f.name for f in dataclasses.fields(ArchSpec) if f.name not in used]
    assert {"expansion", "norm_eps", "patch_size"} <= set(unused)
    other = {"expansion": 2, "norm_eps": 1e-3, "patch_size": 2}
    assert set(unused) <= set(other), f"give the new field a test value: {set(unused) - set(other)}"
    for step in (steps("resnet50")[0], steps("resnet50")[-1]):
        for name in unused:
            model = build_model(step.spec.replace(**{name: other[name]}), num_classes=5)
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    # the defaults of those fields are the plain torchvision ResNet-50, parameter for parameter
    tv = torchvision.models.resnet50(weights=None)
    ours = build_model(ArchSpec(), layer_scale_init=None)
    assert [tuple(p.shape) for p in ours.state_dict().values()] == [
        tuple(p.shape) for p in tv.state_dict().values()
    ]


def test_layer_scale_is_one_gamma_per_block_on_every_step():
    """One mechanism, never switched by a step: no norm weight doubles as the scale."""
    for step in (steps("resnet50")[0], get_step("fewer_activations"), steps("resnet50")[-1]):
        model = build_model(step.spec, layer_scale_init=1e-3)
        blocks = [b for s in model.stages for b in s.blocks]
        assert len(blocks) == sum(step.spec.depths)
        assert all(torch.all(b.gamma == 1e-3) for b in blocks)
        norms = [m for b in blocks for m in b.modules() if isinstance(m, nn.BatchNorm2d)]
        assert all(torch.all(m.weight == 1) for m in norms)
        off = build_model(step.spec, layer_scale_init=0)
        assert all(b.gamma is None for s in off.stages for b in s.blocks)
        out_chs = sum(b.conv3.conv.out_channels for b in blocks)
        assert count_params(model) - count_params(off) == out_chs
    convnext = create_step_model("separate_downsampling", layer_scale_init=1e-3)
    off = create_step_model("separate_downsampling", layer_scale_init=0)
    assert count_params(convnext) - count_params(off) == 96 * 3 + 192 * 3 + 384 * 9 + 768 * 3


def test_authors_roadmap_init_leaves_convs_at_pytorchs_default():
    """modeling_resnet.py:448-460: trunc-normal linears, zero bias; convs as nn.Conv2d inits."""
    torch.manual_seed(0)
    model = build_model(get_step("kernel_7").spec, init="authors_roadmap")
    for conv in [m for m in model.modules() if isinstance(m, nn.Conv2d)]:
        fan_in = conv.weight[0].numel()  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), ...)
        assert conv.weight.abs().max() <= fan_in**-0.5
        if conv.weight.numel() >= 10_000:
            assert conv.weight.std().item() == pytest.approx((3 * fan_in) ** -0.5, rel=0.1)
    assert model.head.fc.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert not model.head.fc.bias.any()
    assert build_model(ArchSpec()).head.fc.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_training_arguments_out_of_range_are_an_error_naming_them():
    for kwargs, name in (
        ({"drop_path_rate": 1.0}, "drop_path_rate"),
        ({"drop_path_rate": -0.1}, "drop_path_rate"),
        ({"layer_scale_init": -1e-6}, "layer_scale_init"),
        ({"init": "xavier"}, "init"),
    ):
        with pytest.raises(ValueError, match=rf"^{name} must be"):
            build_model(ArchSpec(), **kwargs)


def test_torchvision_init_is_torchvisions_resnet50_tensor_for_tensor():
    # Same seed, same modules in the same order: the same random draws, so the same tensors.
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None)
    torch.manual_seed(0)
    ours = build_model(ArchSpec(), layer_scale_init=None, init="torchvision")
    pairs = list(zip(tv.state_dict().values(), ours.state_dict().values(), strict=True))
    assert all(torch.equal(a, b) for a, b in pairs)


def test_torchvision_init_has_torchvisions_statistics_on_the_convnext_steps():
    """Convs: Kaiming normal, std sqrt(2 / fan_out) within 10%; norms 1 and 0; linears default."""
    for step in [s for s in steps("resnet50") if s.spec.dwconv_first][-2:]:
        torch.manual_seed(0)
        model = build_model(step.spec, layer_scale_init=None, init="torchvision")
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        for conv in convs:
            fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
            if conv.weight.numel() >= 10_000:  # enough draws for a 10% bound (~0.7% std error)
                assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.1)
            assert conv.bias is None or not conv.bias.any()
        fc = model.head.fc
        bound = 1 / fc.in_features**0.5  # nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in))
        assert fc.weight.abs().max() <= bound and fc.weight.std() > bound / 2
        kinds = tuple({t for e in NORM_LAYERS.values() for t in (e.layer_2d, e.layer_1d)})
        norms = [m for m in model.modules() if isinstance(m, kinds)]  # the layer table's norms
        assert norms
        assert all(torch.all(m.weight == 1) and not m.bias.any() for m in norms)
    trunc = build_model(steps("resnet50")[-1].spec, init="trunc_normal")
    assert trunc.stem.conv.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_drop_path_rises_linearly_to_the_rate():
    model = create_step_model("separate_downsampling", drop_path_rate=0.3)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for s in model.stages for b in s.blocks]
    assert len(rates) == 18 and rates[0] == 0.0
    assert rates[-1] == pytest.approx(0.3)
    assert rates == pytest.approx([0.3 * i / 17 for i in range(18)])


def test_timm_create_model_builds_every_step():
    for track in TRACKS:
        for step in steps(track):
            assert step.model_name in MODEL_NAMES
            assert timm.models.is_model(step.model_name)
    model = timm.create_model("resnet50_kernel_7", num_classes=7, drop_path_rate=0.1)
    assert model.spec == get_spec("kernel_7")
    assert model.stages[-1].blocks[-1].drop_path.drop_prob == pytest.approx(0.1)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    cfg = timm.data.resolve_data_config({}, model=model)
    assert cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 0.875
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("resnet50_kernel_7", pretrained=True)


def test_registered_names_shadow_no_timm_builtin():
    from timm.models._registry import _model_to_module

    assert all(_model_to_module[name] == "registry" for name in MODEL_NAMES)
    assert len(set(MODEL_NAMES)) == sum(len(steps(t)) for t in TRACKS)


def test_classifier_interface():
    model = create_step_model("kernel_7", num_classes=10)
    model.reset_classifier(3)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert model.forward_head(
        model.forward_features(torch.randn(2, 3, 32, 32)), pre_logits=True
    ).shape == (2, model.num_features)


@pytest.mark.parametrize("norm", list(NORM_LAYERS))
@pytest.mark.parametrize("act", list(ACT_LAYERS))
def test_norm_and_act_names_build_the_layers_of_the_table(norm, act):
    small = steps("resnet50")[-1].spec.replace(depths=(1, 1), width=8)
    entry = NORM_LAYERS[norm]
    for norm_eps, eps in ((None, entry.eps), (1e-3, 1e-3)):
        model = build_model(small.replace(norm=norm, act=act, norm_eps=norm_eps))
        norms = [m for m in model.modules() if isinstance(m, entry.layer_2d)]
        assert norms and all(m.eps == eps for m in norms)
        assert type(model.head.norm) is entry.layer_1d and model.head.norm.eps == eps
        acts = [type(m) for m in model.modules() if type(m) in (nn.ReLU, nn.GELU)]
        assert acts and set(acts) == {type(ACT_LAYERS[act]())}


@pytest.mark.parametrize("size", [1, 2, 7])
@pytest.mark.parametrize("bias", [True, False])
def test_a_pointwise_conv_is_the_conv_it_replaces(size: int, bias: bool) -> None:
    # Same parameters and state dict as nn.Conv2d; on channels-last CPU input a GEMM that gives
    # the conv's output and gradients to float32 rounding (different summation order).
    torch.manual_seed(0)
    fast = PointwiseConv2d(64, 96, 1, bias=bias)
    conv = nn.Conv2d(64, 96, 1, bias=bias)
    conv.load_state_dict(fast.state_dict())
    x = torch.randn(8, 64, size, size).to(memory_format=torch.channels_last)
    outs = []
    for layer in (fast, conv):
        xi = x.clone().requires_grad_()
        y = layer(xi)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append((y, xi.grad, layer.weight.grad))
        layer.zero_grad()
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert outs[0][0].is_contiguous(memory_format=torch.channels_last)


def test_the_builders_one_by_one_convs_are_pointwise() -> None:
    convs = [m for s in steps("resnet50") for m in build_model(s.spec).modules()
             if isinstance(m, nn.Conv2d)]  # fmt: skip
    for m in convs:
        one = m.kernel_size == (1, 1) and m.stride == (1, 1) and m.groups == 1
        assert isinstance(m, PointwiseConv2d) == one, m
    assert any(isinstance(m, PointwiseConv2d) for m in convs)
