"""ResNet pieces with torchvision's parameter names: stem, Bottleneck, stages.

Shapes: a stage maps (B, inplanes, H, W) -> (B, planes * 4, H / stride, W / stride).
Stride sits on the 3x3 conv ("ResNet v1.5", as torchvision), so torchvision's
ImageNet checkpoints load key for key.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Bottleneck", "projection", "make_resnet_stage", "make_stem", "RESNET_BLOCKS", "init_backbone_"]

# Blocks per stage (layer1..layer4) of the torchvision ResNets.
RESNET_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


class Bottleneck(nn.Module):
    """torchvision Bottleneck: 1x1 -> 3x3 (stride, dilation) -> 1x1 (x4), identity or projection shortcut.

    The one bottleneck of the ResNet stages and of HSRNet's DetNet stages 5-6 (stride 1,
    dilation 2): only the projection's name differs, ``downsample`` (torchvision) or
    ``extra_conv`` (DetNet_pytorch), so that each family's checkpoints load key for key.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        shortcut_name: str = "downsample",
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        if downsample is None and (stride != 1 or inplanes != planes * self.expansion):
            raise ValueError(f"identity shortcut needs stride 1 and inplanes == planes*4, got {inplanes} and {planes * 4}")
        self.shortcut_name = shortcut_name
        setattr(self, shortcut_name, downsample)  # registered as a submodule (its state_dict prefix) when not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = getattr(self, self.shortcut_name)
        identity = x if shortcut is None else shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def projection(inplanes: int, out: int, stride: int = 1) -> nn.Sequential:
    """1x1 conv (stride) + BN: the projection shortcut, keys ``{0,1}``."""
    return nn.Sequential(nn.Conv2d(inplanes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out))


def make_resnet_stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """A torchvision ``layerN``: ``blocks`` Bottlenecks, the first with a ``downsample.{0,1}`` projection."""
    out = planes * Bottleneck.expansion
    downsample: nn.Module | None = None
    if stride != 1 or inplanes != out:
        downsample = projection(inplanes, out, stride)
    layers: list[nn.Module] = [Bottleneck(inplanes, planes, stride=stride, downsample=downsample)]
    layers += [Bottleneck(out, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def make_stem(width: int = 64) -> tuple[nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]:
    """torchvision stem (``conv1``, ``bn1``, relu, maxpool): (B,3,H,W) -> (B,width,H/4,W/4)."""
    return (
        nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


def init_backbone_(module: nn.Module) -> None:
    """torchvision/DetNet init: conv N(0, sqrt(2 / (k*k*C_out))), BN weight 1 bias 0, conv bias 0.

    ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` is exactly that
    std, the init of torchvision's ResNet and of DetNet's new stages.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
