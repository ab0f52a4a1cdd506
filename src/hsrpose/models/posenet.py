"""The pose network (backbone + deconv head) and one builder per named preset.

Layout is SimpleBaseline's pose_resnet, flat: ``conv1``, ``bn1``, ``layer1..layerN``,
``deconv_layers``, ``final_layer`` at the top level, so torchvision, DetNet and
SimpleBaseline checkpoints map onto it key for key.

Shapes: (B, 3, H, W) normalised RGB -> (B, K, H/4, W/4) heatmaps. H and W must be
multiples of ``model.input_multiple`` (32 for ResNet rows, 16 for HSRNet rows).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from hsrpose.models.head import init_head_, make_deconv_layers, make_final_layer
from hsrpose.models.hsrnet import make_dilated_stage
from hsrpose.models.msnet import make_msnet_stage, make_res2net_stage
from hsrpose.models.registry import register_preset
from hsrpose.models.resnet import RESNET_BLOCKS, init_backbone_, make_resnet_stage, make_stem

__all__ = ["PoseNet", "pose_resnet", "pose_hsrnet", "pose_hsr_msnet"]


class PoseNet(nn.Module):
    """Top-down pose network: torchvision stem, ``layer1..layerN`` stages, SimpleBaseline head.

    Args:
        stages: the backbone stages after the stem, registered as ``layer1``, ``layer2``, ...
        stage_channels: channels out of the last stage.
        output_stride: stride of the last stage's feature map w.r.t. the input (32 or 16).
        num_keypoints: K, heatmap channels.
        num_deconv, deconv_kernel, deconv_filters: the head (see head.py).
        stem_width: channels of ``conv1``.
    """

    def __init__(
        self,
        stages: Sequence[nn.Module],
        stage_channels: int,
        output_stride: int,
        num_keypoints: int,
        num_deconv: int,
        deconv_kernel: int,
        deconv_filters: int = 256,
        stem_width: int = 64,
    ) -> None:
        super().__init__()
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {num_keypoints}")
        if output_stride != 4 * 2**num_deconv:
            raise ValueError(f"output stride {output_stride} with {num_deconv} deconvs does not give input/4 heatmaps")
        self.conv1, self.bn1, self.relu, self.maxpool = make_stem(stem_width)
        self.stage_names: tuple[str, ...] = tuple(f"layer{i}" for i in range(1, len(stages) + 1))
        for name, stage in zip(self.stage_names, stages):
            self.add_module(name, stage)
        self.deconv_layers = make_deconv_layers(stage_channels, num_deconv, deconv_kernel, deconv_filters)
        self.final_layer = make_final_layer(deconv_filters, num_keypoints)
        self.num_keypoints = num_keypoints
        self.output_stride = output_stride
        self.input_multiple = output_stride  # H, W divisible by this give exact H/4 x W/4 heatmaps
        init_backbone_(self)
        init_head_(self.deconv_layers, self.final_layer)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B, stage_channels, H/stride, W/stride)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) normalised RGB -> (B,K,H/4,W/4) heatmaps."""
        return self.final_layer(self.deconv_layers(self.forward_features(x)))


def _trunk_stages(
    blocks: Sequence[int], width: int, res2net: bool, res2net_base_width: int, res2net_scale: int
) -> tuple[list[nn.Module], int]:
    """ResNet stages layer1..layerN (strides 1, 2, 2, ...), planes width * 2^i. Returns (stages, out channels)."""
    stages: list[nn.Module] = []
    inplanes = width
    for i, n in enumerate(blocks):
        planes, stride = width * 2**i, (1 if i == 0 else 2)
        if res2net:
            stages.append(make_res2net_stage(inplanes, planes, n, stride, res2net_base_width, res2net_scale))
        else:
            stages.append(make_resnet_stage(inplanes, planes, n, stride))
        inplanes = planes * 4
    return stages, inplanes


