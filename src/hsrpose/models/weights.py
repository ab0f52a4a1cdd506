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
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from hsrpose.decode_settings import DecodeSettings
from hsrpose.errors import CheckpointError

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

FORMATS: tuple[str, ...] = ("auto", "hsrpose", "torchvision", "detnet", "pose_resnet", "mmpose")
HSRPOSE_FORMATS: tuple[str, ...] = ("hsrpose-weights", "hsrpose-checkpoint")

_HEAD_PREFIXES = ("deconv_layers.", "final_layer.")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80  # first byte of a pickle of protocol >= 2 (torch's legacy format)


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
# Reading files safely


def read_checkpoint_file(path: str | Path, trust_pickle: bool = False) -> tuple[Any, dict[str, str] | None]:
    """Read a torch.save or safetensors file without running code from it.

    Returns ``(obj, safetensors_metadata)``: ``obj`` is what torch.save wrote
    (metadata None), or the tensor dict of a safetensors file (metadata its header
    ``__metadata__``, possibly empty).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such file")
    with open(p, "rb") as f:
        head = f.read(9)
    # A pickle starts with PROTO (0x80) and the protocol number (2..5); a safetensors file whose
    # header length ends in byte 0x80 starts with 0x80 too, so the second byte decides.
    if head[:4] == _ZIP_MAGIC or (len(head) > 1 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5):
        try:
            with _numpy_array_globals(), warnings.catch_warnings():
                # a non-torch pickle makes torch warn about its protocol before failing; the error says enough
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                return torch.load(p, map_location="cpu", weights_only=True), None
        except pickle.UnpicklingError as e:
            msg = str(e)
            if "Weights only load failed" not in msg:
                raise CheckpointError(f"{p}: not a readable checkpoint ({_first_line(msg)})") from None
            m = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
            if m is None:  # the safe unpickler failed on the data itself, not on a class it refuses
                w = re.search(r"WeightsUnpickler error:\s*([^\n]+)", msg)
                detail = w.group(1) if w else _first_line(msg)
                raise CheckpointError(f"{p}: not a readable checkpoint ({_first_line(detail)})") from None
            if not trust_pickle:
                what = f"it contains {m.group(1)}"
                raise CheckpointError(
                    f"{p}: refused to load: {what}, and unpickling it could run code from the file. "
                    "If you trust where the file came from, load it with trust_pickle=True (CLI: --trust-pickle)."
                ) from None
        except Exception as e:  # noqa: BLE001 - torch raises RuntimeError/EOFError/... on corrupt files
            raise CheckpointError(
                f"{p}: not a readable checkpoint; the file may be truncated or damaged ({type(e).__name__}: {_first_line(str(e))})"
            ) from None
        try:  # only reached with trust_pickle=True, after the safe load refused
            return torch.load(p, map_location="cpu", weights_only=False), None
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{p}: cannot unpickle ({type(e).__name__}: {_first_line(str(e))})") from None
    if _looks_like_safetensors(p, head):
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt", device="cpu") as sf:
                meta = dict(sf.metadata() or {})
                tensors = {k: sf.get_tensor(k) for k in sf.keys()}
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{p}: broken safetensors file ({_first_line(str(e))})") from None
        return tensors, meta
    raise CheckpointError(f"{p}: not a checkpoint (neither a torch.save file nor a safetensors file)")


@contextmanager
def _numpy_array_globals() -> Iterator[None]:
    """Let the weights-only unpickler rebuild plain numpy arrays and scalars (e.g. a training
    checkpoint's ``np.random`` state). These globals only rebuild data from dtype + bytes;
    torch's docs list them as safe to allow. Anything else stays refused."""
    import numpy as np
    import torch

    try:
        from numpy._core.multiarray import _reconstruct, scalar  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    allowed: list[Any] = [_reconstruct, scalar, np.ndarray, np.dtype]
    allowed += [type(np.dtype(t)) for t in (np.bool_, np.uint8, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64)]
    ctx = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    if ctx is None:
        yield
        return
    with ctx(allowed):
        yield


def _first_line(msg: str, limit: int = 200) -> str:
    """The first line of a library's error message, shortened to whole sentences (a message
    cut mid-sentence reads as if it were the whole reason)."""
    text = msg.strip().splitlines()[0].strip() if msg.strip() else ""
    if not text:
        return "no message"
    if len(text) <= limit:
        return text
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", text[: limit + 1])]
    if ends:
        return text[: ends[-1]]
    return text[:limit].rsplit(" ", 1)[0] + " (...)"


def _looks_like_safetensors(p: Path, head: bytes) -> bool:
    """safetensors: 8-byte little-endian header length, then a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= p.stat().st_size - 8


# ---------------------------------------------------------------------------
# Format detection and per-format filters


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
    if any(k.startswith(("module.",) + _HEAD_PREFIXES) for k in keys):
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
    from hsrpose.models.hsrnet import DilatedBottleneck
    from hsrpose.models.msnet import MSNetBlock

    layer4 = getattr(model, "layer4", None)
    return layer4 is not None and isinstance(layer4[0], (DilatedBottleneck, MSNetBlock))


def _msnet_block_names(model: "nn.Module") -> list[str]:
    from hsrpose.models.msnet import MSNetBlock

    return [name for name, m in model.named_modules() if isinstance(m, MSNetBlock)]


def _filter_torchvision(sd: dict[str, "torch.Tensor"], model: "nn.Module") -> tuple[dict, list[str], Callable[[str], bool]]:
    """torchvision ResNet -> ResNet rows (all but ``fc``) or HSRNet rows (all but ``fc`` and ``layer4``)."""
    dilated = _is_dilated_model(model)
    drop_prefixes = ("fc.", "layer4.") if dilated else ("fc.",)
    used = {k: v for k, v in sd.items() if not k.startswith(drop_prefixes)}
    dropped = [k for k in sd if k.startswith(drop_prefixes)]
    fresh = _HEAD_PREFIXES + (("layer4.", "layer5.") if dilated else ())
    return used, dropped, lambda k: k.startswith(fresh)


def _filter_detnet(sd: dict[str, "torch.Tensor"], model: "nn.Module") -> tuple[dict, list[str], Callable[[str], bool]]:
    """DetNet-59 -> HSRNet-59 (all but ``fc``) or HSR-MSNet-59 (also without the 3x3 of each MSNet block)."""
    msnet_blocks = _msnet_block_names(model)
    # DetNet's conv2/bn2 (one 256->256 3x3) of a block that is an MSNet block in the model.
    drop_prefixes = ("fc.",) + tuple(f"{b}.{part}." for b in msnet_blocks for part in ("conv2", "bn2"))
    used = {k: v for k, v in sd.items() if not k.startswith(drop_prefixes)}
    dropped = [k for k in sd if k.startswith(drop_prefixes)]
    fresh = _HEAD_PREFIXES + tuple(f"{b}.{part}." for b in msnet_blocks for part in ("convs", "bns", "se"))
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
