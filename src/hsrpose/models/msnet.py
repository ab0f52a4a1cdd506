"""HSR-MSNet's multiscale blocks: the MSNet split block with SE, and Res2Net blocks.

MSNet block (paper Fig. 7b, Eq. 1-2, model-spec.md "MSNet block"), stride 1:
(B, inplanes, H, W) -> (B, out_channels, H, W)

    1x1 conv inplanes->W, BN, ReLU; split into n groups x_i of W/n channels;
    y_1 = Conv(x_1), y_i = Conv(x_i + y_{i-1}); each Conv = 3x3 dilated, BN, ReLU;
    concat; 1x1 conv W->out, BN; SE; add shortcut; ReLU.

The n-th conv on x_1 is the "added 3x3 conv" of the paper (Res2Net leaves x_1 as
identity). ``conv1``/``bn1``/``conv3``/``bn3``/``extra_conv`` are named as in
DetNet so that DetNet-59 weights initialise them when W = 256; ``convs``,
``bns`` and ``se`` are MSNet-only.

Res2Net block (Gao et al., "26w x 4s"): the optional replacement of the
Bottleneck in stages 2-4, names as in the Res2Net repository.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SEModule", "MSNetBlock", "make_msnet_stage", "Res2NetBottleneck", "make_res2net_stage"]


class SEModule(nn.Module):
    """Squeeze-and-Excitation: x * sigmoid(fc2(relu(fc1(avgpool(x))))); fc are 1x1 convs C -> C/r -> C."""

    def __init__(self, channels: int, reduction: int = 16, bias: bool = False) -> None:
        super().__init__()
        if channels % reduction != 0:
            raise ValueError(f"SE: channels {channels} not divisible by reduction {reduction}")
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=bias)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = self.fc2(self.relu(self.fc1(s)))
        return x * torch.sigmoid(s)


class MSNetBlock(nn.Module):
    """MSNet split block (see module docstring); ``projection`` adds the ``extra_conv`` shortcut ("C" block)."""

    def __init__(
        self,
        inplanes: int,
        out_channels: int,
        width: int = 256,
        subgroups: int = 4,
        dilation: int = 2,
        se: bool = True,
        se_reduction: int = 16,
        se_bias: bool = False,
        projection: bool = False,
    ) -> None:
        super().__init__()
        if width % subgroups != 0:
            raise ValueError(f"MSNet: width {width} not divisible by subgroups {subgroups}")
        if not projection and inplanes != out_channels:
            raise ValueError(f"identity shortcut needs inplanes == out_channels, got {inplanes} and {out_channels}")
        self.subgroups = subgroups
        group = width // subgroups
        self.conv1 = nn.Conv2d(inplanes, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.convs = nn.ModuleList(
            nn.Conv2d(group, group, kernel_size=3, stride=1, padding=dilation, dilation=dilation, bias=False)
            for _ in range(subgroups)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(group) for _ in range(subgroups))
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.se: SEModule | None = SEModule(out_channels, se_reduction, bias=se_bias) if se else None
        self.relu = nn.ReLU(inplace=True)
        self.extra_conv: nn.Module | None = (
            nn.Sequential(nn.Conv2d(inplanes, out_channels, kernel_size=1, bias=False), nn.BatchNorm2d(out_channels))
            if projection
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.extra_conv is None else self.extra_conv(x)
        out = self.relu(self.bn1(self.conv1(x)))
        xs = torch.chunk(out, self.subgroups, dim=1)
        ys: list[torch.Tensor] = []
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            inp = xs[i] if i == 0 else xs[i] + ys[-1]  # hierarchical fusion, Eq. 1
            ys.append(self.relu(bn(conv(inp))))
        out = self.bn3(self.conv3(torch.cat(ys, dim=1)))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + identity)


def make_msnet_stage(
    inplanes: int,
    out_channels: int,
    blocks: int,
    width: int = 256,
    subgroups: int = 4,
    dilation: int = 2,
    se: bool = True,
    se_reduction: int = 16,
    se_bias: bool = False,
) -> nn.Sequential:
    """A stride-16 stage of MSNet blocks, the first with the ``extra_conv`` projection (as DetNet's "C")."""
    kw = dict(width=width, subgroups=subgroups, dilation=dilation, se=se, se_reduction=se_reduction, se_bias=se_bias)
    layers: list[nn.Module] = [MSNetBlock(inplanes, out_channels, projection=True, **kw)]  # type: ignore[arg-type]
    layers += [MSNetBlock(out_channels, out_channels, **kw) for _ in range(1, blocks)]  # type: ignore[arg-type]
    return nn.Sequential(*layers)


class Res2NetBottleneck(nn.Module):
    """Res2Net ``Bottle2neck``: 1x1 -> (scale-1) hierarchical 3x3 on W-channel splits -> 1x1 (x4).

    ``first`` is Res2Net's ``stype='stage'`` block: splits are not fused, the last
    split goes through a 3x3 average pool (stride), and the shortcut projects.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        base_width: int = 26,
        scale: int = 4,
        first: bool = False,
    ) -> None:
        super().__init__()
        if scale < 2:
            raise ValueError("Res2Net scale must be >= 2")
        width = int(math.floor(planes * (base_width / 64.0)))
        self.width, self.scale, self.first = width, scale, first
        self.conv1 = nn.Conv2d(inplanes, width * scale, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False) for _ in range(scale - 1)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale - 1))
        self.pool: nn.Module | None = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1) if first else None
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        xs = torch.split(out, self.width, dim=1)
        ys: list[torch.Tensor] = []
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            inp = xs[i] if (i == 0 or self.first) else xs[i] + ys[-1]
            ys.append(self.relu(bn(conv(inp))))
        last = xs[-1] if self.pool is None else self.pool(xs[-1])
        out = self.bn3(self.conv3(torch.cat([*ys, last], dim=1)))
        return self.relu(out + identity)


def make_res2net_stage(
    inplanes: int, planes: int, blocks: int, stride: int, base_width: int = 26, scale: int = 4
) -> nn.Sequential:
    """A Res2Net ``layerN`` with torchvision-style ``downsample.{0,1}`` on the first block."""
    out = planes * Res2NetBottleneck.expansion
    downsample = nn.Sequential(nn.Conv2d(inplanes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out))
    layers: list[nn.Module] = [
        Res2NetBottleneck(inplanes, planes, stride, downsample, base_width=base_width, scale=scale, first=True)
    ]
    layers += [Res2NetBottleneck(out, planes, base_width=base_width, scale=scale) for _ in range(1, blocks)]
    return nn.Sequential(*layers)