def pose_resnet(
    blocks: Sequence[int],
    *,
    num_keypoints: int = 17,
    num_deconv: int = 3,
    deconv_kernel: int = 4,
    deconv_filters: int = 256,
    width: int = 64,
) -> PoseNet:
    """SimpleBaseline: ResNet (4 stages, stride 32) + deconv head."""
    stages, channels = _trunk_stages(blocks, width, False, 26, 4)
    return PoseNet(stages, channels, 4 * 2 ** (len(blocks) - 1), num_keypoints, num_deconv, deconv_kernel, deconv_filters, width)


def pose_hsrnet(
    blocks: Sequence[int] = (3, 4, 6),
    dilated_blocks: Sequence[int] = (3, 3),
    *,
    num_keypoints: int = 17,
    num_deconv: int = 2,
    deconv_kernel: int = 4,
    deconv_filters: int = 256,
    width: int = 64,
    dilation: int = 2,
) -> PoseNet:
    """HSRNet: ResNet stages 1-4 (``layer1..3``, stride 16) + DetNet stages (``layer4``, ``layer5``) + head."""
    stages, channels = _trunk_stages(blocks, width, False, 26, 4)
    planes = channels // 4  # DetNet keeps layer3's bottleneck width (256 for width 64)
    for n in dilated_blocks:
        stages.append(make_dilated_stage(channels, planes, n, dilation))
    return PoseNet(stages, channels, 4 * 2 ** (len(blocks) - 1), num_keypoints, num_deconv, deconv_kernel, deconv_filters, width)


def pose_hsr_msnet(
    blocks: Sequence[int] = (3, 4, 6),
    dilated_blocks: Sequence[int] = (3, 3),
    *,
    num_keypoints: int = 17,
    num_deconv: int = 2,
    deconv_kernel: int = 4,
    deconv_filters: int = 256,
    width: int = 64,
    dilation: int = 2,
    msnet_width: int | None = None,
    subgroups: int = 4,
    se: bool = True,
    se_reduction: int = 16,
    se_bias: bool = False,
    res2net_stages: bool = False,
    res2net_base_width: int = 26,
    res2net_scale: int = 4,
) -> PoseNet:
    """HSR-MSNet: HSRNet with MSNet blocks in stages 5-6 (``layer4``, ``layer5``).

    ``msnet_width`` (W) defaults to DetNet's bottleneck width (256 for width 64) so
    DetNet-59 weights still initialise conv1/conv3; ``res2net_stages`` swaps the
    Bottlenecks of ``layer1..3`` for Res2Net blocks (base width x scale).
    """
    stages, channels = _trunk_stages(blocks, width, res2net_stages, res2net_base_width, res2net_scale)
    w = channels // 4 if msnet_width is None else msnet_width
    for n in dilated_blocks:
        stages.append(make_msnet_stage(channels, channels, n, w, subgroups, dilation, se, se_reduction, se_bias))
    return PoseNet(stages, channels, 4 * 2 ** (len(blocks) - 1), num_keypoints, num_deconv, deconv_kernel, deconv_filters, width)


# ---------------------------------------------------------------------------
# Presets: one function per paper row (Table 1 a-l, Table 2 a-d), then small CPU presets.
# A preset fixes backbone, head and input size; other builder arguments pass through.


@register_preset(paper_row="T1 a", input_hw=(256, 192), backbone="ResNet-50", num_deconv=3, deconv_kernel=4,
                 description="SimpleBaseline ResNet-50, 3 deconvs k4, 256x192")  # fmt: skip
