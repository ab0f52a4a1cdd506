"""Checkpoint formats: detection from a file's structure and keys, and one key filter per foreign format.

A filter returns ``(used, dropped, fresh)``: the tensors to load (model keys), the file
keys it drops, and a predicate naming the model keys the format does not provide (they
may stay as initialised). See :mod:`hsrpose.models.weights` for the formats.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Mapping

from hsrpose.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["FORMATS", "HSRPOSE_FORMATS", "detect_format"]

FORMATS: tuple[str, ...] = ("auto", "hsrpose", "torchvision", "detnet", "pose_resnet", "mmpose")
HSRPOSE_FORMATS: tuple[str, ...] = ("hsrpose-weights", "hsrpose-checkpoint")

HEAD_PREFIXES = ("deconv_layers.", "final_layer.")


def detect_format(obj: Any, safetensors_meta: dict[str, str] | None) -> str:
    """Name the format of a loaded file from its structure and key layout (no suffix guessing)."""
    if safetensors_meta is not None and "hsrpose" in safetensors_meta:
        return "hsrpose"
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"not a checkpoint: the file holds a {type(obj).__name__}, not a dict")
    if obj.get("format") in HSRPOSE_FORMATS:
        return "hsrpose"
    from hsrpose.models.foreign import is_mmpose_checkpoint

    if is_mmpose_checkpoint(obj):
        return "mmpose"
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        return "pose_resnet"
    keys = [k for k in obj if isinstance(k, str)]
    if any(k.startswith(("module.",) + HEAD_PREFIXES) for k in keys):
        return "pose_resnet"
    if "layer4.0.extra_conv.0.weight" in obj and "layer5.0.extra_conv.0.weight" in obj:
        return "detnet"
    if "fc.weight" in obj and "layer4.0.downsample.0.weight" in obj:
        return "torchvision"
    sample = ", ".join(keys[:5]) or "no string keys"
    raise CheckpointError(
        f"cannot tell the checkpoint format (keys: {sample}, ...); name it: one of {', '.join(FORMATS[1:])}"
    )


def _flat_tensors(sd: Any, what: str) -> dict[str, "torch.Tensor"]:
    import torch

    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{what}: expected a state dict (mapping of names to tensors), got {type(sd).__name__}")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{what}: entries that are not tensors: {bad[:5]}")
    return dict(sd)


def _is_dilated_model(model: "nn.Module") -> bool:
    """True for HSRNet / HSR-MSNet models: their ``layer4`` is a stride-16 DetNet/MSNet stage."""
    from hsrpose.models.hsrnet import is_dilated_block
    from hsrpose.models.msnet import MSNetBlock

    layer4 = getattr(model, "layer4", None)
    return layer4 is not None and (is_dilated_block(layer4[0]) or isinstance(layer4[0], MSNetBlock))


def _msnet_block_names(model: "nn.Module") -> list[str]:
    from hsrpose.models.msnet import MSNetBlock

    return [name for name, m in model.named_modules() if isinstance(m, MSNetBlock)]


def _filter_torchvision(sd: dict[str, "torch.Tensor"], model: "nn.Module") -> tuple[dict, list[str], Callable[[str], bool]]:
    """torchvision ResNet -> ResNet rows (all but ``fc``) or HSRNet rows (all but ``fc`` and ``layer4``)."""
    dilated = _is_dilated_model(model)
    drop_prefixes = ("fc.", "layer4.") if dilated else ("fc.",)
    used = {k: v for k, v in sd.items() if not k.startswith(drop_prefixes)}
    dropped = [k for k in sd if k.startswith(drop_prefixes)]
    fresh = HEAD_PREFIXES + (("layer4.", "layer5.") if dilated else ())
    return used, dropped, lambda k: k.startswith(fresh)


def _filter_detnet(sd: dict[str, "torch.Tensor"], model: "nn.Module") -> tuple[dict, list[str], Callable[[str], bool]]:
    """DetNet-59 -> HSRNet-59 (all but ``fc``) or HSR-MSNet-59 (also without the 3x3 of each MSNet block)."""
    msnet_blocks = _msnet_block_names(model)
    # DetNet's conv2/bn2 (one 256->256 3x3) of a block that is an MSNet block in the model.
    drop_prefixes = ("fc.",) + tuple(f"{b}.{part}." for b in msnet_blocks for part in ("conv2", "bn2"))
    used = {k: v for k, v in sd.items() if not k.startswith(drop_prefixes)}
    dropped = [k for k in sd if k.startswith(drop_prefixes)]
    fresh = HEAD_PREFIXES + tuple(f"{b}.{part}." for b in msnet_blocks for part in ("convs", "bns", "se"))
    return used, dropped, lambda k: k.startswith(fresh)


def _filter_pose_resnet(obj: Mapping[str, Any], model: "nn.Module") -> tuple[dict, list[str], Callable[[str], bool]]:
    """SimpleBaseline / HRNet pose_resnet: unwrap ``state_dict``, strip DataParallel's ``module.``; whole model."""
    sd = obj["state_dict"] if "state_dict" in obj and isinstance(obj["state_dict"], Mapping) else obj
    sd = _flat_tensors(sd, "pose_resnet state_dict")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd, [], lambda k: False


def _hsrpose_state(obj: Any, meta: dict[str, str] | None) -> tuple[dict[str, Any], dict[str, "torch.Tensor"]]:
    """(metadata dict, state dict) of an hsrpose .pth or .safetensors file."""
    if meta is not None:
        if "hsrpose" not in meta:
            raise CheckpointError("safetensors file without hsrpose metadata (header key 'hsrpose')")
        try:
            info = json.loads(meta["hsrpose"])
        except json.JSONDecodeError as e:
            raise CheckpointError(f"safetensors 'hsrpose' metadata is not JSON ({e})") from None
        return info, _flat_tensors(obj, "hsrpose weights")
    if not isinstance(obj, Mapping) or obj.get("format") not in HSRPOSE_FORMATS:
        raise CheckpointError("not an hsrpose weights or checkpoint file (no 'format': 'hsrpose-weights'/'hsrpose-checkpoint')")
    if "model" not in obj:
        raise CheckpointError(f"{obj.get('format')} file without a 'model' state dict")
    info = {k: v for k, v in obj.items() if k != "model"}
    return info, _flat_tensors(obj["model"], "hsrpose 'model'")
