"""Reading and writing model weights: foreign checkpoints and hsrpose's own files.

One entry point for initialising a model from a file, :func:`load_weights`, with
named formats:

- ``torchvision``: an ImageNet ResNet state dict (``conv1``, ``bn1``, ``layer1..4``,
  ``fc``). ``fc`` is dropped; for HSRNet / HSR-MSNet models torchvision's
  ``layer4`` (ResNet's 2048-channel stage 5) is dropped too.
- ``detnet``: DetNet_pytorch's ``detnet59.pth`` (flat; ``layer4/5`` dilated stages,
  ``extra_conv`` shortcuts, ``fc`` 1000x1024; may lack ``num_batches_tracked``).
  ``fc`` is dropped; in MSNet blocks DetNet's single 3x3 conv (``conv2``/``bn2``)
  has no counterpart and is dropped, the MSNet-only parameters stay fresh.
- ``pose_resnet``: a SimpleBaseline / HRNet-repo pose model (``{'state_dict': ...}``
  with DataParallel's ``module.`` prefix, or a plain state dict); whole model, strict.
- ``mmpose``: an mmpose 1.x top-down heatmap checkpoint of a ResNet row (``meta`` +
  ``state_dict`` with ``backbone.*``, ``head.*``); whole model, strict; the filter is
  ``hsrpose.models.foreign.filter_mmpose``.
- ``hsrpose``: hsrpose weight files and training checkpoints; whole model, strict.

Every key mapping is written out in the format's filter function; nothing is
matched by suffix. Backbone formats may leave only the parts they do not
provide (the head, stages the source lacks, MSNet-only parameters,
``num_batches_tracked``) missing; anything else missing or unexpected, and any
shape mismatch, is a :class:`~hsrpose.errors.CheckpointError`.

Files are read with ``torch.load(weights_only=True)`` or safetensors, so loading
never runs code from the file; ``trust_pickle=True`` lifts that for old pickles.

Modules: reading files (``checkpoint_io``), format detection and key filters
(``weight_formats``), loading into a model and hsrpose's own files (here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from hsrpose.decode_settings import DecodeSettings
from hsrpose.errors import CheckpointError
from hsrpose.models.checkpoint_io import read_checkpoint_file
from hsrpose.models.weight_formats import (
    FORMATS,
    _filter_detnet,
    _filter_pose_resnet,
    _filter_torchvision,
    _flat_tensors,
    _hsrpose_state,
    detect_format,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hsrpose.data.keypoints import KeypointInfo

__all__ = [
    "FORMATS",
    "LoadReport",
    "ModelMeta",
    "load_weights",
    "read_checkpoint_file",
    "detect_format",
    "save_pose_model",
    "load_pose_model",
]



@dataclass(frozen=True)
class LoadReport:
    """What a load did.

    Attributes:
        missing: model keys the file did not provide (left as initialised).
        unexpected: file keys that were not loaded (dropped by the format's filter).
        format: the format used (after detection).
        loaded: number of model tensors set from the file.
    """

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    format: str = ""
    loaded: int = 0

    def summary(self) -> str:
        """One line for logs: counts and the first few keys of each kind."""

        def head(keys: tuple[str, ...]) -> str:
            # BN counters of old files are noise next to real weights: list those last.
            keys = tuple(sorted(keys, key=lambda k: k.endswith(".num_batches_tracked")))
            return ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")

        return (
            f"format {self.format}: loaded {self.loaded} tensors; "
            f"{len(self.missing)} missing [{head(self.missing)}]; {len(self.unexpected)} unexpected [{head(self.unexpected)}]"
        )


@dataclass(frozen=True)
class ModelMeta:
    """Metadata stored beside hsrpose weights; enough to rebuild the model and its pre/post-processing."""

    preset: str
    num_keypoints: int
    input_hw: tuple[int, int]
    heatmap_hw: tuple[int, int]
    keypoint_info: "KeypointInfo"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    format: str = "hsrpose-weights"
    # The decode settings the file stores (protocol defaults for older files, with decode_note set).
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    decode_note: str | None = None


# ---------------------------------------------------------------------------
# Loading into a model


def load_weights(model: "nn.Module", path: str | Path, format: str = "auto", trust_pickle: bool = False) -> LoadReport:
    """Load ``path`` into ``model`` in place and report what was and was not loaded.

    Args:
        model: a PoseNet (any preset).
        path: a checkpoint file (.pth, .pth.tar, .safetensors).
        format: ``auto`` (detected from the file's structure and keys) or one of
            ``hsrpose``, ``torchvision``, ``detnet``, ``pose_resnet``, ``mmpose``.
        trust_pickle: allow a full unpickle of files that ``weights_only`` refuses.

    Raises:
        CheckpointError: unreadable/unsafe file, unknown format, a key the model
            lacks, a required model key the file lacks, or a shape mismatch
            (the message names the key and both shapes).
    """
    if format not in FORMATS:
        raise CheckpointError(f"unknown checkpoint format {format!r}; one of {', '.join(FORMATS)}")
    obj, meta = read_checkpoint_file(path, trust_pickle=trust_pickle)
    try:
        fmt = detect_format(obj, meta) if format == "auto" else format
        if fmt == "hsrpose":
            _, sd = _hsrpose_state(obj, meta)
            used, dropped, fresh = sd, [], (lambda k: False)
        elif fmt == "pose_resnet":
            if not isinstance(obj, Mapping):
                raise CheckpointError(f"expected a dict, the file holds a {type(obj).__name__}")
            used, dropped, fresh = _filter_pose_resnet(obj, model)
        elif fmt == "mmpose":
            from hsrpose.models.foreign import filter_mmpose

            if not isinstance(obj, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
                raise CheckpointError("an mmpose checkpoint is a dict with a 'state_dict'")
            used, dropped, fresh = filter_mmpose(obj, model)
        elif fmt == "torchvision":
            used, dropped, fresh = _filter_torchvision(_flat_tensors(obj, "torchvision state dict"), model)
        else:  # detnet
            used, dropped, fresh = _filter_detnet(_flat_tensors(obj, "detnet state dict"), model)
        return _apply(model, used, dropped, fresh, fmt)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _apply(
    model: "nn.Module",
    used: Mapping[str, "torch.Tensor"],
    dropped: list[str],
    fresh: Callable[[str], bool],
    fmt: str,
) -> LoadReport:
    """Check ``used`` against the model (keys, shapes), then copy it in."""
    target = model.state_dict()
    unknown = sorted(k for k in used if k not in target)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} {fmt} key(s) not in the model: {', '.join(unknown[:5])}"
            + (", ..." if len(unknown) > 5 else "")
        )
    for k in (k for k in target if k in used):  # model order: the first mismatch named is the earliest layer
        v = used[k]
        if tuple(v.shape) != tuple(target[k].shape):
            raise CheckpointError(
                f"shape mismatch at {k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)}"
            )
    missing = [k for k in target if k not in used]
    # A file that predates BN's num_batches_tracked (old PyTorch) leaves that counter as is.
    required = [k for k in missing if not fresh(k) and not k.endswith(".num_batches_tracked")]
    if required:
        raise CheckpointError(
            f"{len(required)} model key(s) missing from the {fmt} file: {', '.join(required[:5])}"
            + (", ..." if len(required) > 5 else "")
        )
    model.load_state_dict(dict(used), strict=False)
    return LoadReport(missing=tuple(missing), unexpected=tuple(dropped), format=fmt, loaded=len(used))


# ---------------------------------------------------------------------------
# hsrpose's own files


def _metadata(model: "nn.Module", preset: str, keypoint_info: "KeypointInfo", model_kwargs: Mapping[str, Any] | None,
              input_hw: tuple[int, int] | None, decode: DecodeSettings | None = None) -> dict[str, Any]:  # fmt: skip
    from hsrpose import __version__
    from hsrpose.models.registry import get_preset

    p = get_preset(preset)
    num_keypoints = int(getattr(model, "num_keypoints", keypoint_info.num_keypoints))
    if num_keypoints != keypoint_info.num_keypoints:
        raise ValueError(f"model has {num_keypoints} keypoint channels, keypoint_info names {keypoint_info.num_keypoints}")
    kwargs = dict(model_kwargs or {})
    json.dumps(kwargs)  # model_kwargs must be JSON-able: they travel in safetensors/ONNX metadata too
    hw = tuple(int(v) for v in (input_hw or p.input_hw))
    return {
        "hsrpose_version": __version__,
        "preset": preset,
        "model_kwargs": kwargs,
        "num_keypoints": num_keypoints,
        "input_hw": list(hw),
        "keypoint_info": keypoint_info.to_dict(),
        "decode": (decode if decode is not None else DecodeSettings()).to_dict(),
    }


def save_pose_model(
    model: "nn.Module",
    path: str | Path,
    preset: str,
    keypoint_info: "KeypointInfo",
    model_kwargs: Mapping[str, Any] | None = None,
    input_hw: tuple[int, int] | None = None,
    decode: DecodeSettings | None = None,
) -> None:
    """Write hsrpose weights atomically: ``.pth`` (torch.save dict) or ``.safetensors`` (metadata as JSON).

    ``model_kwargs`` are the extra ``create_model`` arguments the model was built with;
    ``input_hw`` defaults to the preset's; ``decode`` (the settings the model was trained
    and validated with) defaults to the protocol's.
    """
    from hsrpose.utils.io import atomic_save, atomic_torch_save

    p = Path(path)
    meta = _metadata(model, preset, keypoint_info, model_kwargs, input_hw, decode)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if p.suffix == ".safetensors":
        from safetensors.torch import save_file

        header = {"hsrpose": json.dumps({"format": "hsrpose-weights", **meta})}
        atomic_save(p, lambda tmp: save_file(state, str(tmp), metadata=header))
    elif p.suffix in (".pth", ".pt"):
        atomic_torch_save({"format": "hsrpose-weights", **meta, "model": state}, p)
    else:
        raise ValueError(f"{p}: weights file must end in .pth, .pt or .safetensors")


def load_pose_model(path: str | Path, device: str = "cpu", trust_pickle: bool = False) -> tuple["nn.Module", ModelMeta]:
    """Rebuild the model of an hsrpose weights file or training checkpoint; returns ``(model in eval mode, meta)``."""
    from hsrpose.data.keypoints import COCO_KEYPOINTS, KeypointInfo
    from hsrpose.models.registry import create_model

    obj, st_meta = read_checkpoint_file(path, trust_pickle=trust_pickle)
    try:
        info, sd = _hsrpose_state(obj, st_meta)
        for key in ("preset", "num_keypoints"):
            if key not in info:
                raise CheckpointError(f"metadata field {key!r} is missing")
        preset, k = str(info["preset"]), int(info["num_keypoints"])
        kwargs = dict(info.get("model_kwargs") or {})
        kp_dict = info.get("keypoint_info")
        if kp_dict is not None:
            try:
                kp = KeypointInfo.from_dict(kp_dict)
            except ValueError as e:
                raise CheckpointError(f"metadata field 'keypoint_info': {e}") from None
        elif k == COCO_KEYPOINTS.num_keypoints:
            kp = COCO_KEYPOINTS
        else:
            raise CheckpointError(f"metadata field 'keypoint_info' is missing for {k} keypoints")
        from hsrpose.models.registry import UnknownPresetError, get_preset

        try:
            preset_input_hw = get_preset(preset).input_hw
        except UnknownPresetError as e:
            raise CheckpointError(f"metadata field 'preset': {e}") from None
        hw_raw = info.get("input_hw") or preset_input_hw
        input_hw = (int(hw_raw[0]), int(hw_raw[1]))
        try:
            model = create_model(preset, num_keypoints=k, **kwargs)
        except TypeError as e:
            raise CheckpointError(f"metadata 'model_kwargs' {kwargs} do not fit preset {preset!r}: {e}") from None
        _apply(model, sd, [], lambda key: False, "hsrpose")
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    decode, decode_note = DecodeSettings.from_metadata(info, str(path))
    meta = ModelMeta(
        preset=preset,
        num_keypoints=k,
        input_hw=input_hw,
        heatmap_hw=(input_hw[0] // 4, input_hw[1] // 4),
        keypoint_info=kp,
        model_kwargs=kwargs,
        format=str(info.get("format", "hsrpose-weights")),
        decode=decode,
        decode_note=decode_note,
    )
    return model.to(device).eval(), meta
