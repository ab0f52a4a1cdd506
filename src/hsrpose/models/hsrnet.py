"""HSRNet's new stages 5 and 6 (DetNet-59 stages, guoruoqian/DetNet_pytorch names).

Each stage keeps stride 16: (B, inplanes, H, W) -> (B, planes * 4, H, W).
Block "C" (Fig. 5c/6) has a 1x1 projection shortcut named ``extra_conv`` as in
DetNet_pytorch; blocks "D" have identity shortcuts. The 3x3 conv is dilated.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DilatedBottleneck", "make_dilated_stage"]


class DilatedBottleneck(nn.Module):
    """1x1 -> 3x3 dilated (stride 1) -> 1x1 (x4); ``extra_conv.{0,1}`` projection when ``projection``."""

    expansion: int = 4

    def __init__(self, inplanes: int, planes: int, dilation: int = 2, projection: bool = False) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        if not projection and inplanes != out:
            raise ValueError(f"identity shortcut needs inplanes == planes*4, got {inplanes} and {out}")
        self.extra_conv: nn.Module | None = (
            nn.Sequential(nn.Conv2d(inplanes, out, kernel_size=1, bias=False), nn.BatchNorm2d(out)) if projection else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.extra_conv is None else self.extra_conv(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_dilated_stage(inplanes: int, planes: int, blocks: int, dilation: int = 2) -> nn.Sequential:
    """One DetNet stage: a "C" block (projection) then ``blocks - 1`` "D" blocks (identity)."""
    out = planes * DilatedBottleneck.expansion
    layers: list[nn.Module] = [DilatedBottleneck(inplanes, planes, dilation=dilation, projection=True)]
    layers += [DilatedBottleneck(out, planes, dilation=dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)
