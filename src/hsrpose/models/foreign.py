"""Whole pose models from other projects' checkpoints: SimpleBaseline / HRNet-repo ``pose_resnet`` and mmpose 1.x.

- ``pose_resnet`` (``leoxiaobin/human-pose-estimation.pytorch`` and the HRNet repo's
  ``models/pose_resnet.py``): keys ``conv1``, ``bn1``, ``layer1..4``, ``deconv_layers.{0,1,3,4,...}``,
  ``final_layer``; optionally inside ``{'state_dict': ...}`` and with DataParallel's ``module.``.
  These are hsrpose's own key names (see ``models/head.py``), so only the wrapping is removed.
- ``mmpose`` (1.x ``TopdownPoseEstimator`` with a ``ResNet`` backbone and a ``HeatmapHead``):
  ``{'meta': ..., 'state_dict': {'backbone.*', 'head.deconv_layers.*', 'head.final_layer.*'}}``;
  :func:`filter_mmpose` strips the two module prefixes, key by key.

The architecture comes from the tensor shapes (:func:`infer_pose_resnet`): ResNet depth from the
number of blocks per stage, deconv count and kernel from ``deconv_layers.{3i}.weight``, keypoint count
from ``final_layer.weight``. It is matched to a registered ``simplebaseline_*`` preset of that input
size; ``preset=`` overrides the inference, and any tensor that then does not fit is a
:class:`CheckpointError` naming the key and both shapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from hsrpose.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hsrpose.data.keypoints import KeypointInfo
    from hsrpose.models.weights import ModelMeta

__all__ = ["PoseResnetArch", "is_mmpose_checkpoint", "filter_mmpose", "pose_state_dict", "infer_pose_resnet",
           "match_preset", "load_any_pose_model"]  # fmt: skip

# mmpose module prefix -> hsrpose module prefix. Anything else in an mmpose state dict is an error.
MMPOSE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("backbone.", ""),
    ("head.deconv_layers.", "deconv_layers."),
    ("head.final_layer.", "final_layer."),
)

_BLOCK_KEY = re.compile(r"^layer(\d+)\.(\d+)\.conv1\.weight$")
_DECONV_KEY = re.compile(r"^deconv_layers\.(\d+)\.weight$")


@dataclass(frozen=True)
class PoseResnetArch:
    """What the tensor shapes say: ResNet ``depth``, ``num_deconv`` x ``deconv_kernel`` deconvs, ``num_keypoints``."""

    depth: int
    num_deconv: int
    deconv_kernel: int
    num_keypoints: int


def is_mmpose_checkpoint(obj: Any) -> bool:
    """An mmpose 1.x file: a dict with ``state_dict`` whose keys start with ``backbone.`` / ``head.``."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
        return False
    keys = [k for k in obj["state_dict"] if isinstance(k, str)]
    return bool(keys) and any(k.startswith("backbone.") for k in keys) and any(k.startswith("head.") for k in keys)


def filter_mmpose(obj: Mapping[str, Any], model: "nn.Module | None" = None) -> tuple[dict, list[str], Callable[[str], bool]]:
    """mmpose 1.x top-down heatmap checkpoint -> hsrpose keys; whole model (same contract as ``weight_formats._filter_*``).

    ``backbone.X`` -> ``X``; ``head.deconv_layers.X`` -> ``deconv_layers.X``; ``head.final_layer.X`` ->
    ``final_layer.X``. mmpose's ``HeatmapHead`` builds its deconvs as one flat Sequential of
    (ConvTranspose2d, BN, ReLU), the same indices as hsrpose's head. ``meta`` is not a tensor and is skipped.
    """
    from hsrpose.models.weight_formats import _flat_tensors

    sd = _flat_tensors(obj["state_dict"], "mmpose state_dict")
    out: dict[str, "torch.Tensor"] = {}
    for key, value in sd.items():
        for src, dst in MMPOSE_PREFIXES:
            if key.startswith(src):
                out[dst + key[len(src):]] = value
                break
        else:
            raise CheckpointError(
                f"mmpose key {key!r} is not part of a ResNet backbone + HeatmapHead model "
                f"(expected prefixes {', '.join(p for p, _ in MMPOSE_PREFIXES)})"
            )
    return out, [], lambda k: False


def pose_state_dict(obj: Any) -> tuple[str, dict[str, "torch.Tensor"]]:
    """``(format, state dict in hsrpose key names)`` of a pose_resnet or mmpose file's contents."""
    from hsrpose.models.weight_formats import _filter_pose_resnet

    if is_mmpose_checkpoint(obj):
        return "mmpose", filter_mmpose(obj)[0]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a dict, the file holds a {type(obj).__name__}")
    return "pose_resnet", _filter_pose_resnet(obj, None)[0]  # type: ignore[arg-type]


