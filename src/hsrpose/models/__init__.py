"""Pose networks: SimpleBaseline ResNet, HSRNet and HSR-MSNet, one named preset per paper row.

    model = create_model("hsrnet59_256x192", num_keypoints=17)
    heatmaps = model(images)  # (B,3,256,192) -> (B,17,64,48)
"""

from __future__ import annotations

from hsrpose.models.posenet import PoseNet, pose_hsr_msnet, pose_hsrnet, pose_resnet
from hsrpose.models import presets as _presets  # noqa: F401 - importing the table registers every preset
from hsrpose.models.registry import Preset, UnknownPresetError, create_model, get_preset, list_presets

__all__ = [
    "PoseNet",
    "Preset",
    "UnknownPresetError",
    "create_model",
    "get_preset",
    "list_presets",
    "pose_resnet",
    "pose_hsrnet",
    "pose_hsr_msnet",
]
