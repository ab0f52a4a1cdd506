"""The pose network (backbone + deconv head) and one builder per family (the named presets: presets.py).

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
from hsrpose.models.resnet import init_backbone_, make_resnet_stage, make_stem

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