def simplebaseline_res50_256x192(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_resnet(RESNET_BLOCKS[50], num_keypoints=num_keypoints, num_deconv=3, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 b", input_hw=(256, 192), backbone="ResNet-101", num_deconv=3, deconv_kernel=4,
                 description="SimpleBaseline ResNet-101, 3 deconvs k4, 256x192")  # fmt: skip
def simplebaseline_res101_256x192(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_resnet(RESNET_BLOCKS[101], num_keypoints=num_keypoints, num_deconv=3, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 c", input_hw=(256, 192), backbone="ResNet-152", num_deconv=3, deconv_kernel=4,
                 description="SimpleBaseline ResNet-152, 3 deconvs k4, 256x192")  # fmt: skip
def simplebaseline_res152_256x192(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_resnet(RESNET_BLOCKS[152], num_keypoints=num_keypoints, num_deconv=3, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 d", input_hw=(256, 192), backbone="ResNet-50", num_deconv=3, deconv_kernel=2,
                 description="SimpleBaseline ResNet-50, 3 deconvs k2, 256x192")  # fmt: skip
def simplebaseline_res50_256x192_k2(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_resnet(RESNET_BLOCKS[50], num_keypoints=num_keypoints, num_deconv=3, deconv_kernel=2, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 e", input_hw=(256, 192), backbone="ResNet-50", num_deconv=3, deconv_kernel=3,
                 description="SimpleBaseline ResNet-50, 3 deconvs k3, 256x192")  # fmt: skip
def simplebaseline_res50_256x192_k3(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_resnet(RESNET_BLOCKS[50], num_keypoints=num_keypoints, num_deconv=3, deconv_kernel=3, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 f", input_hw=(384, 288), backbone="ResNet-50", num_deconv=3, deconv_kernel=4,
                 description="SimpleBaseline ResNet-50, 3 deconvs k4, 384x288")  # fmt: skip
def simplebaseline_res50_384x288(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_resnet(RESNET_BLOCKS[50], num_keypoints=num_keypoints, num_deconv=3, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 g / T2 a", input_hw=(256, 192), backbone="HSRNet-59", num_deconv=2, deconv_kernel=4,
                 description="HSRNet-59, 2 deconvs k4, 256x192")  # fmt: skip
def hsrnet59_256x192(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_hsrnet((3, 4, 6), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 h", input_hw=(256, 192), backbone="HSRNet-110", num_deconv=2, deconv_kernel=4,
                 description="HSRNet-110, 2 deconvs k4, 256x192")  # fmt: skip
def hsrnet110_256x192(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_hsrnet((3, 4, 23), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 i", input_hw=(256, 192), backbone="HSRNet-161", num_deconv=2, deconv_kernel=4,
                 description="HSRNet-161, 2 deconvs k4, 256x192")  # fmt: skip
def hsrnet161_256x192(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    # Trunk of ResNet-152 (layer2 has 8 blocks, not 4): that is what the depth 161 =
    # 1 + 3*(3+8+36) + 3*6 + 1 counts, what "stem + layer1..3 from ResNet-152" loads,
    # and what the spec's 57.232M params / 13.794 GMACs measure.
    return pose_hsrnet((3, 8, 36), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 j", input_hw=(256, 192), backbone="HSRNet-59", num_deconv=2, deconv_kernel=2,
                 description="HSRNet-59, 2 deconvs k2, 256x192")  # fmt: skip
def hsrnet59_256x192_k2(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_hsrnet((3, 4, 6), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=2, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 k", input_hw=(256, 192), backbone="HSRNet-59", num_deconv=2, deconv_kernel=3,
                 description="HSRNet-59, 2 deconvs k3, 256x192")  # fmt: skip
def hsrnet59_256x192_k3(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_hsrnet((3, 4, 6), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=3, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T1 l / T2 b", input_hw=(384, 288), backbone="HSRNet-59", num_deconv=2, deconv_kernel=4,
                 description="HSRNet-59, 2 deconvs k4, 384x288")  # fmt: skip
def hsrnet59_384x288(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_hsrnet((3, 4, 6), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T2 c", input_hw=(256, 192), backbone="HSR-MSNet-59", num_deconv=2, deconv_kernel=4,
                 description="HSR-MSNet-59 (W=256, n=4, SE), 2 deconvs k4, 256x192")  # fmt: skip
def hsr_msnet59_256x192(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_hsr_msnet((3, 4, 6), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="T2 d", input_hw=(384, 288), backbone="HSR-MSNet-59", num_deconv=2, deconv_kernel=4,
                 description="HSR-MSNet-59 (W=256, n=4, SE), 2 deconvs k4, 384x288")  # fmt: skip
def hsr_msnet59_384x288(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_hsr_msnet((3, 4, 6), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="Sec. 4.2", input_hw=(256, 192), backbone="HSR-MSNet-110", num_deconv=2, deconv_kernel=4,
                 description="HSR-MSNet-110 (ResNet-101 trunk + MSNet stages 5-6), 2 deconvs k4, 256x192")  # fmt: skip
def hsr_msnet110_256x192(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    # Named in the paper's Section 4.2 ("HSR-MSNet-59, -110, -161") but in no table.
    return pose_hsr_msnet((3, 4, 23), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="Sec. 4.2", input_hw=(256, 192), backbone="HSR-MSNet-161", num_deconv=2, deconv_kernel=4,
                 description="HSR-MSNet-161 (ResNet-152 trunk + MSNet stages 5-6), 2 deconvs k4, 256x192")  # fmt: skip
def hsr_msnet161_256x192(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_hsr_msnet((3, 8, 36), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


# Small presets for CPU training, tests and the demo: the same block types at a
# quarter of the width (stem 16, bottleneck widths 16/32/64, stage 5-6 out 256),
# one to two blocks per stage, a 64-filter head, 128x96 input.
TINY_WIDTH = 16
TINY_BLOCKS = (1, 1, 2)
TINY_DILATED_BLOCKS = (2, 2)
TINY_DECONV_FILTERS = 64


@register_preset(paper_row="-", input_hw=(128, 96), backbone="HSRNet-tiny", num_deconv=2, deconv_kernel=4,
                 description="small HSRNet (width 16, blocks 1-1-2 + 2-2), 2 deconvs k4 x 64, 128x96")  # fmt: skip
def hsrnet_tiny_128x96(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_hsrnet(TINY_BLOCKS, TINY_DILATED_BLOCKS, num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4,
                       deconv_filters=TINY_DECONV_FILTERS, width=TINY_WIDTH, **kwargs)  # type: ignore[arg-type]  # fmt: skip


@register_preset(paper_row="-", input_hw=(128, 96), backbone="HSR-MSNet-tiny", num_deconv=2, deconv_kernel=4,
                 description="small HSR-MSNet (width 16, blocks 1-1-2 + 2-2, W=64, n=4, SE), 2 deconvs k4 x 64, 128x96")  # fmt: skip
def hsr_msnet_tiny_128x96(num_keypoints: int = 17, **kwargs: object) -> PoseNet:
    return pose_hsr_msnet(TINY_BLOCKS, TINY_DILATED_BLOCKS, num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4,
                          deconv_filters=TINY_DECONV_FILTERS, width=TINY_WIDTH, **kwargs)  # type: ignore[arg-type]  # fmt: skip


# MPII presets (issue 19): HRNet's MPII setting, 256x256 input, 64x64 heatmaps, 16 joints.
# Not paper rows (the paper names MPII as its next step); the architectures of T1 a, T1 g, T2 c.
MPII_NUM_JOINTS = 16


@register_preset(paper_row="-", input_hw=(256, 256), backbone="ResNet-50", num_deconv=3, deconv_kernel=4,
                 description="SimpleBaseline ResNet-50, 3 deconvs k4, 256x256 (MPII, 16 joints)")  # fmt: skip
def simplebaseline_res50_256x256(num_keypoints: int = MPII_NUM_JOINTS, **kwargs: object) -> PoseNet:
    return pose_resnet(RESNET_BLOCKS[50], num_keypoints=num_keypoints, num_deconv=3, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="-", input_hw=(256, 256), backbone="HSRNet-59", num_deconv=2, deconv_kernel=4,
                 description="HSRNet-59, 2 deconvs k4, 256x256 (MPII, 16 joints)")  # fmt: skip
def hsrnet59_256x256(num_keypoints: int = MPII_NUM_JOINTS, **kwargs: object) -> PoseNet:
    return pose_hsrnet((3, 4, 6), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]


@register_preset(paper_row="-", input_hw=(256, 256), backbone="HSR-MSNet-59", num_deconv=2, deconv_kernel=4,
                 description="HSR-MSNet-59 (W=256, n=4, SE), 2 deconvs k4, 256x256 (MPII, 16 joints)")  # fmt: skip
def hsr_msnet59_256x256(num_keypoints: int = MPII_NUM_JOINTS, **kwargs: object) -> PoseNet:
    return pose_hsr_msnet((3, 4, 6), (3, 3), num_keypoints=num_keypoints, num_deconv=2, deconv_kernel=4, **kwargs)  # type: ignore[arg-type]
