"""HSRNet's new stages 5 and 6 (DetNet-59 stages, guoruoqian/DetNet_pytorch names).

Each stage keeps stride 16: (B, inplanes, H, W) -> (B, planes * 4, H, W).
Block "C" (Fig. 5c/6) has a 1x1 projection shortcut named ``extra_conv`` as in
DetNet_pytorch; blocks "D" have identity shortcuts. The 3x3 conv is dilated.
The block is the ResNet :class:`~hsrpose.models.resnet.Bottleneck` (stride 1).
"""

from __future__ import annotations

from torch import nn

from hsrpose.models.resnet import Bottleneck, projection

__all__ = ["DETNET_SHORTCUT", "is_dilated_block", "make_dilated_stage"]

DETNET_SHORTCUT = "extra_conv"  # DetNet_pytorch's name of the projection shortcut


def is_dilated_block(module: nn.Module) -> bool:
    """True for a block of a DetNet stage (a Bottleneck built by :func:`make_dilated_stage`)."""
    return isinstance(module, Bottleneck) and module.shortcut_name == DETNET_SHORTCUT


def make_dilated_stage(inplanes: int, planes: int, blocks: int, dilation: int = 2) -> nn.Sequential:
    """One DetNet stage: a "C" block (projection) then ``blocks - 1`` "D" blocks (identity)."""
    out = planes * Bottleneck.expansion
    layers: list[nn.Module] = [
        Bottleneck(inplanes, planes, dilation=dilation, downsample=projection(inplanes, out), shortcut_name=DETNET_SHORTCUT)
    ]
    layers += [Bottleneck(out, planes, dilation=dilation, shortcut_name=DETNET_SHORTCUT) for _ in range(1, blocks)]
    return nn.Sequential(*layers)
