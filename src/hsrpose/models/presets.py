"""The named presets as a table: one row per paper row (Table 1 a-l, Table 2 a-d), then small CPU presets and MPII.

A row fixes the family builder (``pose_resnet``, ``pose_hsrnet``, ``pose_hsr_msnet``),
its per-model arguments (blocks, head, width: a small dict, timm style), the input
size and the facts ``hsrpose models`` lists. Every row is registered under its name
with a builder ``builder(num_keypoints=K, **kwargs) -> PoseNet``: other builder
arguments pass through; the arguments that define the preset cannot be overridden
(a TypeError, as for a duplicated keyword argument).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from hsrpose.models.posenet import PoseNet, pose_hsr_msnet, pose_hsrnet, pose_resnet
from hsrpose.models.registry import register_preset
from hsrpose.models.resnet import RESNET_BLOCKS

__all__ = ["PresetRow", "PRESET_ROWS", "FAMILIES"]

FAMILIES: dict[str, Callable[..., PoseNet]] = {
    "resnet": pose_resnet,
    "hsrnet": pose_hsrnet,
    "hsr_msnet": pose_hsr_msnet,
}


@dataclass(frozen=True)
class PresetRow:
    """One named model: registry facts plus the family builder's fixed arguments.

    ``args`` holds the depth (``blocks``, ``dilated_blocks``) and any other fixed argument
    (``deconv_filters``, ``width``); ``num_deconv`` and ``deconv_kernel`` are passed too.
    """

    name: str
    paper_row: str
    family: str
    backbone: str
    input_hw: tuple[int, int]
    num_deconv: int
    deconv_kernel: int
    description: str
    args: dict[str, Any] = field(default_factory=dict)
    num_keypoints: int = 17  # the default K of the builder


# Small presets for CPU training, tests and the demo: the same block types at a
# quarter of the width (stem 16, bottleneck widths 16/32/64, stage 5-6 out 256),
# one to two blocks per stage, a 64-filter head, 128x96 input.
TINY_ARGS: dict[str, Any] = {"blocks": (1, 1, 2), "dilated_blocks": (2, 2), "deconv_filters": 64, "width": 16}

# MPII presets (issue 19): HRNet's MPII setting, 256x256 input, 64x64 heatmaps, 16 joints.
# Not paper rows (the paper names MPII as its next step); the architectures of T1 a, T1 g, T2 c.
MPII_NUM_JOINTS = 16

R50, R101, R152 = ({"blocks": RESNET_BLOCKS[d]} for d in (50, 101, 152))
HSR59 = {"blocks": (3, 4, 6), "dilated_blocks": (3, 3)}
HSR110 = {"blocks": (3, 4, 23), "dilated_blocks": (3, 3)}
# HSRNet-161: the trunk of ResNet-152 (layer2 has 8 blocks, not 4): that is what the depth
# 161 = 1 + 3*(3+8+36) + 3*6 + 1 counts, what "stem + layer1..3 from ResNet-152" loads,
# and what the spec's 57.232M params / 13.794 GMACs measure.
HSR161 = {"blocks": (3, 8, 36), "dilated_blocks": (3, 3)}

SB, HSR, MS = "resnet", "hsrnet", "hsr_msnet"
MS_NOTE = "(W=256, n=4, SE)"

# name, paper row, family, backbone, input (h, w), deconvs, kernel, description, args[, K]
PRESET_ROWS: tuple[PresetRow, ...] = tuple(PresetRow(*row) for row in [
    ("simplebaseline_res50_256x192", "T1 a", SB, "ResNet-50", (256, 192), 3, 4, "SimpleBaseline ResNet-50, 3 deconvs k4, 256x192", R50),
    ("simplebaseline_res101_256x192", "T1 b", SB, "ResNet-101", (256, 192), 3, 4, "SimpleBaseline ResNet-101, 3 deconvs k4, 256x192", R101),
    ("simplebaseline_res152_256x192", "T1 c", SB, "ResNet-152", (256, 192), 3, 4, "SimpleBaseline ResNet-152, 3 deconvs k4, 256x192", R152),
    ("simplebaseline_res50_256x192_k2", "T1 d", SB, "ResNet-50", (256, 192), 3, 2, "SimpleBaseline ResNet-50, 3 deconvs k2, 256x192", R50),
    ("simplebaseline_res50_256x192_k3", "T1 e", SB, "ResNet-50", (256, 192), 3, 3, "SimpleBaseline ResNet-50, 3 deconvs k3, 256x192", R50),
    ("simplebaseline_res50_384x288", "T1 f", SB, "ResNet-50", (384, 288), 3, 4, "SimpleBaseline ResNet-50, 3 deconvs k4, 384x288", R50),
    ("hsrnet59_256x192", "T1 g / T2 a", HSR, "HSRNet-59", (256, 192), 2, 4, "HSRNet-59, 2 deconvs k4, 256x192", HSR59),
    ("hsrnet110_256x192", "T1 h", HSR, "HSRNet-110", (256, 192), 2, 4, "HSRNet-110, 2 deconvs k4, 256x192", HSR110),
    ("hsrnet161_256x192", "T1 i", HSR, "HSRNet-161", (256, 192), 2, 4, "HSRNet-161, 2 deconvs k4, 256x192", HSR161),
    ("hsrnet59_256x192_k2", "T1 j", HSR, "HSRNet-59", (256, 192), 2, 2, "HSRNet-59, 2 deconvs k2, 256x192", HSR59),
    ("hsrnet59_256x192_k3", "T1 k", HSR, "HSRNet-59", (256, 192), 2, 3, "HSRNet-59, 2 deconvs k3, 256x192", HSR59),
    ("hsrnet59_384x288", "T1 l / T2 b", HSR, "HSRNet-59", (384, 288), 2, 4, "HSRNet-59, 2 deconvs k4, 384x288", HSR59),
    ("hsr_msnet59_256x192", "T2 c", MS, "HSR-MSNet-59", (256, 192), 2, 4, f"HSR-MSNet-59 {MS_NOTE}, 2 deconvs k4, 256x192", HSR59),
    ("hsr_msnet59_384x288", "T2 d", MS, "HSR-MSNet-59", (384, 288), 2, 4, f"HSR-MSNet-59 {MS_NOTE}, 2 deconvs k4, 384x288", HSR59),
    # Named in the paper's Section 4.2 ("HSR-MSNet-59, -110, -161") but in no table.
    ("hsr_msnet110_256x192", "Sec. 4.2", MS, "HSR-MSNet-110", (256, 192), 2, 4,
     "HSR-MSNet-110 (ResNet-101 trunk + MSNet stages 5-6), 2 deconvs k4, 256x192", HSR110),
    ("hsr_msnet161_256x192", "Sec. 4.2", MS, "HSR-MSNet-161", (256, 192), 2, 4,
     "HSR-MSNet-161 (ResNet-152 trunk + MSNet stages 5-6), 2 deconvs k4, 256x192", HSR161),
    ("hsrnet_tiny_128x96", "-", HSR, "HSRNet-tiny", (128, 96), 2, 4,
     "small HSRNet (width 16, blocks 1-1-2 + 2-2), 2 deconvs k4 x 64, 128x96", TINY_ARGS),
    ("hsr_msnet_tiny_128x96", "-", MS, "HSR-MSNet-tiny", (128, 96), 2, 4,
     "small HSR-MSNet (width 16, blocks 1-1-2 + 2-2, W=64, n=4, SE), 2 deconvs k4 x 64, 128x96", TINY_ARGS),
    ("simplebaseline_res50_256x256", "-", SB, "ResNet-50", (256, 256), 3, 4,
     "SimpleBaseline ResNet-50, 3 deconvs k4, 256x256 (MPII, 16 joints)", R50, MPII_NUM_JOINTS),
    ("hsrnet59_256x256", "-", HSR, "HSRNet-59", (256, 256), 2, 4,
     "HSRNet-59, 2 deconvs k4, 256x256 (MPII, 16 joints)", HSR59, MPII_NUM_JOINTS),
    ("hsr_msnet59_256x256", "-", MS, "HSR-MSNet-59", (256, 256), 2, 4,
     f"HSR-MSNet-59 {MS_NOTE}, 2 deconvs k4, 256x256 (MPII, 16 joints)", HSR59, MPII_NUM_JOINTS),
])  # fmt: skip


def _builder(row: PresetRow) -> Callable[..., PoseNet]:
    """``builder(num_keypoints=row.num_keypoints, **kwargs)``: the family builder with the row's arguments fixed."""
    family = FAMILIES[row.family]
    fixed = {**row.args, "num_deconv": row.num_deconv, "deconv_kernel": row.deconv_kernel}

    def build(num_keypoints: int = row.num_keypoints, **kwargs: Any) -> PoseNet:
        return family(**fixed, num_keypoints=num_keypoints, **kwargs)

    build.__name__ = build.__qualname__ = row.name
    build.__doc__ = f"{row.description} ({row.paper_row})."
    return build


for _row in PRESET_ROWS:
    register_preset(paper_row=_row.paper_row, input_hw=_row.input_hw, backbone=_row.backbone, num_deconv=_row.num_deconv,
                    deconv_kernel=_row.deconv_kernel, description=_row.description)(_builder(_row))  # fmt: skip
