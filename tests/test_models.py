"""Model family: presets, shapes, gradients, determinism, costs against model-spec.md, MSNet options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hsrpose.models import PoseNet, Preset, UnknownPresetError, create_model, get_preset, list_presets
from hsrpose.models.costs import model_cost
from hsrpose.models.msnet import MSNetBlock, Res2NetBottleneck
from hsrpose.models.registry import register_preset
from hsrpose.models.resnet import Bottleneck

# docs/architecture.md "Preset names" (paper rows, then the small presets).
PAPER_PRESETS = [
    "simplebaseline_res50_256x192",
    "simplebaseline_res101_256x192",
    "simplebaseline_res152_256x192",
    "simplebaseline_res50_256x192_k2",
    "simplebaseline_res50_256x192_k3",
    "simplebaseline_res50_384x288",
    "hsrnet59_256x192",
    "hsrnet110_256x192",
    "hsrnet161_256x192",
    "hsrnet59_256x192_k2",
    "hsrnet59_256x192_k3",
    "hsrnet59_384x288",
    "hsr_msnet59_256x192",
    "hsr_msnet59_384x288",
]
# Named in the paper's text (Section 4.2), in no table: no spec costs to compare with.
TEXT_PRESETS = ["hsr_msnet110_256x192", "hsr_msnet161_256x192"]
TINY_PRESETS = ["hsrnet_tiny_128x96", "hsr_msnet_tiny_128x96"]
# MPII (issue 19): 256x256, 16 joints; the architecture of each family's 256x192 paper row.
MPII_PRESETS = {
    "simplebaseline_res50_256x256": "simplebaseline_res50_256x192",
    "hsrnet59_256x256": "hsrnet59_256x192",
    "hsr_msnet59_256x256": "hsr_msnet59_256x192",
}

# model-spec.md "Expected costs": params (M), GMACs.
SPEC_COSTS = {
    "simplebaseline_res50_256x192": (34.000, 5.426),
    "simplebaseline_res101_256x192": (52.992, 9.063),
    "simplebaseline_res152_256x192": (68.635, 12.699),
    "simplebaseline_res50_256x192_k2": (26.135, 4.369),
    "simplebaseline_res50_256x192_k3": (29.412, 4.810),
    "simplebaseline_res50_384x288": (34.000, 12.209),
    "hsrnet59_256x192": (22.596, 6.521),
    "hsrnet110_256x192": (41.588, 10.158),
    "hsrnet161_256x192": (57.232, 13.794),
    "hsrnet59_256x192_k2": (18.664, 5.313),
    "hsrnet59_256x192_k3": (20.302, 5.816),
    "hsrnet59_384x288": (22.596, 14.672),
    "hsr_msnet59_256x192": (20.728, 6.012),
    "hsr_msnet59_384x288": (20.728, 13.527),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registry_holds_exactly_the_documented_names() -> None:
    assert list_presets() == PAPER_PRESETS + TEXT_PRESETS + TINY_PRESETS + list(MPII_PRESETS)
    for name in list_presets():
        p = get_preset(name)
        assert isinstance(p, Preset) and p.name == name
        assert p.heatmap_hw == (p.input_hw[0] // 4, p.input_hw[1] // 4)


def test_registry_refuses_duplicates_and_names_near_misses() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_preset(paper_row="-", input_hw=(256, 192), backbone="x", num_deconv=2, deconv_kernel=4, description="")
        def hsrnet59_256x192(num_keypoints: int = 17) -> nn.Module:  # noqa: F811 - the duplicate is the point
            raise AssertionError

    builder = get_preset("hsrnet59_256x192").builder  # still the table's, not the duplicate
    assert builder.__name__ == "hsrnet59_256x192" and builder.__module__ == "hsrpose.models.presets"
    with pytest.raises(UnknownPresetError, match="hsrnet59_256x192"):
        create_model("hsrnet59_256x129")


def test_preset_defining_arguments_cannot_be_overridden() -> None:
    with pytest.raises(TypeError):
        create_model("hsrnet_tiny_128x96", deconv_kernel=3)


def _test_input_hw(name: str, model: PoseNet) -> tuple[int, int]:
    """Small inputs for paper presets (CPU time: the network is the same at any multiple of its
    stride, 32 for ResNet rows, 16 for HSRNet rows); the tiny presets run at their own size.
    Full-size output shapes are checked on the meta device in test_params_and_macs_match_spec."""
    if name in TINY_PRESETS:
        return get_preset(name).input_hw
    return (32, 32) if model.input_multiple == 32 else (32, 48)


@pytest.mark.parametrize("name", PAPER_PRESETS + TEXT_PRESETS + TINY_PRESETS)
def test_forward_backward_determinism(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_keypoints=17)
    h, w = _test_input_hw(name, model)
    x = torch.randn(2, 3, h, w)

    model.train()
    y = model(x)
    assert y.shape == (2, 17, h // 4, w // 4)
    y.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads), "a parameter did not get a gradient"
    assert all(torch.isfinite(g).all() for g in grads)
    assert model.final_layer.weight.grad.abs().sum() > 0  # type: ignore[union-attr]

    model.eval()
    with torch.no_grad():
        a, b = model(x[:1]), model(x[:1])
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)


def test_custom_keypoint_count() -> None:
    model = create_model("hsr_msnet_tiny_128x96", num_keypoints=5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 96)).shape == (1, 5, 32, 24)


@pytest.mark.parametrize("name", list(SPEC_COSTS))
def test_params_and_macs_match_spec(name: str) -> None:
    spec_params_m, spec_gmacs = SPEC_COSTS[name]
    cost = model_cost(name)
    assert abs(cost.params / 1e6 - spec_params_m) / spec_params_m < 0.001
    assert abs(cost.gmacs - spec_gmacs) / spec_gmacs < 0.01
    expected_hm = {(256, 192): (64, 48), (384, 288): (96, 72)}[get_preset(name).input_hw]
    assert cost.heatmap_hw == expected_hm == get_preset(name).heatmap_hw


@pytest.mark.parametrize("name", TINY_PRESETS)
def test_tiny_presets_are_small(name: str) -> None:
    cost = model_cost(name)
    assert cost.params < 1.5e6
    assert cost.gmacs < 0.12
    assert cost.heatmap_hw == (32, 24) == get_preset(name).heatmap_hw


def test_transposed_conv_macs_follow_the_spec_formula() -> None:
    # Spec: a transposed conv costs C_in*C_out*k*k*H_in*W_in; the 1x1 final conv K*C*H*W (+ no bias MACs).
    from torch.utils.flop_counter import FlopCounterMode

    deconv = nn.ConvTranspose2d(8, 4, kernel_size=4, stride=2, padding=1, bias=False)
    with FlopCounterMode(display=False) as fc:
        deconv(torch.randn(1, 8, 5, 3))
    assert fc.get_total_flops() // 2 == 8 * 4 * 4 * 4 * 5 * 3


def _main_path_depth(model: PoseNet) -> int:
    """Depth as ResNet/DetNet count it: the stem conv, three main-path convs per bottleneck
    (1x1, 3x3 -- for MSNet/Res2Net the split 3x3 group counts as one layer --, 1x1),
    and the classifier fc of the ImageNet network; shortcut projections do not count.
    So depth = 1 + 3 * (number of blocks) + 1."""
    blocks = [m for m in model.modules() if isinstance(m, (Bottleneck, MSNetBlock, Res2NetBottleneck))]
    return 1 + 3 * len(blocks) + 1


@pytest.mark.parametrize(
    "name, depth",
    [
        ("simplebaseline_res50_256x192", 50),
        ("simplebaseline_res101_256x192", 101),
        ("simplebaseline_res152_256x192", 152),
        ("hsrnet59_256x192", 59),
        ("hsrnet110_256x192", 110),
        ("hsrnet161_256x192", 161),
        ("hsr_msnet59_256x192", 59),
        ("hsr_msnet110_256x192", 110),
        ("hsr_msnet161_256x192", 161),
    ],
)
def test_layer_count_follows_from_block_counts(name: str, depth: int) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert _main_path_depth(model) == depth
    if name.startswith("hsr"):
        # Stages 5 and 6 (layer4, layer5): 3 blocks each, stride 16, first block with the projection.
        for stage in (model.layer4, model.layer5):
            assert len(stage) == 3
            assert stage[0].extra_conv is not None and all(b.extra_conv is None for b in stage[1:])
        assert model.output_stride == 16 and not hasattr(model, "layer6")


def test_parameter_names_follow_torchvision_detnet_and_simplebaseline() -> None:
    with torch.device("meta"):
        keys = set(create_model("hsrnet59_256x192").state_dict())
        sb_keys = set(create_model("simplebaseline_res50_256x192").state_dict())
    for k in ("conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer3.5.conv3.weight",
              "layer4.0.extra_conv.0.weight", "layer4.0.extra_conv.1.running_mean", "layer5.2.conv2.weight",
              "deconv_layers.0.weight", "deconv_layers.4.weight", "final_layer.bias"):  # fmt: skip
        assert k in keys, k
    assert "deconv_layers.6.weight" not in keys  # HSRNet rows: 2 deconvs
    assert {"layer4.0.downsample.0.weight", "deconv_layers.7.running_var"} <= sb_keys


def test_head_init_follows_spec() -> None:
    torch.manual_seed(0)
    model = create_model("hsrnet59_256x192_k3")
    deconv = model.deconv_layers[0]
    assert isinstance(deconv, nn.ConvTranspose2d) and deconv.bias is None
    assert abs(deconv.weight.std().item() - 0.001) < 1e-4
    assert abs(model.final_layer.weight.std().item() - 0.001) < 2e-4
    assert torch.all(model.final_layer.bias == 0)
    assert torch.all(model.deconv_layers[1].weight == 1) and torch.all(model.deconv_layers[1].bias == 0)
    # Stage 5-6 convs: N(0, sqrt(2 / (k*k*C_out))).
    conv2 = model.layer4[1].conv2
    expected = (2.0 / (3 * 3 * 256)) ** 0.5
    assert abs(conv2.weight.std().item() - expected) / expected < 0.05


def test_msnet_block_computes_equation_1_and_2() -> None:
    torch.manual_seed(0)
    block = MSNetBlock(32, 32, width=16, subgroups=4, se=False).eval()
    x = torch.randn(1, 32, 6, 5)
    with torch.no_grad():
        h = torch.relu(block.bn1(block.conv1(x)))
        xs = h.split(4, dim=1)
        ys = []
        for i in range(4):
            inp = xs[0] if i == 0 else xs[i] + ys[-1]
            ys.append(torch.relu(block.bns[i](block.convs[i](inp))))
        expected = torch.relu(x + block.bn3(block.conv3(torch.cat(ys, dim=1))))
        assert torch.allclose(block(x), expected, atol=1e-6)
    assert block.convs[0].dilation == (2, 2) and block.convs[0].stride == (1, 1)


def test_msnet_options_change_the_network_as_documented() -> None:
    def params(**kw: object) -> int:
        with torch.device("meta"):
            return sum(p.numel() for p in create_model("hsr_msnet59_256x192", **kw).parameters())

    base = params()
    # SE: two 1x1 convs 1024 -> 64 -> 1024 in each of the 6 blocks of stages 5-6.
    assert base - params(se=False) == 6 * 2 * 1024 * 64
    assert params(se_bias=True) - base == 6 * (64 + 1024)
    # n subgroups of W/n channels: n convs of (W/n)^2 * 9.
    assert base - params(subgroups=8) == 6 * 9 * (4 * 64 * 64 - 8 * 32 * 32)
    # W=348 is the literal "same parameters as HSRNet-59" reading (within 0.3%).
    with torch.device("meta"):
        hsrnet = sum(p.numel() for p in create_model("hsrnet59_256x192").parameters())
    assert abs(params(msnet_width=348) - hsrnet) / hsrnet < 0.003


def test_res2net_stages_option_runs() -> None:
    model = create_model("hsr_msnet_tiny_128x96", res2net_stages=True).eval()
    assert isinstance(model.layer2[0], Res2NetBottleneck) and isinstance(model.layer4[0], MSNetBlock)
    with torch.no_grad():
        y = model(torch.randn(1, 3, 128, 96))
    assert y.shape == (1, 17, 32, 24) and torch.isfinite(y).all()


def test_models_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from hsrpose.cli import main

    assert main(["models", "--json", "hsrnet59_256x192", "hsr_msnet_tiny_128x96"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["hsrnet59_256x192", "hsr_msnet_tiny_128x96"]
    assert rows[0]["input_size"] == [256, 192] and rows[0]["heatmap_size"] == [64, 48]
    assert abs(rows[0]["params"] / 1e6 - 22.596) < 0.02 and abs(rows[0]["gmacs"] - 6.521) < 0.06
    assert main(["models", "hsrnet_tiny_128x96"]) == 0
    assert "hsrnet_tiny_128x96" in capsys.readouterr().out
    assert main(["models", "no_such_model"]) == 1


@pytest.mark.parametrize("name", list(MPII_PRESETS))
def test_mpii_presets_are_the_paper_networks_at_256x256_with_16_joints(name: str) -> None:
    p = get_preset(name)
    assert p.input_hw == (256, 256) and p.heatmap_hw == (64, 64)
    cost, base = model_cost(name, num_keypoints=16), model_cost(MPII_PRESETS[name])
    assert cost.heatmap_hw == (64, 64)
    # the same network; only the 1x1 output conv (256 channels in, + bias) has one channel less
    assert cost.params == base.params - (256 + 1)
    torch.manual_seed(0)
    model = create_model(name, num_keypoints=16).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 16, 8, 8)
    assert get_preset(name).builder().final_layer.out_channels == 16  # type: ignore[union-attr]