def infer_pose_resnet(sd: Mapping[str, "torch.Tensor"]) -> PoseResnetArch:
    """Architecture of a SimpleBaseline state dict (hsrpose key names) from its tensor shapes."""
    from hsrpose.models.resnet import RESNET_BLOCKS

    for key in ("conv1.weight", "final_layer.weight", "deconv_layers.0.weight"):
        if key not in sd:
            raise CheckpointError(f"not a SimpleBaseline pose_resnet state dict: key {key!r} is missing")
    blocks: dict[int, int] = {}
    for key in sd:
        m = _BLOCK_KEY.match(key)
        if m:
            stage, index = int(m.group(1)), int(m.group(2))
            blocks[stage] = max(blocks.get(stage, 0), index + 1)
    counts = tuple(blocks.get(i, 0) for i in range(1, max(blocks, default=0) + 1))
    if "layer1.0.conv3.weight" not in sd:
        raise CheckpointError("key 'layer1.0.conv3.weight' is missing: a ResNet-18/34 (BasicBlock) model; "
                              "only the Bottleneck ResNets 50/101/152 are supported")  # fmt: skip
    depth = next((d for d, b in RESNET_BLOCKS.items() if tuple(b) == counts), None)
    if depth is None:
        raise CheckpointError(f"blocks per stage {counts} (keys layerN.M.conv1.weight) are not ResNet-50/101/152's")
    deconvs = sorted(int(m.group(1)) for k in sd if (m := _DECONV_KEY.match(k)) and sd[k].ndim == 4)  # not the BNs
    if deconvs != [3 * i for i in range(len(deconvs))]:
        raise CheckpointError(f"deconv_layers weights at indices {deconvs}, expected 0, 3, 6, ...")
    kernels = {tuple(sd[f"deconv_layers.{i}.weight"].shape[-2:]) for i in deconvs}
    if len(kernels) != 1 or len(next(iter(kernels))) != 2 or len(set(next(iter(kernels)))) != 1:
        raise CheckpointError(f"deconv_layers kernels {sorted(kernels)}: expected one square kernel size")
    final = sd["final_layer.weight"]
    if final.ndim != 4:
        raise CheckpointError(f"final_layer.weight has shape {tuple(final.shape)}, expected (K, C, 1, 1)")
    return PoseResnetArch(depth, len(deconvs), int(next(iter(kernels))[0]), int(final.shape[0]))


def match_preset(arch: PoseResnetArch, input_hw: tuple[int, int] | None = None) -> str:
    """The registered ``simplebaseline_*`` preset of ``arch`` (and ``input_hw``; 256x192 when None)."""
    from hsrpose.models import get_preset, list_presets

    hw = tuple(input_hw) if input_hw is not None else (256, 192)
    backbone = f"ResNet-{arch.depth}"
    for name in list_presets():
        p = get_preset(name)
        if (p.backbone, p.num_deconv, p.deconv_kernel, p.input_hw) == (backbone, arch.num_deconv, arch.deconv_kernel, hw):
            return name
    raise CheckpointError(
        f"no preset for {backbone} with {arch.num_deconv} deconvs of kernel {arch.deconv_kernel} at input "
        f"{hw[0]}x{hw[1]}; name one with --preset (see 'hsrpose models')"
    )


def load_any_pose_model(
    path: str | Path,
    device: str = "cpu",
    preset: str | None = None,
    input_hw: tuple[int, int] | None = None,
    keypoint_info: "KeypointInfo | None" = None,
    trust_pickle: bool = False,
) -> tuple["nn.Module", "ModelMeta"]:
    """A whole pose model from an hsrpose, pose_resnet or mmpose file; ``(model in eval mode, meta)``.

    hsrpose files carry their preset (``preset``, if given, must equal it). For the foreign
    formats the architecture is inferred from the shapes unless ``preset`` is given;
    ``input_hw`` picks between presets that differ only in input size; ``keypoint_info``
    names the keypoints (default COCO's 17, which a K != 17 file must not rely on).
    """
    from hsrpose.data.keypoints import COCO_KEYPOINTS
    from hsrpose.models import create_model, get_preset
    from hsrpose.decode_settings import DecodeSettings
    from hsrpose.models.weights import ModelMeta, _apply, detect_format, load_pose_model, read_checkpoint_file

    obj, st_meta = read_checkpoint_file(path, trust_pickle=trust_pickle)
    try:
        fmt = "mmpose" if is_mmpose_checkpoint(obj) else detect_format(obj, st_meta)
        if fmt == "hsrpose":
            del obj
            model, meta = load_pose_model(path, device=device, trust_pickle=trust_pickle)
            if preset is not None and preset != meta.preset:
                raise CheckpointError(f"holds weights of preset {meta.preset!r}, not {preset!r}")
            return model, meta
        if fmt not in ("pose_resnet", "mmpose"):
            raise CheckpointError(f"a {fmt} backbone checkpoint, not a pose model (no heatmap head)")
        fmt, sd = pose_state_dict(obj)
        del obj
        arch = infer_pose_resnet(sd) if preset is None else None
        name = preset if preset is not None else match_preset(arch, input_hw)  # type: ignore[arg-type]
        p = get_preset(name)
        k = int(sd["final_layer.weight"].shape[0]) if "final_layer.weight" in sd else 17
        kp = keypoint_info if keypoint_info is not None else COCO_KEYPOINTS
        if kp.num_keypoints != k:
            raise CheckpointError(
                f"final_layer.weight has {k} keypoint channels but the keypoint set names {kp.num_keypoints} "
                f"({', '.join(kp.names[:3])}, ...); give the model's keypoints (a COCO category JSON)"
            )
        model = create_model(name, num_keypoints=k)
        _apply(model, sd, [], lambda key: False, fmt)
        hw = tuple(input_hw) if input_hw is not None else p.input_hw
        if hw != p.input_hw:
            raise CheckpointError(f"input size {hw[0]}x{hw[1]} does not match preset {name!r} ({p.input_hw[0]}x{p.input_hw[1]})")
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    # Foreign files store no decode settings: the protocol defaults (what their repositories test with).
    decode, note = DecodeSettings.from_metadata({}, str(path))
    meta = ModelMeta(preset=name, num_keypoints=k, input_hw=p.input_hw, heatmap_hw=p.heatmap_hw, keypoint_info=kp,
                     format=fmt, decode=decode, decode_note=note)  # fmt: skip
    return model.to(device).eval(), meta
