"""SimpleBaseline deconv head: k x (ConvTranspose2d stride 2, BN, ReLU), then a 1x1 conv to K heatmaps.

(B, C_in, h, w) -> (B, K, h * 2^k, w * 2^k). Parameter names as SimpleBaseline's
pose_resnet (``deconv_layers.{0,1,3,4,...}``, ``final_layer``) so its
checkpoints load without remapping.
"""

from __future__ import annotations

from torch import nn

__all__ = ["DECONV_PADDING", "make_deconv_layers", "make_final_layer", "init_head_"]

# kernel -> (padding, output_padding) giving an exact 2x upsampling (SimpleBaseline's _get_deconv_cfg).
DECONV_PADDING: dict[int, tuple[int, int]] = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


def make_deconv_layers(in_channels: int, num_layers: int, kernel: int, filters: int = 256) -> nn.Sequential:
    """``num_layers`` x [ConvTranspose2d(bias=False), BN, ReLU] as one flat Sequential (indices 0,1,2, 3,4,5, ...)."""
    if kernel not in DECONV_PADDING:
        raise ValueError(f"deconv kernel must be one of {sorted(DECONV_PADDING)}, got {kernel}")
    if num_layers < 1:
        raise ValueError(f"num_deconv must be >= 1, got {num_layers}")
    padding, output_padding = DECONV_PADDING[kernel]
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers += [
            nn.ConvTranspose2d(
                in_channels if i == 0 else filters,
                filters,
                kernel_size=kernel,
                stride=2,
                padding=padding,
                output_padding=output_padding,
                bias=False,
            ),
            nn.BatchNorm2d(filters),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def make_final_layer(filters: int, num_keypoints: int) -> nn.Conv2d:
    return nn.Conv2d(filters, num_keypoints, kernel_size=1, stride=1, padding=0)


def init_head_(deconv_layers: nn.Module, final_layer: nn.Conv2d) -> None:
    """SimpleBaseline init: deconv and final conv N(0, 0.001), final bias 0, BN weight 1 bias 0."""
    for m in deconv_layers.modules():
        if isinstance(m, nn.ConvTranspose2d):
            nn.init.normal_(m.weight, std=0.001)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    nn.init.normal_(final_layer.weight, std=0.001)
    if final_layer.bias is not None:
        nn.init.zeros_(final_layer.bias)
